"""Abandoning a batch: the one way to stop a batch for good.

In DynamoDB first (no loader can claim it again), conditional on what was read; then, when a
loader holds or held it, in the warehouse ledger (no loader still running can commit it
afterwards; see :mod:`patterns.loaders.base` for the ledger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from stateless_state import InvalidArgument, StateConflict

from .batches import Batch, BatchState

if TYPE_CHECKING:
    from ..loaders.base import Loader
    from . import Batcher

__all__ = ["ABANDON_ATTEMPTS", "abandon_batch", "needs_warehouse"]


def needs_warehouse(batch: Batch) -> bool:
    """True when a loader may hold ``batch`` or have held it (it was ever claimed: its fence
    counts the claims): abandoning it must then be recorded in the warehouse too, or a loader
    still running could commit it afterwards."""
    return batch.fence > 0


def abandon_batch(
    batcher: Batcher,
    loader: Loader | None,
    batch_id: str,
    *,
    who: str,
    why: str,
    expect_count: int | None = None,
) -> Literal["abandoned", "loaded"]:
    """Abandon a batch for good. First in DynamoDB, conditional on the state **and fence**
    read (so no loader can claim it from then on, and none claimed it since the read), then,
    when :func:`needs_warehouse` by that same fence, in the warehouse ledger, atomically with
    the loads: a loader that still holds the batch commits nothing afterwards (its load reports
    ``abandoned``). If a load committed first, the batch is marked ``loaded`` instead and
    ``"loaded"`` is returned: its rows are in the warehouse, once. ``"abandoned"`` is never
    answered while a loader can still commit.

    The write is also conditional on the member count read, so an arrival that joins an open
    batch meanwhile is never abandoned by a decision that did not count it. With
    ``expect_count`` (what the operator was shown, as the CLI passes), a batch that no longer
    has that many members is refused with :class:`StateConflict` and nothing changes; without
    it the batch is read again and abandoned with what it holds then.

    A claim taken between the read and the write fails the write; the batch is read again and
    the decision (does the warehouse need the abandon too?) made on what it is now, up to
    :data:`ABANDON_ATTEMPTS` times. Safe to repeat (an abandoned batch goes straight to the
    warehouse step), so an error from the warehouse is mended by running it again; two
    operators abandoning at once both end at the warehouse step. Raises
    :class:`InvalidArgument` when the batch is unknown or needs the warehouse and ``loader`` is
    None, :class:`StateConflict` when it is loaded or kept moving (nothing changed).

    Cost: one ``GetItem`` and one conditional ``UpdateItem`` per attempt, plus the warehouse's
    abandon when needed (and one more ``UpdateItem`` when the warehouse had committed it).
    """
    for _ in range(ABANDON_ATTEMPTS):
        batch = batcher.batch(batch_id)
        if batch is None:
            raise InvalidArgument(f"no batch {batch_id}")
        if batch.state == BatchState.LOADED:
            raise StateConflict(f"batch {batch_id} is loaded; nothing changed")
        if needs_warehouse(batch) and loader is None:
            raise InvalidArgument(
                f"batch {batch_id} is {batch.state} after {batch.attempts} load attempts: a "
                "loader may still commit it, so the abandon must be recorded in the warehouse "
                "too; give the warehouse loader (the pipeline's configuration); nothing changed"
            )
        if batch.state == BatchState.ABANDONED:
            break
        if expect_count is not None and batch.count != expect_count:
            raise StateConflict(
                f"batch {batch_id} has {batch.count} members, not the {expect_count} expected "
                "(arrivals joined it since it was shown): look at it again; nothing changed"
            )
        try:
            batcher.operator_action(
                batch_id,
                "abandon",
                expect_state=batch.state,
                expect_fence=batch.fence,
                expect_count=batch.count,
                who=who,
                why=why,
            )
        except StateConflict:
            continue  # claimed, released or abandoned since the read: decide on what it is now
        break
    else:
        raise StateConflict(
            f"batch {batch_id} changed state {ABANDON_ATTEMPTS} times while being abandoned "
            "(loaders keep claiming it); nothing changed: try again"
        )
    # The fence is frozen from here: an abandoned batch is never claimed again.
    if loader is None or not needs_warehouse(batch):
        return "abandoned"
    if loader.abandon(batch_id) == "abandoned":
        return "abandoned"
    batcher.operator_action(
        batch_id,
        "loaded",
        expect_state=BatchState.ABANDONED,
        expect_fence=batch.fence,
        who=who,
        why="the warehouse had committed the batch before the abandon reached it",
    )
    return "loaded"


ABANDON_ATTEMPTS = 5
"""How often :func:`abandon_batch` reads the batch again when a loader's claim moved it
between its read and its write."""
