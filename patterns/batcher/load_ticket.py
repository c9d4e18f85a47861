"""Loading a sealed batch: the claim that takes it (:func:`claim_load`) and the fenced load ticket
a loader holds while it loads.

A ticket is the batch item's fenced claim (:class:`~stateless_state.lease.FencedClaim`, the
mechanism under leases): every write the loader makes to the batch afterwards — the warehouse
statement id, ``loaded``, a failure with its backoff — is conditional on the ticket's fence, so a
loader whose lease ran out and was taken over writes nothing.

Stopping a batch for good is :mod:`patterns.batcher.abandon`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from stateless_state import LeaseLost, LeaseUnavailable, clock, keys
from stateless_state.errors import ConditionFailed
from stateless_state.expressions import Attr, Update
from stateless_state.lease import FencedClaim
from stateless_state.table import INDEX_PK, INDEX_SK, Table

from .batches import Batch, BatchState, batch_from_item

__all__ = ["SUPERSEDED_IDS_BUDGET", "LoadTicket", "RetryPolicy", "claim_load"]

SUPERSEDED_IDS_BUDGET = 32 * 1024
"""Bytes of superseded member ids kept on a batch item (DynamoDB's item limit is 400 KB, and
the item holds the rest of the batch as well); beyond it only their count is kept."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed load is retried: ``max_attempts`` loads in all, the *n*-th failure waiting
    ``backoff * 2**(n-1)`` seconds before the batch is due again."""

    max_attempts: int
    backoff: float

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` loads failed."""
        return float(self.backoff * 2 ** (attempts - 1))


@dataclass
class LoadTicket:
    """The right to load one batch, fenced. End it with :meth:`loaded` or :meth:`failed`.

    The ticket writes only through its own fenced claim on the batch item, and carries the
    retry policy it applies on failure as values."""

    batch: Batch
    retry: RetryPolicy
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

    def record_superseded(self, member_ids: Sequence[str]) -> None:
        """Write on the batch the members whose content this load found gone from S3 (fenced;
        replaces what an earlier attempt wrote), before the load commits, so the record
        survives a crash right after the commit. Bounded whatever their number: the ids are
        kept up to ``SUPERSEDED_IDS_BUDGET`` bytes, in order, and their count always, so a batch
        of thousands of deleted files still fits the item and ends ``loaded``. One conditional
        ``UpdateItem``."""
        kept: list[str] = []
        size = 0
        for member_id in member_ids:
            size += len(member_id.encode())
            if size > SUPERSEDED_IDS_BUDGET:
                break
            kept.append(member_id)
        count = len(member_ids)
        update = Update().set_all({"superseded": kept, "superseded_count": count})
        self._end(update, "superseded members")
        self.batch = replace(self.batch, superseded=tuple(kept), superseded_count=count)

    def loaded(self) -> None:
        """Mark the batch loaded (fenced). One conditional ``UpdateItem``."""
        done = Update().set_all({"state": BatchState.LOADED, "loaded_at": clock.now()})
        self._end(done.remove(INDEX_PK, INDEX_SK, "lease_until"), "loaded")

    def failed(self, error: str) -> BatchState:
        """Record a failed load: back to sealed with a backoff while attempts remain, else
        ``failed`` for an operator. Returns the new state."""
        b = self.batch
        now = clock.now()
        if b.attempts < self.retry.max_attempts:
            retry = {
                "state": BatchState.SEALED,
                "next_attempt_at": now + self.retry.delay(b.attempts),
            }
            self._end(
                Update().set_all({**retry, "last_error": error[:2000]}).remove("lease_until"),
                "failure",
            )
            return BatchState.SEALED
        failed = {
            "state": BatchState.FAILED,
            "last_error": error[:2000],
            INDEX_PK: keys.index_partition("failed", b.stream),
        }
        self._end(Update().set_all(failed).remove("lease_until"), "failure")
        return BatchState.FAILED


def claim_load(
    table: Table, batch_key: Mapping[str, str], batch_id: str, *, lease: float, retry: RetryPolicy
) -> LoadTicket:
    """Take the right to load the batch at ``batch_key``: sealed and due, or loading under an
    expired lease (a crashed loader). The claim is the lease's fenced claim on the batch item,
    with the batch's own attribute names (``loader``, ``lease_until``): of any number of
    concurrent claimers one wins, and its ticket's ``fence`` exceeds every earlier loader's.
    Raises :class:`LeaseUnavailable` otherwise. One conditional ``UpdateItem``."""
    claim = FencedClaim(table, batch_key, holder_attr="loader", expiry_attr="lease_until")
    now = clock.now()
    nonce = clock.token_hex(8)
    state, retry_at = Attr("state"), Attr("next_attempt_at")
    due = state.eq(BatchState.SEALED) & (retry_at.not_exists() | retry_at.le(now))
    abandoned_by_crash = state.eq(BatchState.LOADING) & Attr("lease_until").le(now)
    try:
        item = claim.take(
            nonce=nonce,
            until=now + lease,
            claimable=due | abandoned_by_crash,
            also_set={"state": BatchState.LOADING},
            also_add={"attempts": 1},
        )
    except ConditionFailed as e:
        old = e.old or {}
        raise LeaseUnavailable(
            f"batch {batch_id}", old.get("loader"), old.get("lease_until")
        ) from None
    return LoadTicket(batch_from_item(item), retry, nonce, claim)
