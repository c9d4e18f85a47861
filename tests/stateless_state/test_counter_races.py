"""Counters under real concurrency (threads and processes) against DynamoDB Local."""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from stateless_state import Count, LimitExceeded, Store
from tests.support import workers

pytestmark = pytest.mark.race


def check_exactly_once(results: list[tuple[Any, ...]], distinct: set[str], final: int) -> None:
    """Every token applied once; the applied ranges tile 0..final, so each threshold is crossed
    by exactly one token; replays report their token's original range."""
    applied = [r for r in results if r[3]]
    assert sorted(r[0] for r in applied) == sorted(distinct), "each token applied exactly once"
    assert final == len(distinct)
    ranges = sorted((prev, value) for _, value, prev, _ in applied)
    assert ranges == [(i, i + 1) for i in range(final)]
    original = {t: (v, p) for t, v, p, ok in applied}
    for t, v, p, ok in results:
        if not ok:
            assert (v, p) == original[t]
    for threshold in range(1, final + 1):
        crossers = {t for t, v, p, _ in results if Count(v, p).crossed(threshold)}
        assert len(crossers) == 1, f"threshold {threshold} crossed by {crossers}"


def _token_plan(workers_n: int, per_worker: int, seed: int) -> tuple[list[list[str]], set[str]]:
    rng = random.Random(seed)
    distinct = [f"evt-{i}" for i in range(workers_n * per_worker)]
    submissions = distinct + rng.sample(distinct, len(distinct) // 4)  # 25% duplicates
    rng.shuffle(submissions)
    return [submissions[i::workers_n] for i in range(workers_n)], set(distinct)


def test_token_adds_exact_under_threads(ddb_store: Store) -> None:
    plan, distinct = _token_plan(16, 12, seed=1)
    endpoint = ddb_store.client.meta.endpoint_url
    with ThreadPoolExecutor(16) as pool:
        parts = list(
            pool.map(lambda ts: workers.token_adds(endpoint, ddb_store.table_name, "c", ts), plan)
        )
    results = [r for part in parts for r in part]
    check_exactly_once(results, distinct, ddb_store.counter("c").get())


@pytest.mark.slow  # counter.tokens explores every schedule; the threads test above stays in CI
def test_token_adds_exact_under_processes(ddb_store: Store) -> None:
    plan, distinct = _token_plan(8, 12, seed=2)
    endpoint = ddb_store.client.meta.endpoint_url
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(8, mp_context=ctx) as pool:
        futures = [
            pool.submit(workers.token_adds, endpoint, ddb_store.table_name, "c", ts) for ts in plan
        ]
        results = [r for f in futures for r in f.result()]
    check_exactly_once(results, distinct, ddb_store.counter("c").get())


def test_plain_adds_cross_each_threshold_once_under_threads(ddb_store: Store) -> None:
    c = ddb_store.counter("plain")

    def work(_: int) -> list[Count]:
        return [c.add(1) for _ in range(25)]

    with ThreadPoolExecutor(16) as pool:
        counts = [x for part in pool.map(work, range(16)) for x in part]
    assert c.get() == 400
    assert sorted(x.value for x in counts) == list(range(1, 401))
    for threshold in (1, 100, 250, 400):
        assert sum(x.crossed(threshold) for x in counts) == 1


@pytest.mark.parametrize(
    "mode", ["threads", pytest.param("processes", marks=pytest.mark.slow)]
)  # counter.limits explores the schedules; the threads run stays in CI
def test_limit_never_exceeded(ddb_store: Store, mode: str) -> None:
    limit = 150
    rng = random.Random(3)
    plans = [[rng.randint(1, 4) for _ in range(15)] for _ in range(8)]
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    if mode == "threads":
        with ThreadPoolExecutor(8) as tpool:
            parts = list(
                tpool.map(lambda p: workers.limited_adds(endpoint, table, "q", p, limit), plans)
            )
    else:
        with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as ppool:
            futures = [
                ppool.submit(workers.limited_adds, endpoint, table, "q", p, limit) for p in plans
            ]
            parts = [f.result() for f in futures]
    outcomes = [o for part in parts for o in part]
    final = ddb_store.counter("q").get()
    applied = [o for o in outcomes if o[1] is not None]
    assert final <= limit
    assert sum(a for a, _, _ in applied) == final, "refused adds applied nothing"
    assert all(v <= limit for _, v, _ in applied)
    assert len(applied) < len(outcomes), "the plan asks for more than the limit allows"
    with pytest.raises(LimitExceeded):
        ddb_store.counter("q").add(limit - final + 1, limit=limit)
