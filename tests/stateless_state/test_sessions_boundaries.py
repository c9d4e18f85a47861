"""Concurrent adds end in exactly the reference model's sessions: boundaries, not only counts.

Writers (threads, then processes) meet at a barrier before each round and then add events of the
same keys, all within ``gap`` of each other or exactly ``gap`` apart, so every round races the
creation, extension and merging of one key's sessions. With ``max_duration`` out of the way the
model's sessions do not depend on the order of events: they are the chains of events less than
``gap`` apart. DynamoDB Local, real concurrency.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stateless_state import Store
from tests.support import workers

pytestmark = pytest.mark.race

GAP = 10.0
Event = tuple[str, float, float]


def plan(seed: int, writers: int, rounds: int, keys: list[str]) -> list[list[list[Event]]]:
    """``plan[w][r]``: writer w's events in round r. Each round puts every key's events in a
    fresh stretch of time: mostly within the gap of each other (one session), sometimes a chain
    that bridges two, sometimes exactly ``gap`` apart (two sessions, by the strict rule)."""
    rng = random.Random(seed)
    out: list[list[list[Event]]] = [[[] for _ in range(rounds)] for _ in range(writers)]
    value = 0
    for r in range(rounds):
        for k in keys:
            base = 1_000_000.0 + r * 1000 + rng.randrange(0, 3) * 300
            shape = rng.choice(["tight", "tight", "chain", "exact"])
            for w in range(writers):
                value += 1
                if shape == "tight":
                    at = base + rng.randrange(0, 8)
                elif shape == "chain":
                    at = base + w * (GAP - 1)  # consecutive writers' events just within gap
                else:
                    at = base + (w % 2) * GAP  # exactly gap apart: never one session
                out[w][r].append((k, at, float(2**value % 1_000_003)))
    return out


def model_sessions(events: list[Event]) -> dict[str, set[tuple[float, float, int, float]]]:
    by_key: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_key[e[0]].append(e)
    out: dict[str, set[tuple[float, float, int, float]]] = {}
    for key, evs in by_key.items():
        evs.sort(key=lambda e: e[1])
        sessions: list[list[Event]] = [[evs[0]]]
        for e in evs[1:]:
            if e[1] - sessions[-1][-1][1] < GAP:
                sessions[-1].append(e)
            else:
                sessions.append([e])
        out[key] = {(s[0][1], s[-1][1], len(s), sum(e[2] for e in s)) for s in sessions}
    return out


def stored(store: Store, name: str, keys: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    s = store.sessions(name, gap=GAP, max_duration=1e6)
    return {k: {(x.start, x.last, x.count, x.sum) for x in s.sessions(k)} for k in keys}


KEYS = ["k#1", "k", "k#1#", "🚀 /x"]  # prefixes and separators, on purpose


def test_threads_in_lock_step_end_in_the_models_sessions(ddb_store: Store) -> None:
    writers, rounds = 6, 8
    p = plan(11, writers, rounds, KEYS)
    barrier = threading.Barrier(writers)
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    with ThreadPoolExecutor(writers) as pool:
        futures = [
            pool.submit(workers.session_rounds, endpoint, table, "t", p[w], barrier, GAP)
            for w in range(writers)
        ]
        outcomes = [o for f in futures for o in f.result()]
    assert set(outcomes) == {"accepted"}
    events = [e for w in p for r in w for e in r]
    assert stored(ddb_store, "t", KEYS) == model_sessions(events)


def test_processes_in_lock_step_end_in_the_models_sessions(ddb_store: Store) -> None:
    writers, rounds = 4, 6
    p = plan(12, writers, rounds, KEYS)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(writers)
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    with ctx.Pool(writers) as pool:
        results = [
            pool.apply_async(workers.session_rounds, (endpoint, table, "p", p[w], barrier, GAP))
            for w in range(writers)
        ]
        outcomes = [o for r in results for o in r.get(timeout=600)]
    assert set(outcomes) == {"accepted"}
    events = [e for w in p for r in w for e in r]
    assert stored(ddb_store, "p", KEYS) == model_sessions(events)


def test_cost_of_serializing_per_key(ddb_store: Store) -> None:
    """What the head item costs, as docs/sessions.md quotes it (DynamoDB Local, AWS billing
    rule)."""
    s = ddb_store.sessions("cost", gap=30, max_duration=3600)
    before = ddb_store.metrics.snapshot()
    s.add("u", 1000.0)
    first = (ddb_store.metrics.snapshot() - before).total
    before = ddb_store.metrics.snapshot()
    s.add("u", 1010.0)
    warm = (ddb_store.metrics.snapshot() - before).total
    again = ddb_store.sessions("cost", gap=30, max_duration=3600)  # same container: warm
    before = ddb_store.metrics.snapshot()
    again.add("u", 1015.0)
    assert (ddb_store.metrics.snapshot() - before).total.requests == 2
    container = Store(ddb_store.table_name, client=ddb_store.client)  # a new container
    before = container.metrics.snapshot()
    container.sessions("cost", gap=30, max_duration=3600).add("u", 1020.0)
    cold = (container.metrics.snapshot() - before).total
    # A new container reads the head once (GetItem), then a Query and one transaction.
    assert (first.requests, warm.requests, cold.requests) == (3, 2, 3)
    # The transaction: the session (2 WCU) and the head (2 WCU); DynamoDB Local adds the
    # session's index entry.
    assert warm.wcu == cold.wcu
    assert warm.rcu == 1.0 and cold.rcu == 2.0
