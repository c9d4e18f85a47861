"""Batcher behaviour on moto (single-threaded): sealing, dedupe, lifecycle, operator actions."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns.batcher import Arrival, Batcher, BatchState, Thresholds
from patterns.testing import arrival_streams
from stateless_state import InvalidArgument, LeaseLost, LeaseUnavailable, StateConflict, Store


def arrival(i: Any, size: int = 10) -> Arrival:
    return Arrival(f"s3://b/k{i}", size, time.time(), {"bucket": "b", "key": f"k{i}"})


def test_count_threshold_seals_once_and_rotates(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=3, bytes=None, age=None))
    results = [b.add(arrival(i)) for i in range(7)]
    sealed = [r.sealed for r in results if r.sealed]
    assert [s.id for s in sealed] == ["s/0/000000000000", "s/0/000000000001"]
    assert all(s.count == 3 and s.seal_reason == "count" for s in sealed)
    assert results[6].batch_id == "s/0/000000000002"
    assert [m.id for m in b.members("s/0/000000000001")] == [f"s3://b/k{i}" for i in (3, 4, 5)]


def test_bytes_threshold_includes_the_arrival_that_crosses_it(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=None, bytes=100, age=None))
    assert b.add(arrival(0, 60)).sealed is None
    sealed = b.add(arrival(1, 60)).sealed
    assert sealed is not None and (sealed.count, sealed.bytes, sealed.seal_reason) == (
        2,
        120,
        "bytes",
    )
    big = b.add(arrival(2, 500)).sealed
    assert big is not None and big.count == 1, "an arrival over the threshold seals alone"


def test_duplicates_are_dropped_across_batches(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=2, bytes=None, age=None))
    first = b.add(arrival(1))
    b.add(arrival(2))
    b.add(arrival(3))
    again = b.add(arrival(1))
    assert again.duplicate and again.batch_id == first.batch_id
    assert sum(x.count for x in b.batches()) == 3


def test_seal_due_by_age(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=100, bytes=None, age=60), lanes=2)
    for i in range(6):
        b.add(arrival(i))
    assert b.seal_due() == []
    sealed = b.seal_due(now=time.time() + 61)
    assert sorted(s.lane for s in sealed) == [0, 1]
    assert all(s.seal_reason == "age" for s in sealed)
    assert sum(s.count for s in sealed) == 6
    assert b.seal_due(now=time.time() + 61) == [], "each batch sealed once"


def test_lanes_split_by_arrival_id(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=1000, bytes=None, age=1), lanes=4)
    lanes = {b.add(arrival(i)).batch_id.split("/")[1] for i in range(40)}
    assert lanes == {"0", "1", "2", "3"}


def test_loading_lifecycle(moto_store: Store) -> None:
    b = Batcher(
        moto_store,
        "s",
        Thresholds(count=2, bytes=None, age=None),
        max_attempts=2,
        # Long enough that the claim right after the failure falls inside it even on a loaded
        # machine (50 ms did not: that claim came after the backoff and succeeded).
        retry_backoff=2.0,
    )
    b.add(arrival(1))
    sealed = b.add(arrival(2)).sealed
    assert sealed is not None
    assert [x.id for x in b.pending()] == [sealed.id]
    ticket = b.claim_load(sealed.id)
    assert ticket.fence == 1
    with pytest.raises(LeaseUnavailable):
        b.claim_load(sealed.id)
    assert ticket.failed("boom") == BatchState.SEALED
    with pytest.raises(LeaseUnavailable):
        b.claim_load(sealed.id)  # backing off
    time.sleep(2.1)
    second = b.claim_load(sealed.id)
    assert second.fence == 2
    assert second.failed("boom again") == BatchState.FAILED
    assert [x.id for x in b.failed()] == [sealed.id] and b.pending() == []
    batch = b.operator_action(
        sealed.id, "retry", expect_state=BatchState.FAILED, expect_fence=2, who="ops", why="fixed"
    )
    assert batch.state == BatchState.SEALED and batch.history[-1]["who"] == "ops"
    third = b.claim_load(sealed.id)
    third.record_statement("stmt-1")
    third.loaded()
    done = b.batch(sealed.id)
    assert done is not None and done.state == BatchState.LOADED
    assert done.statement_id == "stmt-1" and b.pending() == []


def test_crashed_loader_is_taken_over_and_cannot_finish(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=1, bytes=None, age=None))
    sealed = b.add(arrival(1)).sealed
    assert sealed is not None
    crashed = b.claim_load(sealed.id, lease=0.05)
    time.sleep(0.06)
    successor = b.claim_load(sealed.id)
    assert successor.fence == crashed.fence + 1
    with pytest.raises(LeaseLost):
        crashed.failed("late")
    successor.loaded()
    crashed.loaded()  # a zombie's "loaded" on an already loaded batch is harmless


def test_operator_actions_are_conditional(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=1, bytes=None, age=None))
    sealed = b.add(arrival(1)).sealed
    assert sealed is not None
    with pytest.raises(StateConflict, match="is sealed at fence 0, not failed at fence 0"):
        b.operator_action(
            sealed.id, "retry", expect_state=BatchState.FAILED, expect_fence=0, who="a", why="b"
        )
    gone = b.operator_action(
        sealed.id, "abandon", expect_state=BatchState.SEALED, expect_fence=0, who="a", why="p"
    )
    assert gone.state == BatchState.ABANDONED and b.pending() == []
    with pytest.raises(InvalidArgument, match="unknown action"):
        b.operator_action(
            sealed.id,
            "explode",  # type: ignore[arg-type]
            expect_state=BatchState.ABANDONED,
            expect_fence=0,
            who="a",
            why="b",
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "Thresholds.count 0 is out of range; allowed: 1 to"),
        ({"bytes": -1}, "Thresholds.bytes -1 is out of range; allowed: 1 to"),
        ({"bytes": 2**130}, "Thresholds.bytes .* is out of range"),
        ({"count": 2.5}, "Thresholds.count must be an int"),
        ({"age": 0}, "Thresholds.age must be a finite, positive duration"),
        ({"age": float("nan")}, "Thresholds.age must be a finite, positive duration"),
        ({"age": float("inf")}, "Thresholds.age must be a finite, positive duration"),
        ({"age": timedelta(seconds=-1)}, "Thresholds.age must be a finite, positive"),
        ({"count": None, "bytes": None, "age": None}, "at least one threshold"),
    ],
)
def test_bad_thresholds(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Thresholds(**kwargs)


def test_bad_batcher_arguments(moto_store: Store) -> None:
    with pytest.raises(InvalidArgument, match="stream must not be empty"):
        Batcher(moto_store, "")
    with pytest.raises(InvalidArgument, match="lanes"):
        Batcher(moto_store, "s", lanes=0)
    with pytest.raises(InvalidArgument, match="retry_backoff"):
        Batcher(moto_store, "s", retry_backoff=float("nan"))
    b = Batcher(moto_store, "s")
    with pytest.raises(InvalidArgument, match="size"):
        b.add(Arrival("x", -1, 0.0))
    with pytest.raises(InvalidArgument, match="non-empty"):
        b.add(Arrival("", 1, 0.0))
    with pytest.raises(InvalidArgument, match="not a batch id"):
        b.batch("nope")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=arrival_streams(30), count=st.integers(1, 5))
def test_any_stream_with_duplicates_batches_each_arrival_once(
    moto_store: Store, stream: list[str], count: int
) -> None:
    name = f"h{uuid.uuid4().hex[:12]}"
    b = Batcher(moto_store, name, Thresholds(count=count, bytes=None, age=None))
    results = [b.add(Arrival(a, 1, 0.0)) for a in stream]
    firsts = [a for a, r in zip(stream, results, strict=True) if not r.duplicate]
    assert sorted(firsts) == sorted(set(stream)), "each distinct arrival added once"
    members = [m.id for x in b.batches() for m in b.members(x.id)]
    assert sorted(members) == sorted(set(stream)), "and a member of exactly one batch"
    sealed = [r.sealed for r in results if r.sealed]
    assert all(s.count == count for s in sealed)
    assert len(sealed) == len(set(stream)) // count
