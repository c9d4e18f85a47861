"""The batcher under real concurrency against DynamoDB Local: 16 workers (threads and processes),
5,000 arrivals plus 20% duplicates in random order, thresholds small enough that batches rotate
constantly, and a sweeper sealing by age at the same time; one arrival per ``add``, and requests
of up to 40 through ``add_many`` (which straddle both thresholds and repeat arrivals inside)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from patterns.batcher import AddResult, Arrival, Batcher, BatchState, Thresholds
from patterns.batcher import members as membership
from patterns.testing import BatchHistory, check_batches
from stateless_state import Store
from tests.support import workers

pytestmark = pytest.mark.race

Outcome = tuple[str, str, bool, str | None]


def check_membership(
    b: Batcher, outcomes: list[Outcome], sealed_by_sweeper: list[str], distinct: dict[str, int]
) -> None:
    """The batch invariants (:func:`patterns.testing.check_batches`) over what the workers were
    told: each outcome is (arrival, batch id, duplicate, id of the batch the add sealed)."""
    history = BatchHistory(attempted=set(distinct), delivered=set(distinct))
    for a, bid, dup, sealed in outcomes:
        history.told(a, AddResult(bid, dup))
        if sealed:
            history.handed(sealed)
    for sealed in sealed_by_sweeper:
        history.handed(sealed)
    assert history.attempted == set(distinct), "the workers added only the arrivals submitted"
    check_batches(b, history)


@pytest.mark.parametrize("per_request", [1, 40], ids=["add", "add_many"])
def test_every_arrival_in_exactly_one_batch(ddb_store: Store, per_request: int) -> None:
    lanes = 2
    rng = random.Random(2026)
    # Single-record adds make one request per arrival: 3,000 of them (about 240 seals) keep CI
    # within its budget; requests of up to 40 take 5,000.
    n = 3000 if per_request == 1 else 5000
    distinct = {f"s3://bucket/obj-{i:05d}#etag=x": rng.randint(1, 400) for i in range(n)}
    ids = list(distinct)
    submissions = [(a, distinct[a]) for a in ids + rng.sample(ids, n // 5)]
    rng.shuffle(submissions)
    # count, bytes, age (seconds): 25 files average 5,000 bytes, so batches seal by count
    # and by bytes alike (simulated over 20 seeds: at least 14 of each per lane at 3,000
    # arrivals; at 4,000 bytes count seals could fall to 1 per lane).
    thresholds = (25, 4500, 1.0)
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    plan = [submissions[i::16] for i in range(16)]
    sweeper_sealed: list[str] = []
    stop = threading.Event()

    def sweeper() -> None:
        b = Batcher(ddb_store, "race", Thresholds(*thresholds), lanes)
        while not stop.is_set():
            sweeper_sealed.extend(x.id for x in b.seal_due())
            stop.wait(0.1)

    sweeping = threading.Thread(target=sweeper)
    sweeping.start()
    futures: list[Future[list[Outcome]]] = []
    try:
        with (
            ThreadPoolExecutor(8) as threads,
            ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as processes,
        ):
            for i, part in enumerate(plan):
                pool: Any = threads if i % 2 else processes
                futures.append(
                    pool.submit(
                        workers.batcher_adds,
                        endpoint,
                        table,
                        "race",
                        thresholds,
                        lanes,
                        part,
                        per_request,
                        i,
                    )
                )
            outcomes = [o for f in futures for o in f.result()]
    finally:
        stop.set()
        sweeping.join()
    b = Batcher(ddb_store, "race", Thresholds(*thresholds), lanes)
    # Whether the sweeper sealed some batch by age during the run depends on this machine's
    # speed; the last open batches are sealed by age here, once, whatever it was.
    still_open = {x.id for x in b.batches() if x.state == BatchState.OPEN}
    last = b.seal_due(now=time.time() + 60)
    assert {x.id for x in last} == still_open
    sweeper_sealed.extend(x.id for x in last)
    reasons = Counter(x.seal_reason for x in b.batches() if x.seal_reason)
    assert min(reasons["count"], reasons["bytes"]) >= 10, reasons
    check_membership(b, outcomes, sweeper_sealed, distinct)


def test_a_write_that_finds_its_batch_sealed_aims_at_the_successor_without_a_read(
    ddb_store: Store,
) -> None:
    """Container ``a`` holds a stale plan (batch 0 open); container ``b`` seals batch 0, and,
    between ``a`` learning (ALL_OLD) that batch 0 is sealed and ``a``'s next write, seals batch
    1 as well. ``a`` goes to batch 1 without a Query (its condition finds it sealed) and then
    to batch 2: each arrival in exactly one batch, every sealed batch handed out once."""
    stream = "race #/ 🚀 successor"
    th = Thresholds(count=3, bytes=None, age=None)
    a, b = Batcher(ddb_store, stream, th), Batcher(ddb_store, stream, th)
    outcomes: list[Outcome] = []

    def record(ids: list[str], results: list[Any]) -> None:
        outcomes.extend(
            (i, r.batch_id, r.duplicate, r.sealed and r.sealed.id)
            for i, r in zip(ids, results, strict=True)
        )

    first = ["s3://b/a 0#x"]
    record(first, a.add_many([Arrival(first[0], 1, time.time())]))
    sealing = [f"s3://b/b #{i} 🚀" for i in range(2)]
    record(sealing, b.add_many([Arrival(x, 1, time.time()) for x in sealing]))
    learnt = membership.Membership._learn
    interleaved = False

    def learn_then_seal_successor(self: Any, lane: int, used: Any, current: Any) -> None:
        nonlocal interleaved
        learnt(self, lane, used, current)
        if self is a._membership and not interleaved:
            interleaved = True
            more = [f"s3://b/b/next {i}" for i in range(3)]
            record(more, b.add_many([Arrival(x, 1, time.time()) for x in more]))

    late = ["s3://b/a late#1", "s3://b/a late#2"]
    before = ddb_store.metrics.snapshot()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(membership.Membership, "_learn", learn_then_seal_successor)
        record(late, a.add_many([Arrival(x, 1, time.time()) for x in late]))
    spent = ddb_store.metrics.snapshot() - before
    assert interleaved
    assert {int(r[1].rsplit("/", 1)[1]) for r in outcomes if r[0] in late} == {2}
    queries = spent.by_operation.get("Query")
    assert queries is None or queries.requests == 0, "a sealed batch sends a to its successor"
    distinct = dict.fromkeys(first + sealing + late + [f"s3://b/b/next {i}" for i in range(3)], 1)
    check_membership(b, outcomes, [], distinct)
