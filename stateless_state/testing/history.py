"""Record what concurrent operations did, then check it against a plain Python model.

:class:`History` records, per operation, its invocation and its outcome with monotonic times:
``ok`` (with the result), ``fail`` (it certainly took no effect: a refused condition, say) or
``unknown`` (a timeout: it may or may not have taken effect). :func:`check_linearizable` then
searches for an order of the operations that (a) respects real time (an operation that finished
before another began comes first), (b) gives every ``ok`` operation the result it saw when the
model applies them in that order, and (c) may include or leave out each ``unknown`` operation:
the Wing & Gong search, with memoisation of visited (remaining, state) pairs.

A model is any object with ``init() -> state`` and ``step(state, fn, arg) -> (state, result)``;
states must be hashable. :class:`CounterModel`, :class:`RegisterModel` and :class:`SetModel` are
ready-made.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import clock
from ..errors import InvalidArgument

__all__ = [
    "CounterModel",
    "History",
    "Op",
    "RegisterModel",
    "SetModel",
    "Verdict",
    "check_linearizable",
]


@dataclass
class Op:
    """One operation: who (``process``), what (``fn``, ``arg``, on ``key``), when, and how it
    ended (``status`` ``ok`` | ``fail`` | ``unknown``, with ``result`` when ok)."""

    process: str
    fn: str
    arg: Any
    key: Hashable
    invoked: float
    completed: float = math.inf
    status: str = "unknown"
    result: Any = None

    def ok(self, result: Any = None) -> None:
        self.result, self.status, self.completed = result, "ok", clock.monotonic()

    def fail(self) -> None:
        self.status, self.completed = "fail", clock.monotonic()


@dataclass
class History:
    """A thread-safe log of operations. Use :meth:`record` around each call."""

    ops: list[Op] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def record(
        self,
        process: str,
        fn: str,
        arg: Any = None,
        *,
        key: Hashable = None,
        definite: tuple[type[BaseException], ...] = (),
    ) -> Iterator[Op]:
        """Record one operation. Call ``op.ok(result)`` inside the block; an exception listed in
        ``definite`` records ``fail`` (it took no effect), any other leaves ``unknown``. The
        exception propagates either way."""
        op = Op(process, fn, arg, key, clock.monotonic())
        with self._lock:
            self.ops.append(op)
        try:
            yield op
        except definite:
            op.fail()
            raise

    def by_key(self) -> dict[Hashable, list[Op]]:
        out: dict[Hashable, list[Op]] = defaultdict(list)
        for op in self.ops:
            out[op.key].append(op)
        return dict(out)


class Model(Protocol):
    def init(self) -> Hashable: ...

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]: ...


@dataclass(frozen=True)
class Verdict:
    """``ok`` when the history is linearizable; else ``key`` names the first key that is not,
    and ``ops`` its operations (for the failure message)."""

    ok: bool
    key: Hashable = None
    ops: tuple[Op, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def check_linearizable(history: History | list[Op], model: Model) -> Verdict:
    """Check every key's operations independently (per-key linearizability)."""
    ops = history.ops if isinstance(history, History) else history
    groups: dict[Hashable, list[Op]] = defaultdict(list)
    for op in ops:
        if op.status != "fail":  # a failed operation took no effect: it constrains nothing
            groups[op.key].append(op)
    for key, group in groups.items():
        if not _search(sorted(group, key=lambda o: o.invoked), model):
            return Verdict(False, key, tuple(group))
    return Verdict(True)


def _search(ops: list[Op], model: Model) -> bool:
    n = len(ops)
    seen: set[tuple[frozenset[int], Hashable]] = set()
    stack: list[tuple[frozenset[int], Hashable]] = [(frozenset(range(n)), model.init())]
    while stack:
        remaining, state = stack.pop()
        if all(ops[i].status == "unknown" for i in remaining):
            return True
        if (remaining, state) in seen:
            continue
        seen.add((remaining, state))
        # Only an operation invoked before every remaining one completed can come next.
        horizon = min(ops[i].completed for i in remaining)
        for i in remaining:
            op = ops[i]
            if op.invoked > horizon:
                continue
            new_state, result = model.step(state, op.fn, op.arg)
            if op.status == "ok" and result != op.result:
                continue
            stack.append((remaining - {i}, new_state))
            if op.status == "unknown":
                # An unknown operation may also never have taken effect.
                stack.append((remaining - {i}, state))
    return False


class CounterModel:
    """``add(amount)`` returns the new value; ``add_once((token, amount))`` counts a token once
    and returns ``(new value, True)``, or ``(None, False)`` for a token already counted; ``get``
    returns the value. State: (value, tokens)."""

    def init(self) -> Hashable:
        return (0, frozenset())

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        value, tokens = state
        if fn == "add":
            return (value + arg, tokens), value + arg
        if fn == "add_once":
            token, amount = arg
            if token in tokens:
                return state, (None, False)
            return (value + amount, tokens | {token}), (value + amount, True)
        if fn == "get":
            return state, value
        raise InvalidArgument(f"CounterModel has no {fn!r}")


class RegisterModel:
    """A versioned register: ``cas((expected, value))`` succeeds (returning the new version)
    only from version ``expected``, else returns None; ``read`` returns ``(version, value)``."""

    def init(self) -> Hashable:
        return (0, None)

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        version = state[0]
        if fn == "cas":
            expected, new = arg
            if expected != version:
                return state, None
            return (version + 1, new), version + 1
        if fn == "read":
            return state, state
        raise InvalidArgument(f"RegisterModel has no {fn!r}")


class SetModel:
    """``add(x)`` returns whether x was new; ``contains(x)`` whether it is there."""

    def init(self) -> Hashable:
        return frozenset()

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        if fn == "add":
            return state | {arg}, arg not in state
        if fn == "contains":
            return state, arg in state
        raise InvalidArgument(f"SetModel has no {fn!r}")
