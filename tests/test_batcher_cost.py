"""The batcher's hot-path cost stays flat as the batch grows (measured on DynamoDB Local)."""

from __future__ import annotations

import pytest

from benchmarks.batcher_cost import measure
from stateless_state import Store


@pytest.mark.parametrize("size", [10, 100, 1000])
def test_cost_per_arrival_is_flat(ddb_store: Store, size: int) -> None:
    cost = measure(ddb_store, size)
    # Every ordinary arrival: one 3-item transaction (6 WCU), no read. The sealing arrival adds
    # one cancelled transaction (its condition carried the threshold) before it seals.
    assert cost.requests == pytest.approx((size + 1) / size)
    assert cost.wcu == pytest.approx(6.0)
    assert cost.rcu == 0.0
