"""How a batch seals: by count or bytes in the add that reaches a threshold, or by age.

* **count, bytes**: the add request that reaches a threshold writes the seal itself, in its own
  transaction (:mod:`patterns.batcher.members` builds it; :func:`sealed_batch` is the batch it
  reports), so the arrival that crosses the threshold is the last member and exactly one caller
  is handed the sealed batch;
* **age**: :func:`seal_by_age`, driven by a schedule (the sweeper), not by the next arrival.

A sealed batch carries the sparse index keys ``pending#<stream>`` (:func:`pending_index`) until it
is loaded, so the sweeper finds every batch waiting to be loaded with one Query, never a Scan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stateless_state import keys
from stateless_state.expressions import Attr, Update
from stateless_state.table import ConditionFailed, Table

from .batches import Batch, BatchState, Thresholds, batch_from_item

__all__ = ["pending_index", "seal_by_age", "seal_tag", "sealed_batch"]


def pending_index(stream: str, at: float, batch_id: str) -> dict[str, str]:
    """The sparse index attributes that list a batch as waiting to be loaded, oldest first."""
    return keys.batch_index("pending", stream, at, batch_id).index_item()


def seal_tag(config_version: int | None, config_name: str | None = None) -> dict[str, Any]:
    """The attributes a seal writes beside its state: the feeds' configuration version it was
    sealed under and that configuration's name (:mod:`patterns.feeds`), none outside feeds."""
    if config_version is None:
        return {}
    named = {} if config_name is None else {"config_name": config_name}
    return {"config_version": config_version, **named}


def sealed_batch(
    stream: str,
    lane: int,
    seq: int,
    *,
    count: int,
    total: int,
    opened_at: float,
    thresholds: Thresholds,
    now: float,
    config_version: int | None = None,
    config_name: str | None = None,
) -> Batch:
    """The batch an add seals at ``count`` members and ``total`` bytes, as the add reports it;
    the reason is ``count`` when the count threshold is reached, else ``bytes``. No I/O."""
    reason = "count" if thresholds.count is not None and count >= thresholds.count else "bytes"
    return Batch(
        stream,
        lane,
        seq,
        BatchState.SEALED,
        count,
        total,
        opened_at,
        sealed_at=now,
        seal_reason=reason,
        config_version=config_version,
        config_name=None if config_version is None else config_name,
    )


def seal_by_age(
    table: Table,
    stream: str,
    lanes: int,
    latest: Callable[[int], Batch | None],
    *,
    age: float,
    now: float,
    config_version: int | None = None,
    config_name: str | None = None,
) -> list[Batch]:
    """Seal each lane's open batch (``latest(lane)``, the lane's newest batch) opened at least
    ``age`` seconds before ``now``; return those this call sealed. The seal is conditional on the
    batch still being open, so under any number of concurrent sweepers and adds each batch is
    returned by exactly one caller, and an add that races with it lands in this batch (its
    condition saw it open) or the next.

    ``config_version`` and ``config_name`` (feeds) are recorded on each batch by its seal, in
    the same write.

    Cost: what ``latest`` costs per lane (one ``Query``), plus one conditional ``UpdateItem``
    per batch sealed."""
    sealed = []
    for lane in range(lanes):
        batch = latest(lane)
        if batch is None or batch.state != BatchState.OPEN or batch.opened_at + age > now:
            continue
        seal = Update().set_all(
            {
                "state": BatchState.SEALED,
                "sealed_at": now,
                "seal_reason": "age",
                **pending_index(stream, now, batch.id),
                **seal_tag(config_version, config_name),
            }
        )
        try:
            item = table.update_item(
                keys.batch(stream, lane, batch.seq).item(),
                seal,
                condition=Attr("state").eq(BatchState.OPEN),
                returns="ALL_NEW",
            )
        except ConditionFailed:
            continue
        sealed.append(batch_from_item(item or {}))
    return sealed
