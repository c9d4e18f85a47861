"""Tumbling windows: fixed, non-overlapping windows of event time, inside stateless Lambdas.

A window of ``size`` seconds starts at a multiple of ``size`` (epoch seconds); it is due
``size + allowed_lateness`` after it starts, :meth:`TumblingWindows.close_due` closes it exactly
once across concurrent sweepers, and an event for a closed window is reported ``late``. The
storage is :mod:`stateless_state.window_store`'s, one item per window; the arithmetic is
:mod:`stateless_state.window_rules`.
"""

from __future__ import annotations

from typing import Unpack

from . import keys
from .expressions import Attr
from .table import Table
from .transaction import Transaction
from .window_rules import Session, SessionUpdate, WindowOptions, WindowRules, combine
from .window_store import Event, WindowStore, session_from

__all__ = ["TumblingWindows", "WindowOptions"]


class TumblingWindows(WindowStore[WindowRules]):
    """Fixed, non-overlapping windows of ``size`` seconds; build with
    ``store.windows(name, size=...)`` (options: :class:`WindowOptions`). Same ``add`` /
    ``close_due`` shape as sessions: a window is due ``size + allowed_lateness`` after it
    starts, closes exactly once, and an event for a closed window is ``late``.

    Cost per event: one consistent ``Query`` and one ``TransactWriteItems`` (the window, plus
    the token item when given). Concurrent first events of one window meet on its one item
    (its id is its start), so a window never splits.
    """

    kind = "windows"

    def __init__(self, table: Table, name: str, **options: Unpack[WindowOptions]) -> None:
        rules = WindowRules.of(options)
        super().__init__(table, name, rules)
        self.size = rules.size

    def _add_once(self, event: Event) -> SessionUpdate:
        start = self.rules.start_of(event.at)
        existing = self._query(event.key, start, start)
        if existing and existing[0].get("state") == "closed":
            return self._refused(event)
        wid = f"w{keys.instant_part(start)}"
        v = event.value
        window = Session(event.key, wid, start, event.at, 1, v, v, v)
        if existing:
            window = combine(window, session_from(existing[0]))
        tx = Transaction(self._t)
        token_action = self._token_action(tx, event)
        tx.put(
            self._item(window, int(existing[0]["version"]) + 1 if existing else 1),
            condition=self._unchanged(existing[0]) if existing else Attr("pk").not_exists(),
        )
        outcome = self._transact(tx, token_action, event)
        return self._settled(outcome, event) or SessionUpdate(window, created=not existing)
