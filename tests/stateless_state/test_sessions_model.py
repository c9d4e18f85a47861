"""Session and tumbling windows against a reference model, on random out-of-order streams."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateless_state import (
    InvalidArgument,
    Session,
    SessionUpdate,
    SessionWindows,
    Store,
    TumblingWindows,
)
from stateless_state.testing.strategies import hostile_names, instants
from stateless_state.window_rules import Instant
from tests.support.session_model import ModelSessions, ModelWindows

GAP, MAX_DURATION, LATENESS, T0 = 5.0, 20.0, 3.0, 1_000_000.0


def outcome(update: SessionUpdate) -> str:
    """What an add did, in the reference model's words."""
    if update.late or update.duplicate:
        return "late" if update.late else "duplicate"
    return "merged" if update.absorbed else "new" if update.created else "joined"


def summary(s: Session) -> tuple[str, float, float, int, float, float, float]:
    return (s.key, s.start, s.last, s.count, s.sum, s.min, s.max)


op = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(["a", "b"]),
        st.integers(0, 40),
        st.integers(1, 5),
        st.one_of(st.none(), st.sampled_from([f"t{i}" for i in range(12)])),
    ),
    st.tuples(st.just("close"), st.integers(0, 60)),
)


def matches_the_model(
    real: SessionWindows | TumblingWindows,
    model: ModelSessions | ModelWindows,
    ops: list[Any],
    base: float,
    when: Callable[[float], Instant],
) -> None:
    """Apply ``ops`` (adds at ``base`` + offset, each given to ``real`` as ``when(offset)``, and
    closes at a clock that never goes back) to ``real`` and ``model``, asserting each outcome
    and each set closed are the model's; then close everything at ``base`` + 10 000 s and
    assert the same. One store call per op, plus one."""
    clock = 0
    for o in ops:
        if o[0] == "add":
            _, key, t, value, token = o
            expected = model.add(key, base + t, float(value), token)
            update = real.add(key, when(t), float(value), token=token)
            got = outcome(update)
            assert got == expected, (o, got, expected)
        else:
            clock = max(clock, o[1])  # sweepers run on a clock that does not go back
            closed = {summary(s) for s in real.close_due(when(clock))}
            assert closed == model.close_due(base + clock)
    final = {summary(s) for s in real.close_due(when(10_000))}
    assert final == model.close_due(base + 10_000)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, min_size=1, max_size=30))
def test_sessions_match_the_reference_model(moto_store: Store, ops: list[Any]) -> None:
    name = f"m{abs(hash(str(ops))) % 10**9}"
    real = moto_store.sessions(name, gap=GAP, max_duration=MAX_DURATION, allowed_lateness=LATENESS)
    model = ModelSessions(GAP, MAX_DURATION, LATENESS)
    matches_the_model(real, model, ops, T0, lambda t: T0 + t)
    assert real.close_due(T0 + 10_000) == [], "each session closed exactly once"


def test_merge_names_the_absorbed_sessions(moto_store: Store) -> None:
    s = moto_store.sessions("clicks", gap=10, max_duration=100)
    a = s.add("u1", 100.0)
    b = s.add("u1", 118.0)
    assert a.session and b.session and a.session.id != b.session.id
    bridge = s.add("u1", 109.0, value=5)
    assert bridge.session is not None and len(bridge.absorbed) == 1
    assert {a.session.id, b.session.id} == {bridge.session.id, *bridge.absorbed}
    merged = bridge.session
    assert (merged.start, merged.last, merged.count, merged.sum, merged.min, merged.max) == (
        100.0,
        118.0,
        3,
        7.0,
        1.0,
        5.0,
    )


def test_max_duration_starts_a_new_session(moto_store: Store) -> None:
    s = moto_store.sessions("clicks", gap=10, max_duration=15)
    first = s.add("u1", 100.0).session
    s.add("u1", 109.0)
    third = s.add("u1", 118.0)
    assert third.created and third.session and first and third.session.id != first.id


