"""Cost per arrival of ``Batcher.add`` at several batch sizes, against DynamoDB Local.

    .venv/bin/python -m benchmarks.batcher_cost [--sizes 10 100 1000 10000]

One warm container (the open batch id cached) adds exactly one batch's worth of arrivals with a
count threshold equal to the batch size, so the figures include the sealing add. WCU follow AWS's
billing rule for transactions (2 per item per started KB), which ``store.metrics`` applies because
DynamoDB Local reports a flat 2 units per transaction; cancelled transactions are not counted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from patterns.batcher import Arrival, Batcher, Thresholds
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, fresh_table_name


@dataclass
class Cost:
    size: int
    requests: float
    wcu: float
    rcu: float
    seconds: float


def measure(store: Store, size: int) -> Cost:
    b = Batcher(store, f"cost{size}", Thresholds(count=size, bytes=None, age=None))
    b.add(Arrival(f"warmup-{size}", 100, time.time(), {}))  # the container's first add (a Query)
    before = store.metrics.snapshot()
    started = time.perf_counter()
    sealed = None
    for i in range(size):
        r = b.add(Arrival(f"s3://bucket/{size}/{i:06d}.json#etag=x", 1000, time.time(), {}))
        sealed = r.sealed or sealed
    seconds = time.perf_counter() - started
    assert sealed is not None, "the batch sealed"
    spent = store.metrics.snapshot() - before
    total = spent.total
    return Cost(size, total.requests / size, total.wcu / size, total.rcu / size, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    args = parser.parse_args()
    with DynamoDBLocal() as engine:
        store = Store(fresh_table_name("bench"), client=engine.client())
        store.create_table()
        print("| batch size | requests/arrival | WCU/arrival | RCU/arrival | arrivals/s |")
        print("|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            c = measure(store, size)
            print(
                f"| {c.size:,} | {c.requests:.3f} | {c.wcu:.3f} | {c.rcu:.3f} "
                f"| {c.size / c.seconds:,.0f} |"
            )


if __name__ == "__main__":
    main()
