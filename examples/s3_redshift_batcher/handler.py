"""The two Lambda functions of the S3 → Redshift batcher (configuration: patterns/config.py).

Each invocation prints what it spent in DynamoDB as CloudWatch Embedded Metric Format lines
(namespace ``S3ToRedshift``, one document per operation), so the cost per arrival is a metric,
not a guess; the sweeper also prints the batches' health (:mod:`patterns.health`), which the
template's alarms on stuck and failed batches read.

The cold start makes no AWS request: the table, the bucket and the queues are the template's.
"""

from __future__ import annotations

from typing import Any

from patterns import S3ToRedshift
from patterns.health import publish_health
from stateless_state.cloudwatch import publish_metrics

NAMESPACE = "S3ToRedshift"

pipeline = S3ToRedshift.from_env()
metered = publish_metrics(pipeline.batcher.store, namespace=NAMESPACE)


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.handle(event, context)


@metered
def sweeper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = pipeline.sweep(context)
    publish_health(pipeline.batcher, namespace=NAMESPACE)
    return report
