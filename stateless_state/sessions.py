"""Session windows and tumbling windows, in event time, inside stateless Lambdas.

Semantics (Flink / Beam session windows with a gap, a maximum duration and allowed lateness;
``tests/stateless_state/test_sessions_conformance.py`` ports their test cases and says where ours
differ):

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
watermark ``w``; without it, the wall clock is the watermark. Expiry alone is wall-clock time
(:mod:`stateless_state.window_store`): state expires when nobody has touched or closed it for
``retention`` of real time, never because its events are old.

Layout: the items of :mod:`stateless_state.window_store` (one per session, sorted by start, so
the sessions an event can touch are one Query over starts in ``[at - gap - max_duration, at +
gap]``; the due index for sweepers), plus one ``head`` item per key whose version every add
bumps: concurrent adds of one key serialize on it, so two events within ``gap`` of each other
end in one session whatever the interleaving (without it, two first events would each see no
session and each create one). Each add is that Query plus one ``TransactWriteItems`` whose
conditions pin the head and every session it read: a concurrent change cancels it and the add
starts over. The arithmetic (options, due times, which sessions an event joins) is
:mod:`stateless_state.window_rules`.
"""

from __future__ import annotations

from typing import Any, Unpack

from . import clock, keys
from .expressions import Attr, Update
from .table import Table, TransactionCanceled
from .transaction import Transaction
from .window_rules import (
    Session,
    SessionOptions,
    SessionRules,
    SessionUpdate,
    combine,
    plan_session,
)
from .window_store import Again, Event, WindowStore, session_from

__all__ = [
    "Session",
    "SessionOptions",
    "SessionUpdate",
    "SessionWindows",
]


class SessionWindows(WindowStore[SessionRules]):
    """Session windows; build with ``store.sessions(name, gap=..., max_duration=...,
    allowed_lateness=...)``. See the module docstring for the semantics, and
    :class:`~stateless_state.window_rules.SessionOptions` for the options.

    Cost per event, measured on DynamoDB Local (``tests/stateless_state/test_sessions_races.py``):
    one consistent ``Query`` (1 RCU for a few small sessions) and one ``TransactWriteItems`` of the
    session item, the key's head item (2 WCU: what keeps concurrent adds of one key in one session),
    one more item per absorbed session and one with a token. A container's first add of a key also
    reads the head (one consistent ``GetItem``, 1 RCU); a head moved by another container costs one
    more attempt. More under contention on one key.
    """

    kind = "sessions"

    def __init__(self, table: Table, name: str, **options: Unpack[SessionOptions]) -> None:
        rules = SessionRules.of(options)
        super().__init__(table, name, rules)
        self.gap = rules.gap
        self.max_duration = rules.max_duration
        # The head version this container last saw, per key: a first guess for the next add.
        self._heads = table.hints("sessions.head")

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

    def _add_once(self, event: Event) -> SessionUpdate:
        key, at, value = event.key, event.at, event.value
        seen = self._head_version(key)
        low, high = self.rules.reach(at)
        touching = [
            i for i in self._query(key, low, high) if self.rules.touches(session_from(i), at)
        ]
        if any(i.get("state") == "closed" for i in touching):
            return self._refused(event)
        joined = plan_session([session_from(i) for i in touching], at, self.max_duration)
        chosen = sorted((i for i in touching if i["id"] in joined), key=lambda i: i["sk"])
        new_id = chosen[0]["id"] if chosen else clock.token_hex(6)
        session = Session(key, new_id, at, at, 1, value, value, value)
        for i in chosen:
            session = combine(session, session_from(i))
        outcome = self._write(event, session, chosen, seen)
        if outcome == "ours":
            self._remember(key, None)
        settled = self._settled(outcome, event)
        if settled is not None:
            return settled
        self._remember(key, seen + 1)
        absorbed = tuple(i["id"] for i in chosen if i["id"] != new_id)
        return SessionUpdate(session, absorbed, created=not chosen)

    def _write(
        self, event: Event, session: Session, chosen: list[dict[str, Any]], seen: int
    ) -> str:
        """One transaction: the token, the sessions merged away (deleted), the session (put),
        the head, the caller's writes; every item read is pinned to what was read."""
        key = session.key
        new_sk = keys.session_item(self.kind, self.name, key, session.start, session.id).sk
        kept = next((i for i in chosen if i["sk"] == new_sk), None)
        tx = Transaction(self._t)
        token_action = self._token_action(tx, event)
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
            return self._transact(tx, token_action, event)
        except Again as again:
            cause = again.__cause__
            reason = cause.reasons[head] if isinstance(cause, TransactionCanceled) else None
            if reason is not None and reason.code == "ConditionalCheckFailed":
                self._remember(key, int((reason.item or {}).get("v", 0)))
            elif reason is None or reason.failed:
                self._remember(key, None)
            raise
