"""The two Lambda functions of a many-feeds deployment: one handler and one sweeper for every
feed (configuration: :func:`patterns.config.feeds_settings`, the feeds themselves in the state
table, or declared in ``FEEDS``).

Each invocation prints what it spent in DynamoDB as CloudWatch Embedded Metric Format lines
(namespace ``S3Feeds``), unrouted arrivals included (``Operation=feeds.unrouted``); the sweeper
also prints each feed's batches' health (:mod:`patterns.health`) under ``Table`` and ``Stream``
and, rolled up, under ``Table`` alone, which the template's alarms read.

The cold start makes no AWS request: the table, the buckets and the queues are the template's;
the feeds' configuration is read on the first invocation (one ``GetItem``) and then once per
cache interval.
"""

from __future__ import annotations

import logging
from typing import Any

from patterns.feeds import S3Feeds
from patterns.health import publish_health
from stateless_state import InvalidArgument
from stateless_state.cloudwatch import publish_metrics

NAMESPACE = "S3Feeds"

feeds = S3Feeds.from_env()
metered = publish_metrics(feeds.store, namespace=NAMESPACE)
_log = logging.getLogger(__name__)


@metered
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return feeds.handle(event, context)


@metered
def sweeper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = feeds.sweep(context)
    for name in sorted(feeds.prepare().feeds):
        try:
            publish_health(feeds.pipeline(name).batcher, namespace=NAMESPACE, rollup=True)
        except InvalidArgument as e:  # a stream CloudWatch cannot name: the others still report
            _log.error("feed %s: no health metrics: %s", name, e)
    return report
