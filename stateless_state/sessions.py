"""Session windows and tumbling windows, in event time, inside stateless Lambdas.

Semantics (Flink / Beam session windows with a gap, a maximum duration and allowed lateness):

* Two events of a key belong to one session when they are less than ``gap`` apart (through a
  chain of events). An out-of-order event extends a session backwards or forwards; an event that
  bridges two sessions merges them (the update names the absorbed sessions; their aggregates
  combine). A session never spans more than ``max_duration`` from its first to its last event:
  an event that would stretch it further starts a new session instead.
* A session is due ``gap + allowed_lateness`` after its last event; :meth:`SessionWindows.close_due`
  closes due sessions, each exactly once across concurrent sweepers, and returns them. An event
  that would change a closed session (it falls within ``gap`` of it) is reported ``late`` and
  changes nothing.
* A token makes an add idempotent: a duplicate changes nothing.

Layout: one item per session, ``pk=sessions#<name>#<key>``, ``sk=<start µs:020>#<id>``, so the
sessions an event can touch are found with one Query over starts in
``[at - gap - max_duration, at + gap]``. An open session carries sparse index keys
``gsi1pk=due#<name>``, ``gsi1sk=<due µs:020>#...``, so sweepers find due sessions with one Query
of the index, never a Scan and never relying on TTL timing. Each add is that Query plus one
``TransactWriteItems`` whose conditions pin every session it read (a ``version`` attribute): a
concurrent change cancels it and the add starts over.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import tenacity

from ._table import (
    INDEX_NAME,
    ConditionFailed,
    Table,
    TransactionCanceled,
    check_name,
    serialize,
)
from ._table import to_item as _to_item
from .errors import ConflictRetriesExhausted, InvalidArgument

__all__ = ["Session", "SessionUpdate", "SessionWindows", "TumblingWindows"]


def _us(t: float) -> str:
    return f"{round(t * 1_000_000):020d}"


def _seconds(value: timedelta | float, what: str) -> float:
    s = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(s, bool) or not isinstance(s, int | float) or s < 0 or math.isnan(s):
        raise InvalidArgument(f"{what} must be a non-negative duration")
    return float(s)


@dataclass(frozen=True, slots=True)
class Session:
    """One session (or tumbling window) of one key, with its aggregates."""

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


def _wait(state: tenacity.RetryCallState) -> float:
    return random.uniform(0, min(0.5, 0.005 * 2**state.attempt_number))


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
        self.name = name
        self.allowed_lateness = _seconds(allowed_lateness, "allowed_lateness")
        self.retention = _seconds(retention, "retention")
        self._t = table

    def _pk(self, key: str) -> str:
        return f"{self.kind}#{self.name}#{key}"

    def _due(self, s: Session) -> float:
        raise NotImplementedError

    def _item(self, s: Session, version: int) -> dict[str, Any]:
        due = self._due(s)
        return {
            "pk": self._pk(s.key),
            "sk": f"{_us(s.start)}#{s.id}",
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
            "gsi1pk": f"due#{self.kind}#{self.name}",
            "gsi1sk": f"{_us(due)}#{s.key}#{s.id}",
            "ttl": int(due + self.retention),
        }

    def _query(self, key: str, low: float, high: float) -> list[dict[str, Any]]:
        return list(
            self._t.query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={
                    ":pk": serialize(self._pk(key)),
                    ":lo": serialize(_us(max(low, 0.0))),
                    ":hi": serialize(_us(high) + "#~"),
                },
                ConsistentRead=True,
            )
        )

    def _token_action(self, token: str | None, nonce: str, due: float) -> list[dict[str, Any]]:
        if token is None:
            return []
        return [
            self._t.put_if_absent(
                {
                    "pk": f"{self.kind}token#{self.name}#{token}",
                    "sk": "token",
                    "nonce": nonce,
                    "ttl": int(due + self.retention),
                }
            )
        ]

    def _pinned(self, item: dict[str, Any], action: str) -> dict[str, Any]:
        """``Delete`` (or a ``ConditionCheck``) of an item we read, conditional on its version."""
        return {
            action: {
                "TableName": self._t.name,
                "Key": _to_item({"pk": item["pk"], "sk": item["sk"]}),
                "ConditionExpression": "version = :v AND #state = :open",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":v": serialize(int(item["version"])),
                    ":open": serialize("open"),
                },
            }
        }

    def _transact(self, actions: list[dict[str, Any]], has_token: bool, nonce: str) -> str:
        """Run the add's transaction: ``applied``; ``duplicate`` when the token was used by
        another add; ``ours`` when an earlier attempt of this same add was applied (its response
        lost, then a conflict on the retry)."""
        try:
            self._t.call("TransactWriteItems", TransactItems=actions)
        except TransactionCanceled as e:
            if has_token and e.codes[0] == "ConditionalCheckFailed":
                return "ours" if (e.old[0] or {}).get("nonce") == nonce else "duplicate"
            if e.conflict or "ConditionalCheckFailed" in e.codes:
                raise _Again() from e
            raise
        return "applied"

    def _containing(self, key: str, at: float) -> Session | None:
        for item in self._query(key, at - self._span(), at):
            s = _session_from(item)
            if s.start <= at <= s.last:
                return s
        return None

    def _span(self) -> float:
        raise NotImplementedError

    def _retrying(self, fn: Any) -> SessionUpdate:
        attempts = 0
        try:
            for attempt in tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(_Again),
                wait=_wait,
                stop=tenacity.stop_after_attempt(50),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    result: SessionUpdate = fn()
                    return result
        except _Again as e:
            raise ConflictRetriesExhausted(f"{self.kind} {self.name!r} add", attempts, e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _seen_token(self, token: str) -> bool:
        return (
            self._t.get({"pk": f"{self.kind}token#{self.name}#{token}", "sk": "token"}) is not None
        )

    def add(
        self, key: str, at: float, value: float = 1.0, *, token: str | None = None
    ) -> SessionUpdate:
        """Add one event of ``key`` at event time ``at`` (epoch seconds) with ``value``; see
        the class docstring for what it does and costs. Concurrent adds are serialized per
        session by conditional writes; an add whose reads went stale starts over."""
        key = check_name("key", key)
        if token is not None:
            check_name("token", token)
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise InvalidArgument(f"at must be a finite number of epoch seconds, got {at!r}")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidArgument(f"value must be a finite number, got {value!r}")
        nonce = secrets.token_hex(8)
        return self._retrying(lambda: self._add_once(key, float(at), float(value), token, nonce))

    def _add_once(
        self, key: str, at: float, value: float, token: str | None, nonce: str
    ) -> SessionUpdate:
        raise NotImplementedError

    def close_due(self, now: float | None = None) -> list[Session]:
        """Close every open session (or window) due by ``now`` and return the ones this call
        closed. Exactly once across concurrent sweepers: the close is conditional on the
        session being open, unchanged since the index showed it, and still due (a session
        extended meanwhile is not closed early). One index Query (paged), plus one conditional
        ``UpdateItem`` per session closed."""
        now = time.time() if now is None else now
        closed: list[Session] = []
        due = self._t.query(
            IndexName=INDEX_NAME,
            KeyConditionExpression="gsi1pk = :pk AND gsi1sk <= :now",
            ExpressionAttributeValues={
                ":pk": serialize(f"due#{self.kind}#{self.name}"),
                ":now": serialize(_us(now) + "#~"),
            },
        )
        for item in due:
            try:
                self._t.call(
                    "UpdateItem",
                    TableName=self._t.name,
                    Key=_to_item({"pk": item["pk"], "sk": item["sk"]}),
                    UpdateExpression="SET #state = :closed, closed_at = :now REMOVE gsi1pk, gsi1sk",
                    ConditionExpression="#state = :open AND version = :v AND due <= :t",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":closed": serialize("closed"),
                        ":open": serialize("open"),
                        ":v": serialize(int(item["version"])),
                        ":t": serialize(now),
                        ":now": serialize(time.time()),
                    },
                )
            except ConditionFailed:
                continue
            closed.append(_session_from({**item, "state": "closed"}))
        return closed

    def sessions(self, key: str) -> list[Session]:
        """Every stored session of ``key`` (open and closed, until retention expires them)."""
        return [_session_from(i) for i in self._query(key, 0.0, 1e12)]


class SessionWindows(_Windows):
    """Session windows; build with ``store.sessions(name, gap=..., max_duration=...,
    allowed_lateness=...)``. See the module docstring for the semantics.

    Cost per event: one consistent ``Query`` (0.5 RCU for a few small sessions) and one
    ``TransactWriteItems``: 2 items (2 x 2 WCU plus 1 index write) to extend a session, one more
    per absorbed session, one more with a token. More under contention on one key.
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
        retention: timedelta | float = timedelta(days=7),
    ) -> None:
        self.gap = _seconds(gap, "gap")
        self.max_duration = _seconds(max_duration, "max_duration")
        if self.gap <= 0 or self.max_duration <= 0:
            raise InvalidArgument("gap and max_duration must be positive")
        super().__init__(table, name, allowed_lateness=allowed_lateness, retention=retention)

    def _due(self, s: Session) -> float:
        return s.last + self.gap + self.allowed_lateness

    def _span(self) -> float:
        return self.max_duration

    def _add_once(
        self, key: str, at: float, value: float, token: str | None, nonce: str
    ) -> SessionUpdate:
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
        new_sk = f"{_us(session.start)}#{new_id}"
        kept = next((i for i in chosen if i["sk"] == new_sk), None)
        actions = self._token_action(token, nonce, self._due(session))
        # Every session read is pinned by its version: replaced in place (same key), or deleted.
        actions += [self._pinned(i, "Delete") for i in chosen if i is not kept]
        put: dict[str, Any] = {
            "TableName": self._t.name,
            "Item": _to_item(self._item(session, int(kept["version"]) + 1 if kept else 1)),
        }
        if kept is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v AND #state = :open"
            put["ExpressionAttributeNames"] = {"#state": "state"}
            put["ExpressionAttributeValues"] = {
                ":v": serialize(int(kept["version"])),
                ":open": serialize("open"),
            }
        actions.append({"Put": put})
        outcome = self._transact(actions, token is not None, nonce)
        if outcome == "duplicate":
            return SessionUpdate(None, duplicate=True)
        if outcome == "ours":
            return SessionUpdate(self._containing(key, at))
        absorbed = tuple(i["id"] for i in chosen if i["id"] != new_id)
        return SessionUpdate(session, absorbed, created=not chosen)


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
    the token item when given).
    """

    kind = "windows"

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        size: timedelta | float,
        allowed_lateness: timedelta | float = 0.0,
        retention: timedelta | float = timedelta(days=7),
    ) -> None:
        self.size = _seconds(size, "size")
        if self.size <= 0:
            raise InvalidArgument("size must be positive")
        super().__init__(table, name, allowed_lateness=allowed_lateness, retention=retention)

    def _due(self, s: Session) -> float:
        return s.start + self.size + self.allowed_lateness

    def _span(self) -> float:
        return self.size

    def _add_once(
        self, key: str, at: float, value: float, token: str | None, nonce: str
    ) -> SessionUpdate:
        start = math.floor(at / self.size) * self.size
        existing = self._query(key, start, start)
        if existing and existing[0].get("state") == "closed":
            if token is not None and self._seen_token(token):
                return SessionUpdate(None, duplicate=True)
            return SessionUpdate(None, late=True)
        wid = f"w{_us(start)}"
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
        actions = self._token_action(token, nonce, self._due(window))
        actions.append(
            {
                "Put": {
                    "TableName": self._t.name,
                    "Item": _to_item(self._item(window, version)),
                    "ConditionExpression": "attribute_not_exists(pk) OR "
                    "(version = :prev AND #state = :open)",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": {
                        ":prev": serialize(version - 1),
                        ":open": serialize("open"),
                    },
                }
            }
        )
        outcome = self._transact(actions, token is not None, nonce)
        if outcome == "duplicate":
            return SessionUpdate(None, duplicate=True)
        if outcome == "ours":
            return SessionUpdate(self._containing(key, at))
        return SessionUpdate(window, created=not existing)
