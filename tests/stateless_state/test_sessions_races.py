"""Sessions under concurrent writers and sweepers, and injected faults (DynamoDB Local)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from stateless_state import Session, Store
from stateless_state.testing import FaultInjector
from tests.support import workers

pytestmark = pytest.mark.race


def stream(seed: int, n: int) -> list[tuple[str, float, float, str]]:
    """Events on 4 overlapping keys, out of order, with 15% duplicates; values are distinct
    powers of two so a double-counted or lost event shows in the sums."""
    rng = random.Random(seed)
    events = [
        (f"user{rng.randrange(4)}", 1000.0 + rng.uniform(0, 120), float(i + 1), f"e{i}")
        for i in range(n)
    ]
    events += rng.sample(events, n * 15 // 100)
    rng.shuffle(events)
    return events


def check_accounted(
    closed: list[Session],
    outcomes: list[tuple[str, str]],
    events: list[tuple[str, float, float, str]],
) -> None:
    ids = [s.id for s in closed]
    assert len(ids) == len(set(ids)), "no session closed twice"
    accepted = {t for t, o in outcomes if o == "accepted"}
    assert len(accepted) == len([o for _, o in outcomes if o == "accepted"]), "a token twice"
    value = {token: v for _, _, v, token in events}
    assert sum(s.count for s in closed) == len(accepted)
    assert sum(s.sum for s in closed) == sum(value[t] for t in accepted), "every event once"


def test_concurrent_writers_and_sweepers(ddb_store: Store) -> None:
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    events = stream(1, 240)
    parts = [events[i::8] for i in range(8)]
    closed: list[Session] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sweeper() -> None:
        s = ddb_store.sessions("race", gap=5, max_duration=40, allowed_lateness=2)
        while not stop.is_set():
            # Event time runs 1000-1120; sweep with a watermark that moves through it.
            got = s.close_due(now=1000.0 + (time.monotonic() % 60) * 2)
            with lock:
                closed.extend(got)
            stop.wait(0.05)

    sweepers = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in sweepers:
        t.start()
    futures: list[Future[list[tuple[str, str]]]] = []
    try:
        with (
            ThreadPoolExecutor(4) as threads,
            ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as processes,
        ):
            for i, part in enumerate(parts):
                pool = threads if i % 2 else processes
                futures.append(pool.submit(workers.session_events, endpoint, table, "race", part))
            outcomes = [o for f in futures for o in f.result()]
    finally:
        stop.set()
        for t in sweepers:
            t.join()
    s = ddb_store.sessions("race", gap=5, max_duration=40, allowed_lateness=2)
    closed += s.close_due(now=10_000.0)
    assert not [x for k in range(4) for x in s.sessions(f"user{k}") if not x.closed]
    check_accounted(closed, outcomes, events)


def test_faults_keep_every_event_once(ddb_store: Store, fault_injector: FaultInjector) -> None:
    fault_injector.add("ambiguous", rate=0.2).add("conflict", rate=0.2).add("throttle", rate=0.1)
    s = ddb_store.sessions("faulty", gap=5, max_duration=40)
    events = stream(2, 120)
    outcomes = []
    for key, at, value, token in events:
        u = s.add(key, at, value, token=token)
        outcomes.append((token, "late" if u.late else "duplicate" if u.duplicate else "accepted"))
    assert fault_injector.injected["ambiguous"] > 5 and fault_injector.injected["conflict"] > 5
    fault_injector.clear()
    check_accounted(s.close_due(now=10_000.0), outcomes, events)


def test_cost_per_event(ddb_store: Store) -> None:
    """The figures docs/sessions.md quotes, measured against DynamoDB Local."""
    s = ddb_store.sessions("cost", gap=30, max_duration=3600)
    s.add("u", 1000.0, token="a")
    before = ddb_store.metrics.snapshot()
    s.add("u", 1010.0, token="b")
    extend = (ddb_store.metrics.snapshot() - before).total
    before = ddb_store.metrics.snapshot()
    s.add("u", 1010.0)
    plain = (ddb_store.metrics.snapshot() - before).total
    # A Query and one transaction each: the session item (replaced, its index entry moving with
    # its due time), the key's head item, plus the token item. DynamoDB Local counts the index
    # writes too.
    assert extend.requests == 2 and plain.requests == 2
    assert (extend.wcu, plain.wcu) == (8.0, 6.0)
    assert extend.rcu == 1.0
