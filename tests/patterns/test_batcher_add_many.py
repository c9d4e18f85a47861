"""``Batcher.add_many``: many arrivals per request, with exactly the outcomes of adding them one
at a time. Semantics against a sequential model on moto (hostile stream names and ids, sizes up
to the limit, thresholds that split requests); faults, lost responses and a crash between two
requests of one event on DynamoDB Local."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns.batcher import (
    AddResult,
    Arrival,
    Batcher,
    IncompleteAdd,
    Thresholds,
)
from patterns.batcher.arrivals import MAX_ARRIVAL_SIZE
from patterns.batcher.members import MAX_ARRIVALS_PER_REQUEST
from patterns.hooks import CrashPoint, set_crash_hook
from stateless_state import InvalidArgument, Store
from stateless_state.testing import FaultInjector
from stateless_state.testing.strategies import hostile_names, instants


@dataclass
class Model:
    """The batcher's contract, one arrival at a time: an arrival joins the open batch, which
    seals as soon as its count or bytes reach a threshold; a repeated id is a duplicate."""

    count: int | None
    bytes: int | None
    batches: list[list[str]] = field(default_factory=lambda: [[]])
    sizes: list[int] = field(default_factory=lambda: [0])
    where: dict[str, int] = field(default_factory=dict)

    def add(self, a: Arrival) -> tuple[int, bool, int | None]:
        if a.id in self.where:
            return self.where[a.id], True, None
        seq = len(self.batches) - 1
        self.batches[seq].append(a.id)
        self.sizes[seq] += a.size
        self.where[a.id] = seq
        n, total = len(self.batches[seq]), self.sizes[seq]
        if (self.count is not None and n >= self.count) or (
            self.bytes is not None and total >= self.bytes
        ):
            self.batches.append([])
            self.sizes.append(0)
            return seq, False, seq
        return seq, False, None


def seq_of(batch_id: str) -> int:
    return int(batch_id.rsplit("/", 1)[1])


def check_against_model(b: Batcher, model: Model, events: list[list[Arrival]]) -> None:
    for event in events:
        results = b.add_many(event)
        assert len(results) == len(event)
        for a, r in zip(event, results, strict=True):
            seq, duplicate, sealed = model.add(a)
            assert (seq_of(r.batch_id), r.duplicate) == (seq, duplicate), a.id
            assert (r.sealed and r.sealed.seq) == sealed, f"{a.id}: sealed {r.sealed}"
            if r.sealed is not None:
                assert r.sealed.count == len(model.batches[seq])
                assert r.sealed.bytes == model.sizes[seq]
    stored = {x.seq: x for x in b.batches()}
    for seq, ids in enumerate(model.batches):
        if not ids:
            assert seq not in stored
            continue
        members = b.members(stored[seq].id)
        assert sorted(m.id for m in members) == sorted(ids), f"batch {seq}"
        assert stored[seq].count == len(ids)
        assert stored[seq].bytes == sum(m.size for m in members) == model.sizes[seq]


def arrivals_of(ids: list[str], sizes: list[int], at: list[float]) -> list[Arrival]:
    return [
        Arrival(i, s, t, {"key": i, "n": k})
        for k, (i, s, t) in enumerate(zip(ids, sizes, at, strict=True))
    ]


@st.composite
def workloads(draw: Any) -> tuple[str, Thresholds, list[list[Arrival]]]:
    stream = draw(hostile_names(max_size=8))
    count = draw(st.none() | st.integers(1, 12))
    big = draw(st.booleans())
    limit = MAX_ARRIVAL_SIZE if big else 5_000
    size_bound = draw(st.none() | st.integers(1, limit)) if count else draw(st.integers(1, limit))
    ids = draw(st.lists(hostile_names(max_size=10), min_size=1, max_size=40))
    ids = ids + draw(st.lists(st.sampled_from(ids), max_size=10))  # repeats, here and later
    ids = draw(st.permutations(ids))
    sizes = [draw(st.integers(0, limit)) for _ in ids]
    at = [draw(instants()) for _ in ids]
    arrivals = arrivals_of(ids, sizes, at)
    cuts = sorted(draw(st.lists(st.integers(0, len(arrivals)), max_size=6)))
    bounds = zip([0, *cuts], [*cuts, len(arrivals)], strict=True)
    events = [arrivals[i:j] for i, j in bounds if j > i]
    return stream, Thresholds(count=count, bytes=size_bound, age=None), events


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workload=workloads())
def test_add_many_matches_one_at_a_time(
    moto_store: Store, workload: tuple[str, Thresholds, list[list[Arrival]]]
) -> None:
    stream, thresholds, events = workload
    b = Batcher(moto_store, f"{stream}{uuid.uuid4().hex[:6]}", thresholds)
    check_against_model(b, Model(thresholds.count, thresholds.bytes), events)


def test_a_request_straddling_both_thresholds_splits_at_the_exact_arrivals(
    moto_store: Store,
) -> None:
    b = Batcher(moto_store, "straddle", Thresholds(count=4, bytes=1000, age=None))
    b.add(Arrival("first", 100, time.time()))
    sizes = [100, 100, 900, 50, 50, 50, 50, 10]
    # batch 0: first + 100 + 100 + 900 reaches 1,000 bytes at the third arrival of the request
    # (count 4 too); batch 1: four arrivals of 50 reach the count; batch 2 stays open.
    event = [Arrival(f"a{i}", s, time.time()) for i, s in enumerate(sizes)]
    results = b.add_many(event)
    assert [seq_of(r.batch_id) for r in results] == [0, 0, 0, 1, 1, 1, 1, 2]
    sealed = [r.sealed for r in results]
    assert [s is not None for s in sealed] == [False, False, True, False, False, False, True, False]
    assert sealed[2] is not None and (sealed[2].count, sealed[2].bytes) == (4, 1200)
    assert sealed[6] is not None and (sealed[6].count, sealed[6].seal_reason) == (4, "count")
    b2 = Batcher(moto_store, "bytes-first", Thresholds(count=10, bytes=1000, age=None))
    results = b2.add_many([Arrival(f"b{i}", s, time.time()) for i, s in enumerate([400, 599, 1])])
    assert [seq_of(r.batch_id) for r in results] == [0, 0, 0]
    assert results[2].sealed is not None and results[2].sealed.seal_reason == "bytes"


def test_duplicates_inside_and_across_requests_keep_their_siblings(moto_store: Store) -> None:
    b = Batcher(moto_store, "dups", Thresholds(count=100, bytes=None, age=None))
    earlier = b.add_many([Arrival(f"x{i}", 1, time.time()) for i in range(5)])
    event = [Arrival(i, 1, time.time()) for i in ["x1", "y1", "y1", "x3", "y2", "x1", "y3"]]
    results = b.add_many(event)
    assert [r.duplicate for r in results] == [True, False, True, True, False, True, False]
    assert results[0].batch_id == earlier[1].batch_id
    assert results[2].batch_id == results[1].batch_id
    assert sorted(m.id for m in b.members(results[1].batch_id)) == sorted(
        ["x0", "x1", "x2", "x3", "x4", "y1", "y2", "y3"]
    )


def test_large_events_and_many_lanes(moto_store: Store) -> None:
    b = Batcher(moto_store, "wide", Thresholds(count=250, bytes=None, age=None), lanes=3)
    event = [Arrival(f"s3://b/{i:05d}", i, time.time()) for i in range(700)]
    results = b.add_many(event)
    assert not any(r.duplicate for r in results)
    lanes = {b.lane_of(a.id) for a in event}
    assert lanes == {0, 1, 2}
    members = {m.id for x in b.batches() for m in b.members(x.id)}
    assert members == {a.id for a in event}
    assert sum(x.count for x in b.batches()) == 700
    assert MAX_ARRIVALS_PER_REQUEST == 98


def test_bad_input_is_refused_before_any_write(moto_store: Store) -> None:
    b = Batcher(moto_store, "bad", Thresholds(count=3, bytes=None, age=None))
    with pytest.raises(InvalidArgument, match="expected Arrivals, got a str"):
        b.add_many([Arrival("ok", 1, time.time()), "s3://b/k"])  # type: ignore[list-item]
    assert list(b.batches()) == []
    assert b.add_many([]) == []


@pytest.fixture
def crash_between_requests() -> Iterator[list[int]]:
    """Fails the ``n``-th crash point ``between-requests`` (set by the test) as a crash would."""
    when = [0]
    seen = [0]

    def hook(name: CrashPoint) -> None:
        if name == "between-requests":
            seen[0] += 1
            if seen[0] == when[0]:
                raise ConnectionError("the process died here")

    set_crash_hook(hook)
    yield when
    set_crash_hook(None)


def test_a_crash_between_requests_loses_nothing(
    ddb_store: Store, crash_between_requests: list[int]
) -> None:
    b = Batcher(ddb_store, "crash", Thresholds(count=60, bytes=None, age=None))
    event = [Arrival(f"s3://b/k{i:03d}#v=1", 10, time.time()) for i in range(150)]
    crash_between_requests[0] = 2
    with pytest.raises(IncompleteAdd) as caught:
        b.add_many(event)
    done = [r for r in caught.value.results if r is not None]
    assert len(done) == 120 and caught.value.results[120:] == [None] * 30
    assert isinstance(caught.value.__cause__, ConnectionError)
    # The redelivery, in a fresh container, completes the event and adds nothing twice.
    again = Batcher(ddb_store, "crash", Thresholds(count=60, bytes=None, age=None))
    results = again.add_many(event)
    assert [r.duplicate for r in results] == [True] * 120 + [False] * 30
    members = [m.id for x in again.batches() for m in again.members(x.id)]
    assert sorted(members) == [a.id for a in event]
    assert [x.count for x in again.batches(newest_first=False)] == [60, 60, 30]


def add_until_answered(b: Batcher, event: list[Arrival]) -> list[AddResult]:
    """What SQS does with a failed invocation: deliver the same records again until answered."""
    for _ in range(30):
        try:
            return b.add_many(event)
        except IncompleteAdd as e:
            if not isinstance(e.__cause__, BotoCoreError | ClientError):
                raise
    raise AssertionError("never answered")


@pytest.mark.faults
def test_lost_responses_conflicts_and_throttling(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    fault_injector.add("ambiguous", rate=0.25, exhaust=True).add("conflict", rate=0.2)
    fault_injector.add("throttle", rate=0.1)
    b = Batcher(ddb_store, "faults", Thresholds(count=37, bytes=5000, age=None))
    arrivals = [Arrival(f"s3://b/{i:04d}", (i * 37) % 300, time.time()) for i in range(400)]
    events = [arrivals[i : i + 1 + i % 23] for i in range(0, 400, 20)]
    reported: dict[str, str] = {}
    sealed: list[str] = []
    for event in events:
        for a, r in zip(event, add_until_answered(b, event), strict=True):
            reported.setdefault(a.id, r.batch_id)
            assert reported[a.id] == r.batch_id
            if r.sealed is not None:
                sealed.append(r.sealed.id)
    assert fault_injector.injected["ambiguous"] > 5, fault_injector.injected
    fault_injector.clear()
    where = {m.id: x.id for x in b.batches() for m in b.members(x.id)}
    assert len(where) == len({a.id for e in events for a in e})
    assert all(where[a] == bid for a, bid in reported.items())
    for x in b.batches():
        members = b.members(x.id)
        assert x.count == len(members) and x.bytes == sum(m.size for m in members)
    assert len(sealed) == len(set(sealed)), "a sealed batch handed out twice"
