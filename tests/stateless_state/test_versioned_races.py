"""Versioned objects under real concurrency and injected faults (DynamoDB Local)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from stateless_state import Store
from stateless_state.testing import FaultInjector
from tests.support import workers

pytestmark = pytest.mark.race


def check_history(store: Store, name: str, expected: set[str]) -> None:
    v = store.versioned(name)
    history = v.history()
    latest = v.get()
    assert latest is not None
    assert [h.number for h in history] == list(range(1, latest.number + 1)), "gap-free"
    assert sorted(latest.value) == sorted(expected), "every append exactly once"
    assert len(latest.value) == len(set(latest.value))
    previous: list[str] = []
    for h in history:
        assert h.value[: len(previous)] == previous and len(h.value) == len(previous) + 1, (
            f"version {h.number} is not its predecessor plus one append"
        )
        previous = h.value


def test_concurrent_updates_lose_nothing(ddb_store: Store) -> None:
    endpoint, table = ddb_store.client.meta.endpoint_url, ddb_store.table_name
    futures: list[Future[list[int]]] = []
    with (
        ThreadPoolExecutor(8) as threads,
        ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as processes,
    ):
        for i in range(8):
            futures.append(
                threads.submit(workers.versioned_appends, endpoint, table, "doc", f"t{i}", 5)
            )
            futures.append(
                processes.submit(workers.versioned_appends, endpoint, table, "doc", f"p{i}", 5)
            )
        written = [n for f in futures for n in f.result()]
    assert sorted(written) == list(range(1, 81)), "each update wrote exactly one version"
    check_history(
        ddb_store, "doc", {f"{w}{i}-{j}" for w in "tp" for i in range(8) for j in range(5)}
    )


def test_ambiguous_writes_and_conflicts_neither_duplicate_nor_lose(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    fault_injector.add("ambiguous", rate=0.3).add("conflict", rate=0.2).add("throttle", rate=0.1)
    v = ddb_store.versioned("faulty")
    numbers = [
        v.update(lambda x, i=i: [*x, f"u-{i}"], create=[]).number  # type: ignore[misc]
        for i in range(40)
    ]
    assert fault_injector.injected["ambiguous"] > 5 and fault_injector.injected["conflict"] > 3
    fault_injector.clear()
    assert numbers == list(range(1, 41))
    check_history(ddb_store, "faulty", {f"u-{i}" for i in range(40)})


def test_cost_of_versioned_operations(ddb_store: Store) -> None:
    """The figures docs/versioned.md quotes, measured against DynamoDB Local."""
    v = ddb_store.versioned("cost")
    v.put({"n": 0}, expected=None)
    m = ddb_store.metrics

    before = m.snapshot()
    v.update(lambda x: {"n": 1})
    update = (m.snapshot() - before).total
    before = m.snapshot()
    v.get()
    read = (m.snapshot() - before).total
    assert (update.requests, update.wcu, update.rcu) == (2, 4.0, 1.0)
    assert (read.requests, read.rcu) == (1, 1.0)
