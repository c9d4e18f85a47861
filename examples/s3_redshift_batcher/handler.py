"""The two Lambda functions of the S3 → Redshift batcher (configuration: patterns/config.py).

Each invocation prints what it spent in DynamoDB as CloudWatch Embedded Metric Format lines
(namespace ``S3ToRedshift``, one document per operation), so the cost per arrival is a metric,
not a guess.
"""

from __future__ import annotations

from typing import Any

from patterns import S3ToRedshift
from stateless_state.cloudwatch import publish_metrics

pipeline = S3ToRedshift.from_env()
metered = publish_metrics(pipeline.batcher.store, namespace="S3ToRedshift")


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.handle(event, context)


@metered
def sweeper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.sweep(context)
