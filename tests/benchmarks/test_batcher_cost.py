"""The batcher's add-path cost per arrival, measured on DynamoDB Local: flat as the batch grows,
and falling toward the 2-WCU floor (one transactional dedupe record) as events carry more records.
The figures are the ones ``benchmarks/RESULTS.md`` and docs/batcher.md quote."""

from __future__ import annotations

import pytest

from benchmarks.batcher_cost import measure
from stateless_state import Store


@pytest.mark.parametrize("size", [10, 100, 1000])
def test_single_arrivals_cost_one_request_each(ddb_store: Store, size: int) -> None:
    cost = measure(ddb_store, size)
    # One 3-item transaction (6 WCU) per arrival and no read; a warm container knows which
    # arrival seals, so the sealing add is no extra request.
    assert cost.requests == pytest.approx(1.0)
    assert cost.wcu == pytest.approx(6.0)
    assert cost.rcu == 0.0


@pytest.mark.parametrize("size", [10, 100, 1000])
def test_ten_records_per_event(ddb_store: Store, size: int) -> None:
    cost = measure(ddb_store, size, per_event=10)
    # One transaction per event: 10 dedupe records (20 WCU), one member chunk under 1 KB
    # compressed (2) and the batch update (2).
    assert cost.requests == pytest.approx(0.1)
    assert cost.wcu == pytest.approx(2.4)
    assert cost.rcu == 0.0


@pytest.mark.parametrize("size", [100, 1000])
def test_hundred_records_per_event(ddb_store: Store, size: int) -> None:
    cost = measure(ddb_store, size, per_event=100)
    # Two transactions per event (98 arrivals + 2; 100 actions at most): 200 WCU of dedupe
    # records, a 98-member chunk of about 6 KB compressed (12) and a 2-member one (2), and two
    # batch updates (4): 218 WCU per 100 arrivals.
    assert cost.requests == pytest.approx(0.02)
    assert cost.wcu == pytest.approx(2.18)
    assert cost.rcu == 0.0
