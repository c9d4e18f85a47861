"""Hypothesis-driven concurrent tests of every primitive, checked with the history recorder and
the linearizability checker against plain models (DynamoDB Local, real threads)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns.batcher import Arrival, Batcher, Thresholds
from stateless_state import AlreadyInProgress, LeaseUnavailable, Store, idempotent
from stateless_state.testing import CounterModel, History, SetModel, check_linearizable
from stateless_state.testing.strategies import schedules

pytestmark = pytest.mark.race

CONCURRENT = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def run(schedule: list[list[Any]], do: Callable[[str, Any], None]) -> None:
    """Run each worker's operations in its own thread, all at once."""
    barrier = threading.Barrier(len(schedule))
    errors: list[BaseException] = []

    def worker(i: int, ops: list[Any]) -> None:
        barrier.wait()
        for o in ops:
            try:
                do(f"w{i}", o)
            except Exception as e:  # recorded in the history already; keep the worker going
                if not isinstance(e, AlreadyInProgress | LeaseUnavailable):
                    errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, ops)) for i, ops in enumerate(schedule)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@CONCURRENT
@given(schedule=schedules(st.tuples(st.sampled_from(["t1", "t2", "t3", "t4"]), st.integers(1, 3))))
def test_counter_tokens_linearizable(ddb_store: Store, schedule: list[list[Any]]) -> None:
    name = uuid.uuid4().hex
    history = History()

    def do(p: str, o: tuple[str, int]) -> None:
        # A token always carries the same amount, as a redelivered event does.
        token, _ = o
        amount = int(token[1])
        with history.record(p, "add_once", (token, amount), key=name) as op:
            c = ddb_store.counter(name).add(amount, token=token)
            op.ok((c.value if c.applied else None, c.applied))
        with history.record(p, "get", key=name) as op:
            op.ok(ddb_store.counter(name).get())

    run(schedule, do)
    assert check_linearizable(history, CounterModel())


class AppendLogModel:
    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        if fn == "append":
            return (*state, arg), len(state) + 1
        return state, state


@CONCURRENT
@given(schedule=schedules(st.sampled_from(["append", "read"])))
def test_versioned_linearizable(ddb_store: Store, schedule: list[list[Any]]) -> None:
    name = uuid.uuid4().hex
    history = History()
    counter = iter(range(10**6))
    lock = threading.Lock()

    def do(p: str, o: str) -> None:
        v = ddb_store.versioned(name)
        if o == "append":
            with lock:
                item = f"{p}-{next(counter)}"
            with history.record(p, "append", item, key=name) as op:
                op.ok(v.update(lambda xs: [*xs, item], create=[]).number)
        else:
            with history.record(p, "read", key=name) as op:
                latest = v.get()
                op.ok(tuple(latest.value) if latest else ())

    run(schedule, do)
    assert check_linearizable(history, AppendLogModel())


class LockModel:
    """acquire → the new fence, or None when held; release → True when the releaser held it."""

    def init(self) -> Hashable:
        return (None, 0)

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        holder, fence = state
        if fn == "acquire":
            return ((arg, fence + 1), fence + 1) if holder is None else (state, None)
        if holder == arg:
            return (None, fence), True
        return state, False


@CONCURRENT
@given(schedule=schedules(st.sampled_from(["acquire", "release"])))
def test_lease_linearizable(ddb_store: Store, schedule: list[list[Any]]) -> None:
    name = uuid.uuid4().hex
    history = History()
    held: dict[str, Any] = {}

    def do(p: str, o: str) -> None:
        lease = ddb_store.lease(name, duration=60, owner=p)
        if o == "acquire":
            with history.record(p, "acquire", p, key=name) as op:
                try:
                    h = lease.acquire()
                except LeaseUnavailable:
                    op.ok(None)
                    return
                held[p] = h
                op.ok(h.fence)
        elif p in held:
            with history.record(p, "release", p, key=name) as op:
                op.ok(held.pop(p).release())

    run(schedule, do)
    assert check_linearizable(history, LockModel())


class OnceModel:
    """call((key, caller)) → the caller whose call ran the body first, for every later call."""

    def init(self) -> Hashable:
        return frozenset()

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        key, caller = arg
        done = dict(state)
        if key in done:
            return state, done[key]
        return frozenset({*state, (key, caller)}), caller


@CONCURRENT
@given(schedule=schedules(st.sampled_from(["k1", "k2"])))
def test_idempotency_linearizable(ddb_store: Store, schedule: list[list[Any]]) -> None:
    ns = uuid.uuid4().hex
    history = History()

    def do(p: str, key: str) -> None:
        @idempotent(ddb_store, key=lambda caller, k: k, namespace=ns)
        def body(caller: str, k: str) -> str:
            return caller

        with history.record(p, "call", (key, p), key=key, definite=(AlreadyInProgress,)) as op:
            op.ok(body(p, key))

    run(schedule, do)
    assert check_linearizable(history, OnceModel())


@CONCURRENT
@given(schedule=schedules(st.integers(0, 6), length=(3, 8)))
def test_batcher_dedupe_linearizable_as_a_set(ddb_store: Store, schedule: list[list[Any]]) -> None:
    stream = f"s{uuid.uuid4().hex[:10]}"
    history = History()

    def do(p: str, i: int) -> None:
        b = Batcher(ddb_store, stream, Thresholds(count=3, bytes=None, age=None))
        with history.record(p, "add", i, key=stream) as op:
            op.ok(not b.add(Arrival(f"a{i}", 1, 0.0)).duplicate)

    run(schedule, do)
    assert check_linearizable(history, SetModel())


@CONCURRENT
@given(
    schedule=schedules(
        st.tuples(
            st.sampled_from(["u1", "u2"]),
            st.integers(0, 30),
            st.sampled_from([f"e{i}" for i in range(8)]),
        )
    )
)
def test_session_tokens_linearizable_as_a_set(ddb_store: Store, schedule: list[list[Any]]) -> None:
    name = uuid.uuid4().hex
    history = History()
    times = {f"e{i}": float(1000 + 4 * i) for i in range(8)}

    def do(p: str, o: tuple[str, int, str]) -> None:
        s = ddb_store.sessions(name, gap=5, max_duration=100)
        key, _, token = o
        with history.record(p, "add", token, key=name) as op:
            u = s.add(key if token < "e4" else "u3", times[token], token=token)
            op.ok(not u.duplicate)

    run(schedule, do)
    assert check_linearizable(history, SetModel())
