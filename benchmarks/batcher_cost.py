"""Cost per arrival of the batcher's add path at several batch sizes and event sizes, against
DynamoDB Local.

    .venv/bin/python -m benchmarks.batcher_cost [--sizes 10 100 1000 10000] [--per-event 1 10 100]

One warm container (it filled the batch before) adds the next batch's worth of arrivals,
``per_event`` at a time (``add`` for one, ``add_many`` for more, as the pipeline does), with a
count threshold equal to the batch size, so the figures include the sealing request. The
arrivals are what the S3 parser makes of real notifications (bucket, a dated key, a random
32-hex ETag and sequencer), so the compressed member chunk is as large as in production, not
flattered by repetitive data. WCU follow AWS's billing rule for transactions (2 per item per
started KB), which ``store.metrics`` applies because DynamoDB Local reports a flat 2 units per
transaction; cancelled transactions are not counted.
"""

from __future__ import annotations

import argparse
import secrets
import time
from dataclasses import dataclass

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.s3 import s3_arrivals
from patterns.testing import direct, s3_record
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, fresh_table_name


@dataclass
class Cost:
    size: int
    per_event: int
    requests: float
    wcu: float
    rcu: float
    seconds: float


def s3_like(prefix: str, count: int) -> list[Arrival]:
    """``count`` arrivals as the S3 parser makes them from notifications of distinct objects."""
    records = [
        s3_record(
            "analytics-landing-zone",
            f"{prefix}/year=2026/month=12/day=01/part-{i:06d}-{secrets.token_hex(4)}.jsonl.gz",
            1_000_000,
            etag=secrets.token_hex(16),
            sequencer=secrets.token_hex(8).upper(),
        )
        for i in range(count)
    ]
    return s3_arrivals(direct(*records))


def measure(store: Store, size: int, per_event: int = 1) -> Cost:
    b = Batcher(store, f"cost{size}x{per_event}", Thresholds(count=size, bytes=None, age=None))
    # A warm container in steady state: one batch already filled (its first add paid the
    # Query), so the measured batch starts empty and the container knows it.
    b.add_many(s3_like("warmup", size))
    # An event larger than the batch fills several batches.
    total = max(size, per_event)
    arrivals = s3_like(f"events/{size}x{per_event}", total)
    before = store.metrics.snapshot()
    started = time.perf_counter()
    sealed = []
    for i in range(0, total, per_event):
        event = arrivals[i : i + per_event]
        results = b.add_many(event) if per_event > 1 else [b.add(event[0])]
        sealed += [r.sealed for r in results if r.sealed is not None]
    seconds = time.perf_counter() - started
    assert sealed, "the batch sealed"
    assert not any(r.duplicate for r in results)
    spent = (store.metrics.snapshot() - before).total
    return Cost(
        size, per_event, spent.requests / total, spent.wcu / total, spent.rcu / total, seconds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--per-event", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    with DynamoDBLocal() as engine:
        store = Store(fresh_table_name("bench"), client=engine.client())
        store.create_table()
        print("| records per event | batch size | requests/arrival | WCU/arrival | RCU/arrival |")
        print("|---:|---:|---:|---:|---:|")
        for per_event in args.per_event:
            for size in args.sizes:
                c = measure(store, size, per_event)
                print(
                    f"| {per_event} | {c.size:,} | {c.requests:.3f} | {c.wcu:.3f} | {c.rcu:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
