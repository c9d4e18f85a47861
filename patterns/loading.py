"""Loading a sealed batch: the fenced load ticket a loader holds while it loads.

A ticket is the batch item's fenced claim (:class:`~stateless_state.lease.FencedClaim`, the
mechanism under leases): every write the loader makes to the batch afterwards — the warehouse
statement id, ``loaded``, a failure with its backoff — is conditional on the ticket's fence, so a
loader whose lease ran out and was taken over writes nothing.

:func:`abandon_batch` is the one way to stop a batch for good: in DynamoDB (no loader can claim
it again) and, when a loader holds or held it, in the warehouse ledger (no loader still running
can commit it afterwards).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from stateless_state import InvalidArgument, LeaseLost, StateConflict, keys
from stateless_state.errors import ConditionFailed
from stateless_state.expressions import Attr, Update
from stateless_state.lease import FencedClaim
from stateless_state.table import INDEX_PK, INDEX_SK

from .batches import Batch, BatchState

if TYPE_CHECKING:
    from .batcher import Batcher
    from .redshift import Loader

__all__ = [
    "ABANDON_ATTEMPTS",
    "SUPERSEDED_IDS_BUDGET",
    "LoadTicket",
    "abandon_batch",
    "needs_warehouse",
]

SUPERSEDED_IDS_BUDGET = 32 * 1024
"""Bytes of superseded member ids kept on a batch item (DynamoDB's item limit is 400 KB, and
the item holds the rest of the batch as well); beyond it only their count is kept."""


@dataclass
class LoadTicket:
    """The right to load one batch, fenced. End it with :meth:`loaded` or :meth:`failed`.

    ``batcher`` is the batcher it came from (for reading the batch's members); the ticket writes
    only through its own fenced claim on the batch item."""

    batcher: Batcher
    batch: Batch
    _nonce: str = field(repr=False)
    _claim: FencedClaim = field(repr=False)

    @property
    def fence(self) -> int:
        return self.batch.fence

    def _end(self, update: Update, what: str) -> None:
        b = self.batch
        try:
            self._claim.update(b.fence, update, condition=Attr("state").eq(BatchState.LOADING))
        except ConditionFailed as e:
            old = e.old or {}
            if what == "loaded" and old.get("state") == BatchState.LOADED:
                return
            raise LeaseLost(
                f"batch {b.id}: load ticket {b.fence} was superseded (now {old.get('state')}, "
                f"fence {old.get('fence')}); {what} not recorded"
            ) from None

    def record_statement(self, statement_id: str) -> None:
        """Write the warehouse statement id on the batch before waiting for it, so a loader
        that takes over asks the warehouse what happened instead of loading again."""
        b = self.batch
        self._end(Update().set("statement_id", statement_id), "statement id")
        self.batch = replace(b, statement_id=statement_id)

    def record_superseded(self, member_ids: list[str], *, total: int | None = None) -> None:
        """Write on the batch the members whose content no longer exists (fenced; replaces
        what an earlier attempt wrote). Bounded whatever their number: the ids are kept up to
        ``SUPERSEDED_IDS_BUDGET`` bytes, in order, and their count (``total``, else
        ``len(member_ids)``) always, so a batch of thousands of deleted files still fits the
        item and ends ``loaded``. One conditional ``UpdateItem``."""
        kept: list[str] = []
        size = 0
        for member_id in member_ids:
            size += len(member_id.encode())
            if size > SUPERSEDED_IDS_BUDGET:
                break
            kept.append(member_id)
        count = len(member_ids) if total is None else total
        update = Update().set_all({"superseded": kept, "superseded_count": count})
        self._end(update, "superseded members")
        self.batch = replace(self.batch, superseded=tuple(kept), superseded_count=count)

    def loaded(self) -> None:
        """Mark the batch loaded (fenced). One conditional ``UpdateItem``."""
        done = Update().set_all({"state": BatchState.LOADED, "loaded_at": time.time()})
        self._end(done.remove(INDEX_PK, INDEX_SK, "lease_until"), "loaded")

    def failed(self, error: str) -> BatchState:
        """Record a failed load: back to sealed with a backoff while attempts remain, else
        ``failed`` for an operator. Returns the new state."""
        b = self.batch
        now = time.time()
        if b.attempts < self.batcher.max_attempts:
            delay = self.batcher.retry_backoff * 2 ** (b.attempts - 1)
            retry = {"state": BatchState.SEALED, "next_attempt_at": now + delay}
            self._end(
                Update().set_all({**retry, "last_error": error[:2000]}).remove("lease_until"),
                "failure",
            )
            return BatchState.SEALED
        failed = {
            "state": BatchState.FAILED,
            "last_error": error[:2000],
            INDEX_PK: keys.index_partition("failed", self.batcher.stream),
        }
        self._end(Update().set_all(failed).remove("lease_until"), "failure")
        return BatchState.FAILED


def needs_warehouse(batch: Batch) -> bool:
    """True when a loader may hold ``batch`` or have held it (it was ever claimed: its fence
    counts the claims): abandoning it must then be recorded in the warehouse too, or a loader
    still running could commit it afterwards."""
    return batch.fence > 0


def abandon_batch(
    batcher: Batcher, loader: Loader | None, batch_id: str, *, who: str, why: str
) -> Literal["abandoned", "loaded"]:
    """Abandon a batch for good. First in DynamoDB, conditional on the state **and fence**
    read (so no loader can claim it from then on, and none claimed it since the read), then,
    when :func:`needs_warehouse` by that same fence, in the warehouse ledger, atomically with
    the loads: a loader that still holds the batch commits nothing afterwards (its load reports
    ``abandoned``). If a load committed first, the batch is marked ``loaded`` instead and
    ``"loaded"`` is returned: its rows are in the warehouse, once. ``"abandoned"`` is never
    answered while a loader can still commit.

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
        try:
            batcher.operator_action(
                batch_id,
                "abandon",
                expect_state=batch.state,
                expect_fence=batch.fence,
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
