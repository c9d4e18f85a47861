"""Session windows and tumbling windows, in event time, inside stateless Lambdas.

Semantics (Flink / Beam session windows with a gap, a maximum duration and allowed lateness;
``tests/test_sessions_conformance.py`` ports their test cases and says where ours differ):

* Two events of a key belong to one session when they are less than ``gap`` apart (through a
  chain of events); exactly ``gap`` apart is two sessions, as in Beam (Flink merges windows that
  touch). An out-of-order event extends a session backwards or forwards; an event that bridges
  two sessions merges them (the update names the absorbed sessions; their aggregates combine).
  A session never spans more than ``max_duration`` from its first to its last event: an event
  that would stretch it further starts a new session instead.
* A session is due ``gap + allowed_lateness`` after its last event; :meth:`SessionWindows.close_due`
  closes due sessions, each exactly once across concurrent sweepers, and returns them. An event
  that would change a closed session (it falls within ``gap`` of it) is reported ``late`` and
  changes nothing.
* A token makes an add idempotent: a duplicate changes nothing.

**Event time is not wall-clock time.** ``at`` and the ``now`` of :meth:`close_due` are event
time: an aware datetime or epoch seconds, years in the past (a backfill, a replayed archive) or
minutes ahead (clock skew) alike. ``close_due(now=w)`` closes what is due by the event-time
watermark ``w``; without it, the wall clock is the watermark. Expiry is the only wall-clock
part: an open session's ``ttl`` is set when it is written to ``retention`` plus its gap,
lateness and maximum duration after the wall-clock time of the write, a closed session's to
``retention`` after the wall-clock time it closed. So state never expires because its events
are old; it expires when nobody has touched or closed it for ``retention`` of real time.

Layout (keys from :mod:`stateless_state.keys`): one partition per key, holding one item per
session sorted by start (``sk=<start>#<id>``), so the sessions an event can touch are found with
one Query over starts in ``[at - gap - max_duration, at + gap]``, and one ``head`` item whose
version every add bumps: concurrent adds of one key serialize on it, so two events within
``gap`` of each other end in one session whatever the interleaving (without it, two first
events would each see no session and each create one). An open session carries sparse index
keys (``gsi1pk=due#sessions#<name>``, ``gsi1sk=<due>#...``), so sweepers find due sessions with
one Query of the index, never a Scan and never relying on TTL timing. Each add is that Query plus
one ``TransactWriteItems`` whose conditions pin the head and every session it read: a
concurrent change cancels it and the add starts over.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Required, TypedDict

from . import domain, keys
from .errors import InvalidArgument
from .expressions import Attr, Condition, Update
from .retry import LambdaContext
from .table import INDEX_PK, INDEX_SK, ConditionFailed, Table, TransactionCanceled
from .transaction import Transaction, check_actions, own_write

__all__ = [
    "Session",
    "SessionOptions",
    "SessionUpdate",
    "SessionWindows",
    "TumblingWindows",
    "WindowOptions",
]

Instant = datetime | float
DEFAULT_RETENTION = timedelta(days=7)


class SessionOptions(TypedDict, total=False):
    """The options of :class:`SessionWindows`, as ``store.sessions(name, **options)`` takes
    them (their defaults live on the class)."""

    gap: Required[timedelta | float]
    max_duration: Required[timedelta | float]
    allowed_lateness: timedelta | float
    retention: timedelta | float


class WindowOptions(TypedDict, total=False):
    """The options of :class:`TumblingWindows`, as ``store.windows(name, **options)`` takes
    them."""

    size: Required[timedelta | float]
    allowed_lateness: timedelta | float
    retention: timedelta | float


@dataclass(frozen=True, slots=True)
class Session:
    """One session (or tumbling window) of one key, with its aggregates. ``start`` and
    ``last`` are the first and last event times (epoch seconds)."""

    key: str
    id: str
    start: float
    last: float
    count: int
    sum: float
    min: float
    max: float
    closed: bool = False


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """What an add did. ``session`` is the session the event is now in (None when ``late`` or
    ``duplicate``); ``absorbed`` the ids of sessions merged into it."""

    session: Session | None
    absorbed: tuple[str, ...] = ()
    created: bool = False
    late: bool = False
    duplicate: bool = False


class _Again(Exception):
    """What we read changed before our write: read again."""


def _session_from(item: dict[str, Any]) -> Session:
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


class _Windows:
    """What sessions and tumbling windows share: storage, tokens, closing."""

    kind = "sessions"

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        allowed_lateness: timedelta | float,
        retention: timedelta | float,
    ) -> None:
        self.name = domain.name(f"{self.kind} name", name)
        self.allowed_lateness = domain.duration(
            allowed_lateness, "allowed_lateness", allow_zero=True
        )
        self.retention = domain.duration(retention, "retention")
        self._t = table

    def _pk(self, key: str) -> str:
        return keys.session_partition(self.kind, self.name, key)

    def _due(self, s: Session) -> float:
        raise NotImplementedError

    def _span(self) -> float:
        raise NotImplementedError

    def _open_ttl(self) -> int:
        """Wall-clock expiry of what an add writes: long enough for the session to be closed
        (its span, gap and lateness) and then kept ``retention``, counted from now."""
        return math.ceil(time.time() + self._span() + self._hold() + self.retention)

    def _hold(self) -> float:
        raise NotImplementedError

    def _item(self, s: Session, version: int) -> dict[str, Any]:
        due = self._due(s)
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

    def _token_action(self, tx: Transaction, token: str | None, nonce: str) -> int | None:
        """Add the token record to ``tx`` (first, so its index is 0); None without a token."""
        if token is None:
            return None
        return tx.put_if_absent({**self._token_key(token), "nonce": nonce, "ttl": self._open_ttl()})

    @staticmethod
    def _unchanged(item: dict[str, Any]) -> Condition:
        """The condition that a session we read is still as we read it, and open."""
        return Attr("version").eq(int(item["version"])) & Attr("state").eq("open")

    def _transact(
        self,
        tx: Transaction,
        token_action: int | None,
        nonce: str,
        also: Sequence[Mapping[str, Any]],
    ) -> str:
        """Run the add's transaction, with the caller's own writes last: ``applied``;
        ``duplicate`` when the token was used by another add; ``ours`` when an earlier attempt
        of this same add was applied (its response lost, then a conflict on the retry). A
        failed condition of the caller's is theirs to handle, never retried."""
        theirs = tx.raw(*also)
        try:
            tx.commit()
        except TransactionCanceled as e:
            if token_action is not None:
                reason = e.reasons[token_action]
                if reason.code == "ConditionalCheckFailed":
                    return "ours" if own_write(reason.item, nonce) else "duplicate"
            if any(r.code == "ConditionalCheckFailed" for r in e.reasons[theirs:]):
                raise
            if e.conflict or e.condition_failed:
                raise _Again() from e
            raise
        return "applied"

    def _containing(self, key: str, at: float) -> Session | None:
        for item in self._query(key, at - self._span(), at):
            s = _session_from(item)
            if s.start <= at <= s.last:
                return s
        return None

    def _seen_token(self, token: str) -> bool:
        return self._t.get(self._token_key(token)) is not None

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
        actions leave room for
        about 95 (a merge deletes one item per absorbed session; past DynamoDB's 100 actions
        the add raises :class:`~stateless_state.errors.InvalidArgument`, nothing written). If
        one of them fails its condition, nothing is written and
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
        nonce = secrets.token_hex(8)
        return self._t.retry(
            lambda: self._add_once(key, t, float(v), token, nonce, extra),
            retry_on=(_Again,),
            what=f"{self.kind} {self.name!r} add",
            attempts=50,
            context=context,
            operation=f"{self.kind}.add",
            base=0.005,
            cap=0.5,
        )

    def _add_once(
        self,
        key: str,
        at: float,
        value: float,
        token: str | None,
        nonce: str,
        also: list[dict[str, Any]],
    ) -> SessionUpdate:
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
        watermark = time.time() if now is None else domain.instant(now, "now")
        closed: list[Session] = []
        due = self._t.query(
            Attr(INDEX_PK).eq(keys.index_partition("due", self.kind, self.name))
            & Attr(INDEX_SK).lt(keys.instant_part(watermark) + "$"),
            index=True,
        )
        for item in due:
            wall = time.time()
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
            closed.append(_session_from({**item, "state": "closed"}))
        return closed

    def sessions(self, key: str) -> list[Session]:
        """Every stored session of ``key`` (open and closed, until retention expires them),
        oldest first. One consistent Query (paged)."""
        key = domain.name("key", key)
        return [_session_from(i) for i in self._query(key, domain.MIN_INSTANT, domain.MAX_INSTANT)]


