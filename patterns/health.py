"""The batcher's health as CloudWatch metrics, for alarms on stuck batches.

The scheduled sweeper loads whatever waits; what is still waiting after it ran, and for how
long, tells whether loads are stuck (a warehouse that refuses every COPY, a load that hangs
past its lease again and again, a sweeper that stopped running). :func:`publish_health` prints
one Embedded Metric Format document per call (CloudWatch Logs turns it into metrics, no
``PutMetricData`` and no permission beyond the function's logs):

=========================  =======  ===========================================================
``OldestWaitingBatchAge``  Seconds  since the oldest batch waiting to load was sealed (0: none)
``WaitingBatches``         Count    batches sealed, loading, or waiting for a retry
``FailedBatches``          Count    batches that used up their load attempts: an operator's turn
=========================  =======  ===========================================================

Dimensions ``Table`` (the state table's name, unique in an account and region, so two
deployments' alarms never read each other's batches) and ``Stream``; with ``rollup`` (a
deployment of many feeds, whose alarms cannot be one per stream) also ``Table`` alone. The
example's template alarms on the first with missing data as breaching (a sweeper that stopped
reporting is a stuck pipeline too) and on the third.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateless_state import clock
from stateless_state.cloudwatch import emit, metric_document

if TYPE_CHECKING:
    from .batcher import Batcher

__all__ = [
    "FAILED",
    "OLDEST_WAITING",
    "WAITING",
    "BatchHealth",
    "batch_health",
    "health_document",
    "publish_health",
]

OLDEST_WAITING = "OldestWaitingBatchAge"
"""The metric of the oldest batch waiting to load, in seconds."""
WAITING = "WaitingBatches"
"""The metric of the batches waiting to load."""
FAILED = "FailedBatches"
"""The metric of the batches ``failed`` for good, waiting for an operator."""
_UNITS = {OLDEST_WAITING: "Seconds", WAITING: "Count", FAILED: "Count"}


@dataclass(frozen=True)
class BatchHealth:
    """What waits in one stream: ``waiting`` batches (sealed, loading or due for a retry), the
    oldest of them sealed ``oldest_waiting`` seconds ago (0 when none waits), and ``failed``
    batches (attempts used up)."""

    table: str
    stream: str
    waiting: int
    oldest_waiting: float
    failed: int


def batch_health(batcher: Batcher, now: float | None = None) -> BatchHealth:
    """The stream's health now. Two ``Query`` requests of the sparse index (the waiting
    batches, the failed ones), eventually consistent: a batch sealed or loaded a moment ago
    may show on the next call."""
    at = clock.now() if now is None else now
    waiting = batcher.pending()
    sealed = [b.sealed_at for b in waiting if b.sealed_at is not None]
    return BatchHealth(
        table=batcher.store.table_name,
        stream=batcher.stream,
        waiting=len(waiting),
        oldest_waiting=max(0.0, at - min(sealed)) if sealed else 0.0,
        failed=len(batcher.failed()),
    )


def health_document(
    health: BatchHealth,
    *,
    namespace: str,
    timestamp: float | None = None,
    rollup: bool = False,
) -> dict[str, Any]:
    """``health`` as one EMF document under ``namespace``, dimensions ``Table`` and
    ``Stream``; with ``rollup``, under ``Table`` alone too (a second dimension set of the same
    values), so that one alarm with the ``Maximum`` statistic watches every stream of a table:
    each stream's document is one data point of that series. Raises
    :class:`~stateless_state.InvalidArgument` for a stream name CloudWatch cannot take as a
    dimension value (1 to 1,024 printable ASCII characters)."""
    document = metric_document(
        namespace,
        {
            OLDEST_WAITING: round(health.oldest_waiting, 3),
            WAITING: health.waiting,
            FAILED: health.failed,
        },
        units=_UNITS,
        dimensions={"Table": health.table, "Stream": health.stream},
        timestamp=timestamp,
    )
    if rollup:
        document["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append(["Table"])
    return document


def publish_health(batcher: Batcher, *, namespace: str, rollup: bool = False) -> BatchHealth:
    """Measure the stream's health (:func:`batch_health`) and print it as an EMF document on
    standard output, which Lambda sends to CloudWatch Logs (``rollup``: see
    :func:`health_document`). Returns what it measured."""
    health = batch_health(batcher)
    emit(health_document(health, namespace=namespace, rollup=rollup))
    return health
