"""Leases and idempotency keys under real concurrency and injected faults (DynamoDB Local)."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from stateless_state import (
    AlreadyInProgress,
    LeaseLost,
    LeaseUnavailable,
    Store,
    idempotent,
)
from stateless_state.testing import FakeLambdaContext, FaultInjector
from tests.support import workers

pytestmark = pytest.mark.race


def _spawn_pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


def check_mutual_exclusion(holds: list[tuple[int, str, float, float]]) -> None:
    """Fences are 1..n with no gaps; ordered by fence, each hold ends before the next begins."""
    holds = sorted(holds)
    assert [h[0] for h in holds] == list(range(1, len(holds) + 1))
    for (f1, o1, _, end), (f2, o2, start, _) in itertools.pairwise(holds):
        assert end <= start, f"fence {f1} ({o1}) still held when fence {f2} ({o2}) began"


@pytest.mark.slow  # lease.fencing explores the schedules; the stalled-holder race stays in CI
def test_lease_mutual_exclusion_threads_and_processes(ddb_store: Store) -> None:
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    futures: list[Future[list[tuple[int, str, float, float]]]] = []
    with ThreadPoolExecutor(8) as threads, _spawn_pool(8) as processes:
        for _ in range(8):
            futures.append(threads.submit(workers.lease_worker, endpoint, table, "L", 40, 0.01))
            futures.append(processes.submit(workers.lease_worker, endpoint, table, "L", 40, 0.01))
        holds = [h for f in futures for h in f.result()]
    assert len(holds) > 20
    assert len({h[1] for h in holds}) > 4, "many owners got a turn"
    check_mutual_exclusion(holds)


def test_stalled_holder_loses_every_fenced_write(ddb_store: Store) -> None:
    """Holders with short leases race; some stall past their lease. A write by a holder whose
    fence was superseded before it wrote must fail; the target ends with the latest fence."""
    target = {"pk": {"S": "target"}, "sk": {"S": "t"}}
    log: list[tuple[int, float, bool]] = []  # (fence, write started, succeeded)
    acquired: list[tuple[int, float]] = []  # (fence, acquire returned)
    lock = threading.Lock()

    def work(i: int) -> None:
        lease = ddb_store.lease("fenced", duration=0.05, owner=f"w{i}")
        for round_ in range(12):
            try:
                held = lease.acquire()
            except LeaseUnavailable:
                time.sleep(0.01)
                continue
            with lock:
                acquired.append((held.fence, time.monotonic()))
            if (i + round_) % 3 == 0:
                time.sleep(0.12)  # stall past the lease
            started = time.monotonic()
            try:
                held.write(
                    {
                        "Update": {
                            "TableName": ddb_store.table_name,
                            "Key": target,
                            "UpdateExpression": "SET last_fence = :f",
                            "ExpressionAttributeValues": {":f": {"N": str(held.fence)}},
                        }
                    }
                )
                ok = True
            except LeaseLost:
                ok = False
            with lock:
                log.append((held.fence, started, ok))
            held.release()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert any(not ok for _, _, ok in log), "some stalled holder was superseded"
    for fence, started, ok in log:
        superseded = any(f > fence and at < started for f, at in acquired)
        assert not (superseded and ok), f"fence {fence} wrote after being superseded"
    final = ddb_store.client.get_item(TableName=ddb_store.table_name, Key=target)["Item"]
    assert int(final["last_fence"]["N"]) == max(f for f, _, ok in log if ok)


def test_idempotent_body_runs_once_under_threads_and_processes(ddb_store: Store) -> None:
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    futures: list[Future[list[Any]]] = []
    with ThreadPoolExecutor(8) as threads, _spawn_pool(8) as processes:
        for i in range(8):
            futures.append(threads.submit(workers.idempotent_caller, endpoint, table, "k", f"t{i}"))
            futures.append(
                processes.submit(workers.idempotent_caller, endpoint, table, "k", f"p{i}")
            )
        outcomes = [o for f in futures for o in f.result()]
    results = [o for o in outcomes if o != "in_progress"]
    assert len(results) == 16, "every caller ends with the result"
    assert all(r == results[0] for r in results), "the same stored result for every caller"
    assert results[0]["run"] == 1
    assert ddb_store.counter("runs-k").get() == 1, "the body ran exactly once"
    assert all(o == "in_progress" or isinstance(o, dict) for o in outcomes)


def test_idempotency_under_ambiguous_writes(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    """Ambiguous claims, completions and releases: no key runs twice, none is left stuck."""
    fault_injector.add("ambiguous", rate=1 / 3).add("throttle", rate=0.1)
    runs: dict[str, int] = {}
    lock = threading.Lock()

    @idempotent(ddb_store, key="id", namespace="faults")
    def handler(event: dict[str, Any], context: Any) -> str:
        with lock:
            runs[event["id"]] = runs.get(event["id"], 0) + 1
            fail = event["id"].endswith("7") and runs[event["id"]] == 1
        if fail:
            raise RuntimeError("first attempt of keys ending in 7 fails: exercises release")
        return f"done {event['id']}"

    def deliver(key: str) -> str:
        while True:
            try:
                return handler({"id": key}, FakeLambdaContext(60_000))
            except (AlreadyInProgress, RuntimeError, BotoCoreError, ClientError):
                # The invocation failed (botocore gave up, e.g. its retry quota ran dry under
                # this fault rate); Lambda would retry it, and so do we.
                time.sleep(0.01)

    keys = [f"k{i}" for i in range(30)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, keys + keys))
    assert fault_injector.injected["ambiguous"] > 10
    fault_injector.clear()
    assert answers == [f"done {k}" for k in keys + keys]
    for k in keys:
        assert runs[k] == (2 if k.endswith("7") else 1), k
    idem = ddb_store.idempotency("faults")
    for k in keys:
        assert idem.claim(k).replay, f"{k} is completed, not stuck"


def test_lease_acquire_under_ambiguous_writes(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    # Each ambiguous conditional write drains 14 of botocore's 500-unit retry quota for good
    # (its retry meets its own write: a 400, which refunds nothing); stay within it.
    fault_injector.add("ambiguous", rate=1 / 3, operations=["UpdateItem"])
    holds = []
    for _ in range(30):
        held = ddb_store.lease("amb", duration=30).acquire()
        holds.append(held.fence)
        assert held.release()
    assert fault_injector.injected["ambiguous"] > 5
    fault_injector.clear()
    assert holds == list(range(1, 31)), "a retried acquire recognises its own applied write"
    assert not ddb_store.lease("amb", duration=1).state().held, "nothing left held"


def test_cost_of_ownership_primitives(ddb_store: Store) -> None:
    """The figures docs/leases.md quotes (What ownership costs), measured against DynamoDB Local."""
    m = ddb_store.metrics
    keys = ddb_store.idempotency("cost")
    before = m.snapshot()
    claim = keys.claim("k", payload={"order": 1})
    claim.complete({"ok": True})
    first = (m.snapshot() - before).total
    before = m.snapshot()
    assert keys.claim("k", payload={"order": 1}).replay
    replay = (m.snapshot() - before).total
    assert (first.requests, first.wcu) == (2, 2.0)
    assert (replay.requests, replay.wcu) == (1, 0.0)

    lease = ddb_store.lease("cost", duration=30)
    before = m.snapshot()
    held = lease.acquire()
    held.renew()
    held.release()
    cycle = (m.snapshot() - before).total
    assert (cycle.requests, cycle.wcu) == (3, 3.0)