class SessionWindows(_Windows):
    """Session windows; build with ``store.sessions(name, gap=..., max_duration=...,
    allowed_lateness=...)``. See the module docstring for the semantics.

    Cost per event, measured on DynamoDB Local (``tests/test_sessions_races.py``): one
    consistent ``Query`` (1 RCU for a few small sessions) and one ``TransactWriteItems`` of the
    session item, the key's head item (2 WCU: what keeps concurrent adds of one key in one
    session), one more item per absorbed session and one with a token. A container's first add
    of a key also reads the head (one consistent ``GetItem``, 1 RCU); a head moved by another
    container costs one more attempt. More under contention on one key.
    """

    kind = "sessions"

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        gap: timedelta | float,
        max_duration: timedelta | float,
        allowed_lateness: timedelta | float = 0.0,
        retention: timedelta | float = DEFAULT_RETENTION,
    ) -> None:
        self.gap = domain.duration(gap, "gap")
        self.max_duration = domain.duration(max_duration, "max_duration")
        super().__init__(table, name, allowed_lateness=allowed_lateness, retention=retention)
        # The head version this container last saw, per key: a first guess for the next add.
        self._heads = table.hints("sessions.head")

    def _due(self, s: Session) -> float:
        return s.last + self.gap + self.allowed_lateness

    def _span(self) -> float:
        return self.max_duration

    def _hold(self) -> float:
        return self.gap + self.allowed_lateness

    def _head_key(self, key: str) -> dict[str, str]:
        return keys.session_head(self.kind, self.name, key).item()

    def _remember(self, key: str, version: int | None) -> None:
        """Keep the head version this container last saw (0: no head yet) as a first guess for
        the next add of ``key`` (None: forget it); a wrong guess costs a cancelled attempt,
        never a wrong answer."""
        pk = self._head_key(key)["pk"]
        if version is None:
            self._heads.forget(pk)
        else:
            self._heads.put(pk, version)

    def _head_version(self, key: str) -> int:
        hint = self._heads.get(self._head_key(key)["pk"])
        if hint is None:
            head = self._t.get(self._head_key(key))
            hint = int(head["v"]) if head else 0
            self._remember(key, hint)
        return hint

    def _head_action(self, tx: Transaction, key: str, seen: int) -> int:
        """Bump the key's head in ``tx``, only from the version this add read."""
        version = Attr("v")
        return tx.update(
            self._head_key(key),
            Update().set_all({"v": seen + 1, "ttl": self._open_ttl()}),
            condition=version.not_exists() if seen == 0 else version.eq(seen),
            return_old=True,
        )

    def _add_once(
        self,
        key: str,
        at: float,
        value: float,
        token: str | None,
        nonce: str,
        also: list[dict[str, Any]],
    ) -> SessionUpdate:
        seen = self._head_version(key)
        near = self._query(key, at - self.gap - self.max_duration, at + self.gap)
        touching = [
            i for i in near if float(i["start"]) - self.gap < at < float(i["last"]) + self.gap
        ]
        if any(i.get("state") == "closed" for i in touching):
            if token is not None and self._seen_token(token):
                return SessionUpdate(None, duplicate=True)
            return SessionUpdate(None, late=True)
        joined = plan_session([_session_from(i) for i in touching], at, self.max_duration)
        chosen = sorted((i for i in touching if i["id"] in joined), key=lambda i: i["sk"])
        new_id = chosen[0]["id"] if chosen else secrets.token_hex(6)
        session = Session(key, new_id, at, at, 1, value, value, value)
        for i in chosen:
            session = _combine(session, _session_from(i))
        outcome = self._write(session, chosen, seen, token, nonce, also)
        if outcome == "duplicate":
            return SessionUpdate(None, duplicate=True)
        if outcome == "ours":
            self._remember(key, None)
            return SessionUpdate(self._containing(key, at))
        self._remember(key, seen + 1)
        absorbed = tuple(i["id"] for i in chosen if i["id"] != new_id)
        return SessionUpdate(session, absorbed, created=not chosen)

    def _write(
        self,
        session: Session,
        chosen: list[dict[str, Any]],
        seen: int,
        token: str | None,
        nonce: str,
        also: list[dict[str, Any]],
    ) -> str:
        """One transaction: the token, the sessions merged away (deleted), the session (put),
        the head, the caller's writes; every item read is pinned to what was read."""
        key = session.key
        new_sk = keys.session_item(self.kind, self.name, key, session.start, session.id).sk
        kept = next((i for i in chosen if i["sk"] == new_sk), None)
        tx = Transaction(self._t)
        token_action = self._token_action(tx, token, nonce)
        for i in chosen:
            if i is not kept:
                tx.delete({"pk": i["pk"], "sk": i["sk"]}, condition=self._unchanged(i))
        version = int(kept["version"]) + 1 if kept else 1
        tx.put(
            self._item(session, version),
            condition=Attr("pk").not_exists() if kept is None else self._unchanged(kept),
        )
        head = self._head_action(tx, key, seen)
        try:
            return self._transact(tx, token_action, nonce, also)
        except _Again as again:
            cause = again.__cause__
            reason = cause.reasons[head] if isinstance(cause, TransactionCanceled) else None
            if reason is not None and reason.code == "ConditionalCheckFailed":
                self._remember(key, int((reason.item or {}).get("v", 0)))
            elif reason is None or reason.failed:
                self._remember(key, None)
            raise


