"""End to end on DynamoDB Local, a local S3 and the local warehouse: every row of every object is
loaded exactly once, under concurrency, duplicate and reordered events, injected faults, and two
loaders on one batch."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import BatchState, Thresholds
from patterns.batcher.manifest import build_manifest, write_manifest
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext, FaultInjector

pytestmark = pytest.mark.race

KEYS = [
    "in/plain-{i}.jsonl",
    "in/with space+{i}.jsonl.gz",
    "in/ユニコード-{i}.csv",
    "in/p%2B{i}.jsonl",
]


def write_objects(s3: Any, bucket: str, n: int, rng: random.Random) -> dict[str, Any]:
    """Write n objects; return their S3 records and expected row counts by URL."""
    records, expected = [], {}
    for i in range(n):
        key = KEYS[i % len(KEYS)].format(i=i)
        lines = rng.randint(1, 6)
        if key.endswith(".csv"):
            body = ("id,n\n" + "".join(f"{i},{j}\n" for j in range(lines))).encode()
        else:
            body = "".join(json.dumps({"id": i, "n": j}) + "\n" for j in range(lines)).encode()
        if key.endswith(".gz"):
            body = gzip.compress(body)
        records.append(put_object(s3, bucket, key, body, sequencer=f"{i:08X}"))
        expected[f"s3://{bucket}/{key}"] = lines
    return {"records": records, "expected": expected}


def deliveries(records: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Events of 1-3 records, a quarter of the records delivered twice, in random order."""
    pool = records + rng.sample(records, len(records) // 4)
    rng.shuffle(pool)
    events, i = [], 0
    while i < len(pool):
        k = rng.randint(1, 3)
        events.append(direct(*pool[i : i + k]))
        i += k
    return events


def make_pipeline(store: Store, s3: Any, bucket: str, db: Path) -> S3ToRedshift:
    return S3ToRedshift(
        store,
        stream="e2e",
        loader=LocalWarehouseLoader(db, s3),
        manifest_bucket=bucket,
        thresholds=Thresholds(count=7, bytes=None, age=0.5),
        s3_client=s3,
        min_load_time=0,
        retry_backoff=0.05,
        load_lease=2,
    )


def deliver_all(pipeline: S3ToRedshift, events: list[dict[str, Any]]) -> None:
    def deliver(event: dict[str, Any]) -> None:
        for _ in range(50):
            try:
                pipeline.handle(event)
                return
            except Exception:  # the invocation failed; Lambda would retry it
                time.sleep(0.01)
        raise AssertionError("an event never got through")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, events))


def drain(pipeline: S3ToRedshift, rounds: int = 60) -> None:
    """Run the sweeper until every batch is loaded (age-sealing the last open ones)."""
    for _ in range(rounds):
        with contextlib.suppress(Exception):  # a failed sweep is retried by the next schedule
            pipeline.sweep()
        states = {b.state for b in pipeline.batcher.batches()}
        if states <= {BatchState.LOADED}:
            return
        time.sleep(0.2)
    raise AssertionError(f"batches not all loaded: {states}")


def check_exactly_once(
    loader: LocalWarehouseLoader, pipeline: S3ToRedshift, expected: dict[str, int]
) -> None:
    assert loader.counts_by_object() == expected, "every row of every object exactly once"
    batches = list(pipeline.batcher.batches())
    assert set(loader.ledger()) == {b.id for b in batches}, "one ledger row per batch"
    assert all(b.state == BatchState.LOADED for b in batches)


def test_end_to_end_exactly_once(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    rng = random.Random(1)
    objects = write_objects(s3, bucket, 120, rng)
    pipeline = make_pipeline(ddb_store, s3, bucket, tmp_path / "wh.db")
    deliver_all(pipeline, deliveries(objects["records"], rng))
    drain(pipeline)
    check_exactly_once(pipeline.loader, pipeline, objects["expected"])  # type: ignore[arg-type]


def test_end_to_end_under_injected_faults(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, fault_injector: FaultInjector
) -> None:
    s3, bucket = s3_bucket
    rng = random.Random(2)
    objects = write_objects(s3, bucket, 80, rng)
    pipeline = make_pipeline(ddb_store, s3, bucket, tmp_path / "wh.db")
    fault_injector.add("ambiguous", rate=0.15).add("conflict", rate=0.15)
    fault_injector.add("throttle", rate=0.1).add("server_error", rate=0.05)
    deliver_all(pipeline, deliveries(objects["records"], rng))
    drain(pipeline)
    injected = dict(fault_injector.injected)
    fault_injector.clear()
    assert injected.get("ambiguous", 0) > 10 and injected.get("conflict", 0) > 10, injected
    check_exactly_once(pipeline.loader, pipeline, objects["expected"])  # type: ignore[arg-type]


def test_two_loaders_on_one_batch_commit_its_rows_once(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    objects = write_objects(s3, bucket, 7, random.Random(3))
    pipeline = make_pipeline(ddb_store, s3, bucket, tmp_path / "wh.db")
    pipeline.min_load_time = 10.0  # with 1 s left the handler leaves the load to us
    pipeline.handle(direct(*objects["records"]), FakeLambdaContext(1_000))
    [batch] = [b for b in pipeline.batcher.batches() if b.state == BatchState.SEALED]
    loader: LocalWarehouseLoader = pipeline.loader  # type: ignore[assignment]

    zombie = pipeline.batcher.claim_load(batch.id, lease=0.05)
    manifest = build_manifest(batch.id, pipeline.batcher.members(batch.id), bucket=bucket)
    write_manifest(s3, manifest)
    time.sleep(0.1)  # the zombie stalls past its lease
    successor = pipeline.batcher.claim_load(batch.id)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda t: loader.load(t, manifest), [zombie, successor]))
    assert sorted(o.committed for o in outcomes) == [False, True], "one load commits"
    successor.loaded()
    zombie.loaded()  # harmless on a loaded batch
    check_exactly_once(loader, pipeline, objects["expected"])
