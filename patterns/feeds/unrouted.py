"""Arrivals that no feed took: acknowledged, counted, and kept for the operator to see.

An arrival the routing rule gives to no feed (:mod:`patterns.feeds.routing`) is not an error of
the event, so it is never redelivered (it would be unrouted again, forever), and never dropped
unseen: :func:`record_unrouted` writes it in the state table, where ``stateless-state feeds
unrouted`` lists it (:func:`list_unrouted`), and counts it in ``store.metrics`` under the
operation ``feeds.unrouted`` (one call per arrival, no request), which
:func:`stateless_state.cloudwatch.publish_metrics` turns into the EMF metric ``Calls`` with the
dimension ``Operation=feeds.unrouted``: alarm on it.

Layout: ``pk=unrouted#<configuration name>``, ``sk=<event time>#<sha256(arrival id)>`` (one
partition per configuration, newest last): a redelivered event writes the same item again, so
the listing shows each arrival once. Each expires ``retention`` after it was written (wall
clock, never event time), 14 days by default.

Cost: one ``PutItem`` (1 WCU per started KB) per unrouted arrival, none for routed ones;
listing, one ``Query``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from stateless_state import Store, clock, domain, keys
from stateless_state.expressions import Attr
from stateless_state.store import TTL_ATTRIBUTE

from ..batcher.arrivals import Arrival

__all__ = [
    "DEFAULT_UNROUTED_RETENTION",
    "UNROUTED_OPERATION",
    "UnroutedArrival",
    "list_unrouted",
    "record_unrouted",
]

DEFAULT_UNROUTED_RETENTION = timedelta(days=14)
"""How long an unrouted arrival stays listed."""

UNROUTED_OPERATION = "feeds.unrouted"
"""The ``store.metrics`` operation (and EMF ``Operation`` dimension) that counts them."""


@dataclass(frozen=True)
class UnroutedArrival:
    """An arrival no feed took: its id, bucket and key, size, event time, what S3 said of it
    (``data``), and when it was recorded."""

    id: str
    bucket: str
    key: str
    size: int
    at: float
    recorded_at: float
    data: Mapping[str, Any]


def record_unrouted(
    store: Store,
    config: str,
    arrival: Arrival,
    *,
    retention: timedelta | float = DEFAULT_UNROUTED_RETENTION,
) -> None:
    """Record ``arrival`` as unrouted under the configuration ``config`` and count it (module
    docstring). One unconditional ``PutItem``: writing it twice (a redelivery) leaves one item."""
    keep = domain.duration(retention, "retention")
    at = domain.instant(arrival.at, "Arrival.at")
    digest = hashlib.sha256(arrival.id.encode()).hexdigest()
    now = clock.now()
    store.table.put(
        {
            **keys.unrouted(config, at, digest).item(),
            "id": arrival.id,
            "size": arrival.size,
            "at": at,
            "data": dict(arrival.data),
            "recorded_at": now,
            TTL_ATTRIBUTE: math.ceil(now + keep),
        }
    )
    store.metrics.record(UNROUTED_OPERATION, requests=0)


def list_unrouted(store: Store, config: str, *, limit: int = 100) -> list[UnroutedArrival]:
    """The unrouted arrivals of ``config`` still retained, newest event first, at most
    ``limit``. One ``Query`` (eventually consistent: a listing, not a decision)."""
    domain.integer(limit, "limit", minimum=1, maximum=10_000)
    out: list[UnroutedArrival] = []
    now = clock.now()
    for item in store.table.query(
        Attr("pk").eq(keys.unrouted_partition(config)), consistent=False, reverse=True
    ):
        if float(item.get(TTL_ATTRIBUTE, math.inf)) <= now:
            continue  # expired, not yet deleted by TTL
        data = dict(item.get("data", {}))
        out.append(
            UnroutedArrival(
                id=item["id"],
                bucket=str(data.get("bucket", "")),
                key=str(data.get("key", "")),
                size=int(item.get("size", 0)),
                at=float(item["at"]),
                recorded_at=float(item["recorded_at"]),
                data=data,
            )
        )
        if len(out) >= limit:
            break
    return out