def _combine(a: Session, b: Session) -> Session:
    return Session(
        a.key,
        a.id,
        min(a.start, b.start),
        max(a.last, b.last),
        a.count + b.count,
        a.sum + b.sum,
        min(a.min, b.min),
        max(a.max, b.max),
    )


def plan_session(touching: list[Session], at: float, max_duration: float) -> frozenset[str]:
    """The ids of the sessions an event joins. All it touches (a merge) if the result stays
    within ``max_duration``; else the latest-starting one it can join within it; else none (the
    event starts a new session)."""
    if not touching:
        return frozenset()
    start = min([at, *(s.start for s in touching)])
    last = max([at, *(s.last for s in touching)])
    if last - start <= max_duration:
        return frozenset(s.id for s in touching)
    for s in sorted(touching, key=lambda s: s.start, reverse=True):
        if max(s.last, at) - min(s.start, at) <= max_duration:
            return frozenset({s.id})
    return frozenset()


class TumblingWindows(_Windows):
    """Fixed, non-overlapping windows of ``size`` seconds; build with
    ``store.windows(name, size=...)``. Same ``add`` / ``close_due`` shape as sessions: a window
    is due ``size + allowed_lateness`` after it starts, closes exactly once, and an event for a
    closed window is ``late``.

    Cost per event: one consistent ``Query`` and one ``TransactWriteItems`` (the window, plus
    the token item when given). Concurrent first events of one window meet on its one item
    (its id is its start), so a window never splits.
    """

    kind = "windows"

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        size: timedelta | float,
        allowed_lateness: timedelta | float = 0.0,
        retention: timedelta | float = DEFAULT_RETENTION,
    ) -> None:
        self.size = domain.duration(size, "size")
        super().__init__(table, name, allowed_lateness=allowed_lateness, retention=retention)

    def _due(self, s: Session) -> float:
        return s.start + self.size + self.allowed_lateness

    def _span(self) -> float:
        return self.size

    def _hold(self) -> float:
        return self.allowed_lateness

    def _add_once(
        self,
        key: str,
        at: float,
        value: float,
        token: str | None,
        nonce: str,
        also: list[dict[str, Any]],
    ) -> SessionUpdate:
        start = math.floor(at / self.size) * self.size
        if start < domain.MIN_INSTANT:
            raise InvalidArgument(
                f"the {self.size:g}-second window of at={at!r} would start before year 1; "
                "use a smaller size for events that old"
            )
        existing = self._query(key, start, start)
        if existing and existing[0].get("state") == "closed":
            if token is not None and self._seen_token(token):
                return SessionUpdate(None, duplicate=True)
            return SessionUpdate(None, late=True)
        wid = f"w{keys.instant_part(start)}"
        if existing:
            old = _session_from(existing[0])
            window = Session(
                key,
                wid,
                start,
                max(old.last, at),
                old.count + 1,
                old.sum + value,
                min(old.min, value),
                max(old.max, value),
            )
            version = int(existing[0]["version"]) + 1
        else:
            window = Session(key, wid, start, at, 1, value, value, value)
            version = 1
        tx = Transaction(self._t)
        token_action = self._token_action(tx, token, nonce)
        tx.put(
            self._item(window, version),
            condition=self._unchanged(existing[0]) if existing else Attr("pk").not_exists(),
        )
        outcome = self._transact(tx, token_action, nonce, also)
        if outcome == "duplicate":
            return SessionUpdate(None, duplicate=True)
        if outcome == "ours":
            return SessionUpdate(self._containing(key, at))
        return SessionUpdate(window, created=not existing)
