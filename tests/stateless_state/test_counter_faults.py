"""Counters under injected faults: ambiguous writes, conflicts, throttling (DynamoDB Local)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from stateless_state import Count, OperationStats, Store
from stateless_state.testing import DynamoDBLocal, FaultInjector

pytestmark = pytest.mark.faults


def add_until_answered(store: Store, token: str) -> Count:
    """What a retried Lambda invocation does: call again, with the same token, until answered."""
    c = store.counter("c")
    for _ in range(20):
        try:
            return c.add(1, token=token)
        except (BotoCoreError, ClientError):  # botocore gave up (its retry quota can run dry)
            continue
    raise AssertionError("never answered")


def test_ambiguous_writes_do_not_double_count_tokens(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    fault_injector.add("ambiguous", rate=1 / 3, exhaust=True)
    counts = [add_until_answered(ddb_store, f"t{i}") for i in range(60)]
    counts += [add_until_answered(ddb_store, f"t{i}") for i in range(0, 60, 3)]
    assert fault_injector.injected["ambiguous"] > 10
    fault_injector.clear()
    assert ddb_store.counter("c").get() == 60
    assert sorted((x.previous, x.value) for x in counts[:60]) == [(i, i + 1) for i in range(60)]
    assert not any(x.applied for x in counts[60:])


def test_ambiguous_writes_over_count_plain_adds(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    """The documented weakness of an add without a token: it is at-least-once."""
    fault_injector.add("ambiguous", rate=1 / 3)
    c = ddb_store.counter("plain")
    calls = 0
    for _ in range(60):
        with contextlib.suppress(ReadTimeoutError):
            c.add(1)
        calls += 1
    fault_injector.clear()
    assert c.get() > calls, "an ambiguous write retried by botocore counts twice"


def test_conflicts_and_throttling_keep_tokens_exact(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    fault_injector.add("conflict", rate=0.4).add("throttle", rate=0.2).add("server_error", 0.1)
    fault_injector.add("ambiguous", rate=0.2, exhaust=True)
    for i in range(40):
        add_until_answered(ddb_store, f"t{i % 30}")
    assert fault_injector.injected["conflict"] > 5
    fault_injector.clear()
    assert ddb_store.counter("c").get() == 30
    assert ddb_store.metrics.total.conflicts >= fault_injector.injected["conflict"]


def test_sharded_tokens_exact_under_ambiguous_writes(
    ddb_store: Store, fault_injector: FaultInjector
) -> None:
    s = ddb_store.sharded_counter("hot", shards=4)
    fault_injector.add("ambiguous", rate=1 / 3, exhaust=True)
    for i in range(45):
        for _ in range(20):
            try:
                s.add(1, token=f"t{i % 30}")
                break
            except ReadTimeoutError:
                continue
    fault_injector.clear()
    assert s.get() == 30


def test_cost_of_each_add(ddb_store: Store, dynamodb_local: DynamoDBLocal) -> None:
    """The figures docs/counters.md quotes, measured (DynamoDB Local reports ConsumedCapacity)."""

    def cost(store: Store, fn: Callable[[], object]) -> OperationStats:
        before = store.metrics.snapshot()
        fn()
        return (store.metrics.snapshot() - before).total

    c = ddb_store.counter("cost")
    c.add(1)
    plain = cost(ddb_store, lambda: c.add(1))
    tokened = cost(ddb_store, lambda: c.add(1, token="x"))
    replay = cost(ddb_store, lambda: c.add(1, token="x"))
    cold = Store(ddb_store.table_name, client=dynamodb_local.client())
    first_in_new_container = cost(cold, lambda: cold.counter("cost").add(1, token="y"))
    assert (plain.requests, plain.wcu, plain.rcu) == (1, 1.0, 0.0)
    # Two small items in a transaction: AWS bills 2 WCU each (metrics apply that rule).
    assert (tokened.requests, tokened.wcu, tokened.rcu) == (1, 4.0, 0.0)
    assert (replay.requests, replay.condition_failures) == (1, 1)
    assert (first_in_new_container.requests, first_in_new_container.rcu) == (2, 1.0)
