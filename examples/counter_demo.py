"""A small counters demo on DynamoDB Local (``make demo`` until the batcher demo lands).

Eight threads play concurrent Lambda invocations of one handler; a quarter of the events are
delivered twice, as S3 and SQS do. The handler counts each event once by its id, and exactly one
invocation sees the counter cross each multiple of 50. The demo exits non-zero if any of that
fails, and prints what the state cost.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, fresh_table_name

EVENTS = 400
EVERY = 50


def handler(store: Store, event: dict[str, Any]) -> int | None:
    """The Lambda handler: count the event once; report when a multiple of EVERY is crossed."""
    count = store.counter("files-seen").add(1, token=event["id"])
    crossed = [t for t in range(EVERY, count.value + 1, EVERY) if count.crossed(t)]
    return crossed[0] if crossed and count.applied else None


def main() -> int:
    rng = random.Random(7)
    events = [{"id": f"s3://bucket/key-{i}"} for i in range(EVENTS)]
    deliveries = events + rng.sample(events, EVENTS // 4)
    rng.shuffle(deliveries)
    started = time.monotonic()
    with DynamoDBLocal() as engine:
        store = Store(fresh_table_name("demo"), client=engine.client())
        store.create_table()
        with ThreadPoolExecutor(8) as pool:
            milestones = [m for m in pool.map(lambda e: handler(store, e), deliveries) if m]
        final = store.counter("files-seen").get()
        total = store.metrics.total
    print(f"deliveries: {len(deliveries)} ({len(deliveries) - EVENTS} duplicates)")
    print(f"counter:    {final} (expected {EVENTS})")
    print(f"milestones: {sorted(milestones)}")
    print(
        f"cost:       {total.requests / len(deliveries):.2f} requests and "
        f"{total.wcu / len(deliveries):.2f} WCU per delivery as DynamoDB Local reports "
        f"({total.retries} retries under contention)"
    )
    print(f"elapsed:    {time.monotonic() - started:.1f}s")
    ok = final == EVENTS and sorted(milestones) == list(range(EVERY, EVENTS + 1, EVERY))
    print("OK: every event counted once, every milestone seen once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
