"""Loading a sealed batch: the fenced load ticket a loader holds while it loads.

A ticket is the batch item's fenced claim (:class:`~stateless_state.lease.FencedClaim`, the
mechanism under leases): every write the loader makes to the batch afterwards — the warehouse
statement id, ``loaded``, a failure with its backoff — is conditional on the ticket's fence, so a
loader whose lease ran out and was taken over writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from stateless_state import LeaseLost, keys
from stateless_state.errors import ConditionFailed
from stateless_state.expressions import Attr, Update
from stateless_state.lease import FencedClaim
from stateless_state.table import INDEX_PK, INDEX_SK

from .batches import Batch, BatchState

if TYPE_CHECKING:
    from .batcher import Batcher

__all__ = ["LoadTicket"]


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
