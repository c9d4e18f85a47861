"""How session and tumbling windows are kept in DynamoDB: what both kinds share.

Layout (keys from :mod:`stateless_state.keys`): one partition per key, holding one item per
session or window sorted by start (``sk=<start>#<id>``), so the ones an event can touch are one
consistent Query over a range of starts. An open one carries the sparse index's keys
(``due#<kind>#<name>`` and its due time, :meth:`~stateless_state.keys.Key.index_item`), so
sweepers find what is due with one Query of the index, never a Scan and never relying on TTL
timing. A token is one item of its own, put if absent in the add's transaction.

Expiry is the only wall-clock part: an open item's ``ttl`` is set, when it is written, to its
span, hold and ``retention`` after the wall-clock time of the write; a closed one's to
``retention`` after the wall-clock time it closed. So state never expires because its events are
old; it expires when nobody has touched or closed it for ``retention`` of real time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import clock, domain, keys
from .errors import InvalidArgument
from .expressions import Attr, Condition, Update
from .retry import LambdaContext
from .table import INDEX_PK, INDEX_SK, ConditionFailed, Table, TransactionCanceled
from .transaction import Transaction, check_actions, own_write
from .window_rules import Instant, Session, SessionUpdate, WindowSpan

__all__ = ["Again", "Event", "WindowStore", "session_from"]

R = TypeVar("R", bound=WindowSpan)


class Again(Exception):
    """What an add read changed before its write: read again."""


@dataclass(frozen=True, slots=True)
class Event:
    """One event being added, checked: what every attempt of its add works from. ``nonce``
    marks this add's own writes; ``also`` are the caller's ``TransactWriteItems`` entries."""

    key: str
    at: float
    value: float
    token: str | None
    nonce: str
    also: list[dict[str, Any]]


def session_from(item: Mapping[str, Any]) -> Session:
    """The session (or window) a stored item holds."""
    return Session(
        key=item["key"],
        id=item["id"],
        start=float(item["start"]),
        last=float(item["last"]),
        count=int(item["count"]),
        sum=float(item["sum"]),
        min=float(item["min"]),
        max=float(item["max"]),
        closed=item.get("state") == "closed",
    )


class WindowStore(Generic[R]):
    """What sessions and tumbling windows share: storage, tokens, the add loop, closing. A
    kind sets ``kind`` (the first word of its keys) and its :meth:`_add_once`."""

    kind = "sessions"

    def __init__(self, table: Table, name: str, rules: R) -> None:
        self.name = domain.name(f"{self.kind} name", name)
        self.rules = rules
        self.allowed_lateness = rules.allowed_lateness
        self.retention = rules.retention
        self._t = table

    def _pk(self, key: str) -> str:
        return keys.session_partition(self.kind, self.name, key)

    def _open_ttl(self) -> int:
        """Wall-clock expiry of what an add writes: long enough for the session to be closed
        (its span, gap and lateness) and then kept ``retention``, counted from now."""
        return math.ceil(clock.now() + self.rules.span() + self.rules.hold() + self.retention)

    def _item(self, s: Session, version: int) -> dict[str, Any]:
        due = self.rules.due(s)
        return {
            **keys.session_item(self.kind, self.name, s.key, s.start, s.id).item(),
            "key": s.key,
            "id": s.id,
            "start": s.start,
            "last": s.last,
            "count": s.count,
            "sum": s.sum,
            "min": s.min,
            "max": s.max,
            "state": "open",
            "version": version,
            "due": due,
            **keys.session_due(self.kind, self.name, due, s.key, s.id).index_item(),
            "ttl": self._open_ttl(),
        }

    def _query(self, key: str, low: float, high: float) -> list[dict[str, Any]]:
        low = max(low, domain.MIN_INSTANT)
        high = min(high, domain.MAX_INSTANT)
        # '$' sorts right after the '#' that follows a start: every id included.
        starts = Attr("sk").between(keys.instant_part(low), keys.instant_part(high) + "$")
        return list(self._t.query(Attr("pk").eq(self._pk(key)) & starts, consistent=True))

    def _token_key(self, token: str) -> dict[str, str]:
        return keys.session_token(self.kind, self.name, token).item()

    def _token_action(self, tx: Transaction, event: Event) -> int | None:
        """Add the event's token record to ``tx`` (first, so its index is 0); None without a
        token."""
        if event.token is None:
            return None
        record = {**self._token_key(event.token), "nonce": event.nonce, "ttl": self._open_ttl()}
        return tx.put_if_absent(record)

    @staticmethod
    def _unchanged(item: Mapping[str, Any]) -> Condition:
        """The condition that a session we read is still as we read it, and open."""
        return Attr("version").eq(int(item["version"])) & Attr("state").eq("open")

    def _transact(self, tx: Transaction, token_action: int | None, event: Event) -> str:
        """Run the add's transaction, with the caller's own writes last: ``applied``;
        ``duplicate`` when the token was used by another add; ``ours`` when an earlier attempt
        of this same add was applied (its response lost, then a conflict on the retry). A
        failed condition of the caller's is theirs to handle, never retried."""
        theirs = tx.raw(*event.also)
        try:
            tx.commit()
        except TransactionCanceled as e:
            if token_action is not None:
                reason = e.reasons[token_action]
                if reason.code == "ConditionalCheckFailed":
                    return "ours" if own_write(reason.item, event.nonce) else "duplicate"
            if any(r.code == "ConditionalCheckFailed" for r in e.reasons[theirs:]):
                raise
            if e.conflict or e.condition_failed:
                raise Again() from e
            raise
        return "applied"

    def _settled(self, outcome: str, event: Event) -> SessionUpdate | None:
        """The update to report for a transaction that did not apply this attempt's plan:
        a ``duplicate``, or (``ours``) the session the earlier, applied attempt put the event
        in (one more consistent Query). None when the plan was applied."""
        if outcome == "duplicate":
            return SessionUpdate(None, duplicate=True)
        if outcome == "ours":
            return SessionUpdate(self._containing(event.key, event.at))
        return None

    def _containing(self, key: str, at: float) -> Session | None:
        for item in self._query(key, at - self.rules.span(), at):
            s = session_from(item)
            if s.start <= at <= s.last:
                return s
        return None

    def _refused(self, event: Event) -> SessionUpdate:
        """An event for a closed session or window: a ``duplicate`` when its token was already
        counted by another add (one consistent ``GetItem``), else ``late``. When the token is
        this add's own (an earlier attempt applied with its response lost, then the session
        closed before the retry read it again), the event is in that closed session: it is
        reported there (one more consistent Query), as ``ours`` is by :meth:`_settled`."""
        if event.token is not None:
            record = self._t.get(self._token_key(event.token))
            if record is not None and own_write(record, event.nonce):
                return SessionUpdate(self._containing(event.key, event.at))
            if record is not None:
                return SessionUpdate(None, duplicate=True)
        return SessionUpdate(None, late=True)

    def add(
        self,
        key: str,
        at: Instant,
        value: float = 1.0,
        *,
        token: str | None = None,
        context: LambdaContext | None = None,
        also: Sequence[Mapping[str, Any]] = (),
    ) -> SessionUpdate:
        """Add one event of ``key`` at event time ``at`` (an aware datetime or epoch seconds)
        with ``value``; see the class docstring for what it does and costs. Concurrent adds of
        one key are serialized by conditional writes; an add whose reads went stale starts over,
        at most 50 times and, given the Lambda ``context``, never past the invocation's time.

        ``also``: your own ``TransactWriteItems`` entries (any table), committed in the add's
        transaction: written exactly when the event is applied (not when it is ``late`` or a
        ``duplicate`` of its token), so once per token; it needs ``token``. The add's own
        actions leave room for about 95 (a merge deletes one item per absorbed session; past
        DynamoDB's 100 actions the add raises :class:`~stateless_state.errors.InvalidArgument`,
        nothing written). If one of them fails its condition, nothing is written and
        :class:`~stateless_state.errors.TransactionCanceled` is raised (its last
        ``len(also)`` reasons are yours).

        Raises :class:`~stateless_state.errors.InvalidArgument` (nothing written) for an empty
        or over-long key or token, a naive datetime, an instant outside years 1 to 9999, or a
        value that is not a finite number DynamoDB can store.
        """
        key = domain.name("key", key)
        if token is not None:
            domain.name("token", token)
        t = domain.instant(at, "at")
        v = domain.number(value, "value")
        extra = check_actions(also)
        if extra and token is None:
            raise InvalidArgument(
                f"{self.kind} {self.name!r}: also= needs a token, so that your writes are "
                "committed once however often the add is retried"
            )
        event = Event(key, t, float(v), token, clock.token_hex(8), extra)
        return self._t.retry(
            lambda: self._add_once(event),
            retry_on=(Again,),
            what=f"{self.kind} {self.name!r} add",
            attempts=50,
            context=context,
            operation=f"{self.kind}.add",
            base=0.005,
            cap=0.5,
        )

    def _add_once(self, event: Event) -> SessionUpdate:
        """One attempt of :meth:`add`: read, plan, one transaction; :class:`Again` when what
        it read changed meanwhile."""
        raise NotImplementedError

    def close_due(self, now: Instant | None = None) -> list[Session]:
        """Close every open session (or window) due by ``now`` and return the ones this call
        closed.

        ``now`` is the event-time watermark (an aware datetime or epoch seconds): a backfill of
        year-old events passes the time its events have reached; a live sweeper passes nothing
        and the wall clock is used. Exactly once across concurrent sweepers: the close is
        conditional on the session being open, unchanged since the index showed it, and still
        due (a session extended meanwhile is not closed early). A closed session is kept
        ``retention`` of wall-clock time from now. One index Query (paged), plus one
        conditional ``UpdateItem`` per session closed.
        """
        watermark = clock.now() if now is None else domain.instant(now, "now")
        closed: list[Session] = []
        due = self._t.query(
            Attr(INDEX_PK).eq(keys.index_partition("due", self.kind, self.name))
            & Attr(INDEX_SK).lt(keys.instant_part(watermark) + "$"),
            index=True,
        )
        for item in due:
            wall = clock.now()
            try:
                closing = Update().set_all(
                    {"state": "closed", "closed_at": wall, "ttl": math.ceil(wall + self.retention)}
                )
                self._t.update_item(
                    {"pk": item["pk"], "sk": item["sk"]},
                    closing.remove(INDEX_PK, INDEX_SK),
                    condition=self._unchanged(item) & Attr("due").le(watermark),
                )
            except ConditionFailed:
                continue
            closed.append(session_from({**item, "state": "closed"}))
        return closed

    def sessions(self, key: str) -> list[Session]:
        """Every stored session of ``key`` (open and closed, until retention expires them),
        oldest first. One consistent Query (paged)."""
        key = domain.name("key", key)
        return [session_from(i) for i in self._query(key, domain.MIN_INSTANT, domain.MAX_INSTANT)]
