"""The example of "Testing your handlers for races" (docs/testing.md), run as written."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateless_state import Store
from stateless_state.testing import CounterModel, FakeLambdaContext, History, check_linearizable
from stateless_state.testing.strategies import schedules


def make_handler(store: Store, counter: str) -> Any:
    """The handler under test: count each order once, however often its event arrives."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        count = store.counter(counter).add(1, token=event["order_id"], context=context)
        return {"total": count.value, "new": count.applied}

    return handler


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=schedules(st.sampled_from(["o1", "o2", "o3"]), workers=(2, 4)))
def test_orders_are_counted_once_under_races(ddb_store, fault_injector, schedule):  # type: ignore[no-untyped-def]
    fault_injector.add("ambiguous", rate=0.2)  # some writes land but their answer is lost
    name = f"orders-{uuid.uuid4().hex}"  # hypothesis reuses the table across examples
    handler = make_handler(ddb_store, name)
    history = History()

    def worker(i: int, orders: list[str]) -> None:
        for order in orders:
            for _ in range(10):  # a failed invocation is retried, as Lambda retries it
                try:
                    with history.record(f"w{i}", "add_once", (order, 1), key=name) as op:
                        out = handler({"order_id": order}, FakeLambdaContext(30_000))
                        op.ok((out["total"] if out["new"] else None, out["new"]))
                    break
                except BotoCoreError:  # outcome unknown: the history says so
                    continue

    threads = [threading.Thread(target=worker, args=(i, o)) for i, o in enumerate(schedule)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert check_linearizable(history, CounterModel())
    assert ddb_store.counter(name).get() == len({o for orders in schedule for o in orders})
