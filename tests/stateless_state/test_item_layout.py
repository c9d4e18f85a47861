"""The DynamoDB item layout is part of the public contract (docs/versioning.md): items outlive
deployments, so a release that writes them differently must ship as a layout change (read both,
write the new, migrate, drop). This test makes such a change visible: it runs every primitive and
the batcher through its lifecycle on moto, reduces each item written to its shape (key patterns,
attribute names and types, never values), and compares with ``item_layout.json``.

A difference fails with what changed. If the change is meant, follow the versioning policy (a
changelog entry under **Layout**, and the steps it names), then rewrite the file:
``STATELESS_STATE_WRITE_LAYOUT=1 pytest tests/stateless_state/test_item_layout.py``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.testing import direct, put_object
from stateless_state import Store, idempotent
from stateless_state.testing import FakeLambdaContext

GOLDEN = Path(__file__).with_name("item_layout.json")
# The names the scenario gives (letters only, so that digit runs are the library's own).
NAMES = (
    "files",
    "hot",
    "nightly",
    "orders",
    "config",
    "clicks",
    "minutes",
    "userA",
    "events",
    "feeds",
    "landing",
)


def scenario(store: Store, warehouse: Path) -> Iterator[None]:
    """Every kind of item the library writes, in each state it can be stored in: the test reads
    the table at each ``yield``."""
    store.counter("files").add(1)
    yield
    store.counter("files").add(1, token="once")
    store.counter("files").add(-1)
    store.sharded_counter("hot", shards=2).add(1, token="once")
    held = store.lease("nightly", duration=60, owner="workerA").acquire()
    yield
    held.renew()
    held.release()

    @idempotent(store, key="id", namespace="orders")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"done": event["id"]}

    handler({"id": "first"}, FakeLambdaContext(60_000))
    store.idempotency("orders").claim("inflight")
    config = store.versioned("config")
    config.put({"a": 1}, expected=None)
    config.put({"a": 2}, expected=1)
    clicks = store.sessions("clicks", gap=10, max_duration=100, allowed_lateness=5)
    clicks.add("userA", 100.0, value=2, token="once")
    clicks.add("userA", 130.0)
    clicks.close_due(now=120.0)
    minutes = store.windows("minutes", size=60)
    minutes.add("userA", 100.0, token="once")
    minutes.add("userA", 200.0)
    minutes.close_due(now=170.0)
    batcher = Batcher(store, "events", Thresholds(count=2, bytes=None, age=None), max_attempts=1)
    arrivals = [Arrival(f"s3://bucket/key{x}", 5, 100.0, {"key": x}) for x in "abcdefg"]
    sealed = [r.sealed for r in batcher.add_many(arrivals) if r.sealed is not None]
    yield
    batcher.claim_load(sealed[0].id).loaded()
    batcher.claim_load(sealed[1].id).failed("COPY failed")
    batcher.claim_load(sealed[2].id)
    yield
    # Feeds: the configuration (a versioned object), a feed's batches, an unrouted arrival.
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="landing")
    feeds_config = FeedsConfig(store)
    feed = Feed(
        name="orders",
        bucket="landing",
        prefix="orders/",
        target=LocalTarget(str(warehouse)),
        thresholds=Thresholds(count=2, bytes=None, age=None),
    )
    feeds_config.add(feed, who="operator", why="layout")
    feeds = S3Feeds(store, manifest_bucket="landing", s3_client=s3, min_load_time=0)
    records = [
        put_object(s3, "landing", f"{p}key{x}", b'{"a": 1}\n')
        for p in ("orders/", "misc/")
        for x in "ab"
    ]
    feeds.handle(direct(*records), FakeLambdaContext(60_000))
    yield


def pattern(value: str) -> str:
    """A key as a pattern: the scenario's names, digests and numbers replaced by their kind."""
    value = re.sub(r"[0-9a-f]{12,}", "<hex>", value)  # digests, ids, 12-digit sequences
    for name in NAMES:
        value = value.replace(name, "<name>")
    return re.sub(r"[0-9]+", "<n>", value)


def shapes(store: Store) -> Iterator[str]:
    pages = store.client.get_paginator("scan").paginate(TableName=store.table_name)
    for item in (i for page in pages for i in page["Items"]):
        keys = {
            k: pattern(next(iter(item[k].values())))
            for k in ("pk", "sk", "gsi1pk", "gsi1sk")
            if k in item
        }
        attributes = ",".join(
            f"{name}:{next(iter(value))}"
            for name, value in sorted(item.items())
            if name not in keys
        )
        yield " ".join(f"{k}={v}" for k, v in keys.items()) + f" | {attributes}"


def test_the_item_layout_is_the_one_recorded(moto_store: Store, tmp_path: Path) -> None:
    steps = scenario(moto_store, tmp_path / "warehouse.db")
    found = sorted({shape for _ in steps for shape in shapes(moto_store)})
    if os.environ.get("STATELESS_STATE_WRITE_LAYOUT"):
        GOLDEN.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n")
    recorded = json.loads(GOLDEN.read_text())
    added = [s for s in found if s not in recorded]
    gone = [s for s in recorded if s not in found]
    assert (added, gone) == ([], []), (
        "the DynamoDB item layout changed; it is part of the public contract: ship it as "
        "docs/versioning.md says, then rewrite tests/stateless_state/item_layout.json "
        f"(see this test's docstring).\nnew shapes: {added}\nshapes gone: {gone}"
    )
