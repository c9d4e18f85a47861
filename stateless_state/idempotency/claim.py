"""A claim on one idempotency key: its stored result (a replay), or the right to run the body
and end it with a completion or a release.

Fenced: completing and releasing go through the record's :class:`~stateless_state.fencing.
FencedClaim` and are conditional on ``owner`` still being this claim's nonce, so an invocation
that outlived its lease (a zombie) can neither overwrite nor delete the record of the invocation
that took over. That closes the hole where Powertools' unconditional success update and delete
let a late first attempt clobber a newer owner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import clock
from ..codec import to_json
from ..errors import InvalidArgument, ItemTooLarge, LeaseLost, NotSerializable
from ..expressions import Attr, Update
from ..fencing import FencedClaim
from ..retry import retrying, transient
from ..table import ConditionFailed, TransactionCanceled
from ..transaction import MAX_ACTIONS, Transaction
from .request_keys import IdempotencyKey

if TYPE_CHECKING:
    from .cache import ResultCache

__all__ = ["COMPLETED", "IN_PROGRESS", "MAX_RESULT_BYTES", "RELEASED", "Claim"]

MAX_RESULT_BYTES = 350_000
"""The largest result a record stores, in bytes of JSON (the record must fit DynamoDB's 400 KB)."""
# A record's status: the item layout's words, part of the public contract.
IN_PROGRESS = "in_progress"
"""The status of a record whose body is running under a claim."""
COMPLETED = "completed"
"""The status of a record that holds the body's result, replayed to duplicates."""
RELEASED = "released"
"""The status of a record whose claim was released (the body raised): the next claim runs it."""


class _Ownership:
    """What an owned claim holds: its record's fenced claim and its nonce, its payload's hash,
    and how its completion is kept. (A plain class, as :class:`Claim` is.)"""

    __slots__ = ("cache", "digest", "expires_after", "item", "nonce", "record")

    def __init__(
        self,
        record: FencedClaim,
        nonce: str,
        digest: str | None,
        expires_after: float,
        cache: ResultCache | None,
    ) -> None:
        self.record, self.nonce, self.digest = record, nonce, digest
        self.expires_after, self.cache = expires_after, cache
        # The record as this claim wrote it, once taken: the completion writes it whole.
        self.item: dict[str, Any] | None = None


class Claim:
    """The outcome of :meth:`Idempotency.claim <stateless_state.idempotency.Idempotency.claim>`.

    ``replay`` True: the key was completed earlier and ``result`` is the stored result (falsy
    results included); call nothing else. ``replay`` False: this caller owns the key and must
    end the claim with :meth:`complete` or :meth:`release`. Build one with :meth:`replayed` or
    :meth:`owned`. Two claims are equal when they are the same replay, or the same ownership.
    """

    # Written out rather than a dataclass, which costs every idempotent handler's cold start
    # most of a millisecond to define (measured: 0.8 ms of the package's 3).
    __slots__ = ("_owned", "fence", "key", "lease_until", "replay", "result")
    __match_args__ = ("key", "replay", "result", "fence", "lease_until")

    def __init__(
        self,
        key: IdempotencyKey,
        replay: bool,
        result: Any = None,
        fence: int = 0,
        lease_until: float = 0.0,
        _owned: _Ownership | None = None,
    ) -> None:
        self.key, self.replay, self.result = key, replay, result
        self.fence, self.lease_until = fence, lease_until
        self._owned = _owned

    def __repr__(self) -> str:
        return (
            f"Claim(key={self.key!r}, replay={self.replay!r}, result={self.result!r}, "
            f"fence={self.fence!r}, lease_until={self.lease_until!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Claim):
            return NotImplemented
        mine = (self.key, self.replay, self.result, self.fence, self.lease_until, self._owned)
        return mine == (
            other.key,
            other.replay,
            other.result,
            other.fence,
            other.lease_until,
            other._owned,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    @classmethod
    def replayed(cls, key: IdempotencyKey, result: Any, fence: int = 0) -> Claim:
        """The claim of a key completed earlier with ``result``: nothing to end."""
        return cls(key, True, result, fence)

    @classmethod
    def owned(
        cls,
        key: IdempotencyKey,
        record: FencedClaim,
        *,
        nonce: str,
        fence: int,
        lease_until: float,
        digest: str | None,
        expires_after: float,
        cache: ResultCache | None,
    ) -> Claim:
        """The claim ``nonce`` took on ``record``: its completion is kept for ``expires_after``
        seconds (and in ``cache``, if any), with ``digest`` as its payload's hash."""
        owned = _Ownership(record, nonce, digest, expires_after, cache)
        return cls(key, False, None, fence, lease_until, owned)

    def _took(self, item: Mapping[str, Any]) -> None:
        """Record the item the claim wrote (its first claim's ``PutItem``, or a takeover's
        ``ALL_NEW``): the completion then writes the record whole."""
        owned = self._require_owner()
        owned.item = dict(item)
        self.fence, self.lease_until = int(item["fence"]), float(item["lease_until"])

    def complete(self, result: Any, *, also: Sequence[Mapping[str, Any]] = ()) -> None:
        """Store ``result`` and mark the key completed; with ``also``, commit those writes in the
        same transaction, so they happen exactly once per key: if the claim was taken over, or
        one of them fails its condition, nothing is written at all.

        Args:
            also: your own ``TransactWriteItems`` entries (any table; at most 99, DynamoDB's
                100-action limit less the completion), e.g. built from PynamoDB models by
                :mod:`stateless_state.pynamodb`.

        Cost: one conditional ``PutItem`` of the whole record, the claim's attributes with the
        result (1 WCU for small results; conditional on the claim's nonce, like every write of a
        held record, so a claim taken over writes nothing); with ``also``, one
        ``TransactWriteItems`` of ``1 + len(also)`` items (2 WCU per item per started KB).

        Raises :class:`NotSerializable` or :class:`ItemTooLarge` (the claim is released, nothing
        is stored: the record, its key included, must fit DynamoDB's 400 KB), or
        :class:`LeaseLost` when another invocation took the key over. When one of ``also``'s
        conditions fails, :class:`~stateless_state.errors.TransactionCanceled` (``reasons[i +
        1]`` explains your i-th write) and the claim is released, so a retry can run the body
        again. Transient failures and transaction conflicts that outlast botocore's retries are
        retried (up to 4 times, within the lease): losing this write would let the body run
        again once the lease ends. An ambiguous write is recognised by the claim's nonce, never
        applied twice.
        """
        owned = self._require_owner()
        text = self._result_text(result)
        try:
            self._write_completion(text, also)
        except LeaseLost:
            raise
        except Exception:
            # Refused (a write DynamoDB rejects as a whole, a missing table, a failed condition
            # of yours) or still failing after the retries: nothing of this completion is
            # stored, and keeping the claim would answer every retry with AlreadyInProgress
            # until the lease ends. The release is conditional on this claim's nonce and on
            # the record being in progress, so it never undoes a completion that landed.
            self.release()
            raise
        if owned.cache is not None:
            owned.cache.put(owned.record.key["pk"], text, owned.digest)

    def release(self) -> bool:
        """Give the key up so a retry can run the body. One conditional ``UpdateItem``.

        Returns False when the key had already passed to another invocation (nothing changed).
        """
        released = Update().set_all({"status": RELEASED, "lease_until": 0})
        owned = self._require_owner()
        try:
            owned.record.update_held(
                owned.nonce, released, condition=Attr("status").is_in(IN_PROGRESS, RELEASED)
            )
        except ConditionFailed:
            return False
        return True

    @property
    def owner_token(self) -> str:
        """The random token this claim wrote as the record's ``owner``: a write conditional on
        ``owner`` being this token (and ``status`` being ``in_progress``) happens only while
        this claim owns the key. Empty for a replay."""
        return "" if self._owned is None or self.replay else self._owned.nonce

    @property
    def record_key(self) -> dict[str, str]:
        """The key (``pk``, ``sk``) of the key's record in the state table."""
        return dict(self._require_owner().record.key)

    @property
    def table_name(self) -> str:
        """The state table that holds the record."""
        return self._require_owner().record.table.name

    def condition_check(self) -> dict[str, Any]:
        """A ``TransactWriteItems`` ``ConditionCheck`` entry that holds only while this claim
        owns the key, for a transaction you build yourself: your writes then never land
        from an invocation whose claim was taken over. (For exactly-once writes commit them
        with the completion instead: ``complete(result, also=...)``.)"""
        owned = self._require_owner()
        tx = Transaction(owned.record.table)
        owned.record.check_held_in(tx, owned.nonce, condition=Attr("status").eq(IN_PROGRESS))
        return tx.actions[0]

    def _require_owner(self) -> _Ownership:
        if self._owned is None or self.replay:
            raise InvalidArgument(
                "this claim is a replay of a completed key; there is nothing to end"
            )
        return self._owned

    def _result_text(self, result: Any) -> str:
        """``result`` as the JSON the record stores; the claim is released when it cannot be."""
        try:
            text = to_json(result, "the result")
        except NotSerializable:
            self.release()
            raise
        if len(text.encode()) > MAX_RESULT_BYTES:
            self.release()
            raise ItemTooLarge(
                f"the result for key {self.key!r} is {len(text.encode())} bytes of JSON; at most "
                f"{MAX_RESULT_BYTES} fit in a DynamoDB item. Store it in S3 and return its key."
            )
        return text

    def _write_completion(self, text: str, also: Sequence[Mapping[str, Any]]) -> None:
        """The one write whose loss would make the body run twice (the key would be taken over
        when the lease ends), and it is safe to repeat (conditional on this claim's nonce): so
        it gets a few more tries after botocore gives up, within the claim's lease."""
        lease_left = self.lease_until - clock.now()
        tx = self._completion(text, also) if also else None

        def write() -> None:
            if tx is not None:
                self._commit(tx)
            else:
                self._complete(text)

        try:
            write()
        except Exception as e:
            # tenacity is imported only for a second attempt, never on the common path.
            if not transient(e):
                raise
            for attempt in retrying((), attempts=3, deadline=clock.monotonic() + lease_left):
                with attempt:
                    write()

    def _done_values(self, text: str) -> dict[str, Any]:
        return {
            "status": COMPLETED,
            "result": text,
            "ttl": math.ceil(clock.now() + self._require_owner().expires_after),
        }

    def _done(self, text: str) -> Update:
        return Update().set_all(self._done_values(text))

    def _complete(self, text: str) -> None:
        owned = self._require_owner()
        try:
            if owned.item is None:
                owned.record.update_held(owned.nonce, self._done(text))
            else:
                owned.record.put_held(owned.nonce, {**owned.item, **self._done_values(text)})
        except ConditionFailed:
            raise self._lost() from None

    def _completion(self, text: str, also: Sequence[Mapping[str, Any]]) -> Transaction:
        """The completion and the caller's writes as one transaction (checked before any
        request). The completion is also conditional on the record being in progress, so a
        retry that finds it completed by this very claim knows its first attempt landed."""
        owned = self._require_owner()
        tx = Transaction(owned.record.table)
        in_progress = Attr("status").eq(IN_PROGRESS)
        owned.record.update_held_in(tx, owned.nonce, self._done(text), condition=in_progress)
        tx.raw(*also)
        if len(tx) > MAX_ACTIONS:
            raise InvalidArgument(
                f"idempotency key {self.key!r}: {len(also)} extra writes and the completion "
                f"exceed DynamoDB's {MAX_ACTIONS} actions per transaction; nothing was written"
            )
        return tx

    def _commit(self, tx: Transaction) -> None:
        try:
            tx.commit()
        except TransactionCanceled as e:
            reason = e.reasons[0]
            if reason.code != "ConditionalCheckFailed":
                raise
            old = reason.item or {}
            owned = self._require_owner()
            if owned.record.is_holder(old, owned.nonce) and old.get("status") == COMPLETED:
                return
            raise self._lost() from None

    def _lost(self) -> LeaseLost:
        return LeaseLost(
            f"idempotency key {self.key!r}: this invocation's claim expired and another took "
            "the key over; the result was not stored"
        )