def test_tokens_and_lateness(moto_store: Store) -> None:
    s = moto_store.sessions("clicks", gap=10, max_duration=100, allowed_lateness=5)
    s.add("u1", 100.0, token="e1")
    assert s.add("u1", 100.0, token="e1").duplicate
    assert s.close_due(now=114.0) == [], "not due before gap + allowed lateness"
    [closed] = s.close_due(now=115.0)
    assert closed.count == 1 and closed.closed
    late = s.add("u1", 104.0, token="e2")
    assert late.late and late.session is None
    assert s.add("u1", 100.0, token="e1").duplicate
    assert [x.count for x in s.sessions("u1")] == [1], "nothing closed changed"


def test_tumbling_windows(moto_store: Store) -> None:
    w = moto_store.windows("per-minute", size=60, allowed_lateness=10)
    for t, v in [(0.0, 1.0), (59.9, 4.0), (60.0, 2.0), (30.0, 3.0)]:
        w.add("k", t, v)
    assert w.add("k", 10.0, 1.0, token="x").session is not None
    assert w.add("k", 10.0, 1.0, token="x").duplicate
    assert w.close_due(now=69.0) == []
    [first] = w.close_due(now=70.0)
    assert (first.start, first.count, first.sum, first.min, first.max) == (0.0, 4, 9.0, 1.0, 4.0)
    assert w.add("k", 5.0).late
    [second] = w.close_due(now=1000.0)
    assert (second.start, second.count) == (60.0, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gap": 0, "max_duration": 1}, "positive"),
        ({"gap": -1, "max_duration": 1}, "positive"),
        ({"gap": 1, "max_duration": float("inf")}, "positive"),
        ({"gap": 1, "max_duration": 1, "allowed_lateness": float("nan")}, "non-negative"),
    ],
)
def test_bad_arguments(moto_store: Store, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        moto_store.sessions("s", **kwargs)


def test_bad_events(moto_store: Store) -> None:
    s = moto_store.sessions("s", gap=1, max_duration=10)
    with pytest.raises(InvalidArgument, match="finite"):
        s.add("k", float("inf"))
    with pytest.raises(InvalidArgument, match="naive datetime"):
        s.add("k", datetime(2020, 1, 1))
    with pytest.raises(InvalidArgument, match="value"):
        s.add("k", 1.0, value=float("nan"))
    with pytest.raises(InvalidArgument, match="empty"):
        s.add("", 1.0)


backfill_op = st.one_of(
    st.tuples(
        st.just("add"),
        hostile_names(max_size=3),
        st.integers(0, 40),
        st.integers(1, 5),
        st.one_of(st.none(), hostile_names(max_size=3)),
    ),
    st.tuples(st.just("close"), st.integers(0, 60)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=instants(years_back=70, minutes_ahead=10).map(lambda t: float(round(t))),
    ops=st.lists(backfill_op, min_size=1, max_size=25),
    as_datetime=st.booleans(),
)
def test_backfills_and_clock_skew_match_the_model_on_dynamodb_local(
    ddb_store: Store, base: float, ops: list[Any], as_datetime: bool
) -> None:
    """Event times from decades ago (before 1970 included) to minutes ahead, hostile keys and
    tokens, closed by an event-time watermark, on the engine that really deletes items whose
    ttl has passed: the sessions closed are exactly the model's, none lost to expiry."""
    name = f"backfill-{uuid.uuid4().hex}"  # examples share the table, and may repeat
    real = ddb_store.sessions(name, gap=GAP, max_duration=MAX_DURATION, allowed_lateness=LATENESS)
    model = ModelSessions(GAP, MAX_DURATION, LATENESS)

    def when(offset: float) -> float | datetime:
        t = base + offset
        return datetime.fromtimestamp(t, UTC) if as_datetime else t

    matches_the_model(real, model, ops, base, when)
    for item in ddb_store.client.scan(TableName=ddb_store.table_name)["Items"]:
        if "ttl" in item:
            assert float(item["ttl"]["N"]) > time.time() + 86400, "expiry is wall-clock time"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=instants(years_back=70, minutes_ahead=10).map(lambda t: float(round(t))),
    ops=st.lists(backfill_op, min_size=1, max_size=25),
)
def test_tumbling_windows_backfill_matches_the_model_on_dynamodb_local(
    ddb_store: Store, base: float, ops: list[Any]
) -> None:
    real = ddb_store.windows(f"tw-{uuid.uuid4().hex}", size=7.0, allowed_lateness=LATENESS)
    model = ModelWindows(7.0, LATENESS)
    matches_the_model(real, model, ops, base, lambda t: base + t)
