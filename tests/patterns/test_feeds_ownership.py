"""A batch is committed into one target only, and a stream belongs to one configuration.

A batch sealed outside feeds (no configuration version recorded) gets the version it loads under
recorded on it the first time a feed's loader takes it, so a takeover after the feed's target
changed loads it into the same target (whose ledger knows it committed). Two configurations in
one state table cannot both batch one stream: the second's add is refused, and a loader refuses
a batch recording another configuration's name.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from patterns.batcher import Batcher, BatchState, Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import StateConflict, Store, keys
from stateless_state.testing import FakeLambdaContext

ONE = Thresholds(count=1, bytes=None, age=None)


class Crash(BaseException):
    """The container dies: nothing after this point runs."""


def test_a_batch_sealed_outside_feeds_is_committed_once_across_a_table_change(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any, at_point: Any
) -> None:
    """A batch a one-stream pipeline sealed is loaded by its feed, committed into a.db, and the
    container dies before marking it; the feed's target moves to b.db; the sweeper's takeover
    loads it under the version recorded at the first load (a.db, whose ledger says committed),
    so its one row is in one warehouse once."""
    s3, bucket = s3_bucket
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    before = S3ToRedshift(
        ddb_store,
        stream="orders",
        loader=LocalWarehouseLoader(a_db, s3),
        manifest_bucket=bucket,
        thresholds=ONE,
        s3_client=s3,
        min_load_time=10,
    )
    body = (json.dumps({"o": "one"}) + "\n").encode()
    r = before.handle(
        direct(put_object(s3, bucket, "orders/1.jsonl", body)), FakeLambdaContext(5000)
    )
    [batch_id] = r["sealed"]
    assert Batcher(ddb_store, "orders").batch(batch_id).config_version is None  # type: ignore[union-attr]
    config = FeedsConfig(ddb_store)
    first = config.add(
        Feed("orders", bucket, LocalTarget(str(a_db)), prefix="orders/", thresholds=ONE),
        who="op",
        why="migrate",
    )
    feeds = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0, load_lease=1)

    def die() -> None:
        raise Crash()

    at_point("after-commit", die)
    with pytest.raises(Crash):
        feeds.load(batch_id)
    recorded = Batcher(ddb_store, "orders").batch(batch_id)
    assert recorded is not None
    assert (recorded.config_version, recorded.config_name) == (first.version, "feeds")
    config.update("orders", {"target": {"path": str(b_db)}}, who="op", why="new warehouse")
    time.sleep(1.5)  # the dead loader's lease runs out
    later = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0)
    swept = later.sweep()
    in_a = LocalWarehouseLoader(a_db, None).counts_by_object()
    in_b = LocalWarehouseLoader(b_db, None).counts_by_object() if b_db.exists() else {}
    state = later.pipeline("orders").batcher.batch(batch_id)
    assert state is not None and state.state == BatchState.LOADED
    assert sum(in_a.values()) + sum(in_b.values()) == 1, (
        f"sweep said {swept['loads']}; rows in a.db {in_a}, in b.db {in_b}"
    )
    assert in_b == {}


def test_the_version_recorded_first_wins(ddb_store: Store, s3_bucket: tuple[Any, str]) -> None:
    """Recording is conditional on the batch recording none, and costs one ``UpdateItem`` (1
    WCU per KB of the batch item): a second recording (another loader, a later version)
    returns the first one's version and writes nothing."""
    s3, bucket = s3_bucket
    pipeline = S3ToRedshift(
        ddb_store,
        stream="plain",
        loader=LocalWarehouseLoader(":memory:", s3),
        manifest_bucket=bucket,
        thresholds=ONE,
        s3_client=s3,
        min_load_time=10,
    )
    body = b'{"o": 1}\n'
    r = pipeline.handle(direct(put_object(s3, bucket, "p/1.jsonl", body)), FakeLambdaContext(5000))
    [batch_id] = r["sealed"]
    batcher = Batcher(ddb_store, "plain")
    before = ddb_store.metrics.snapshot()
    assert batcher.record_config_version(batch_id, 3, "feeds").config_version == 3
    spent = (ddb_store.metrics.snapshot() - before).total
    assert spent.requests == 1  # one conditional UpdateItem of the batch item
    assert spent.wcu <= 2.0  # the batch item's size: under 2 KB
    again = batcher.record_config_version(batch_id, 7, "other")
    assert (again.config_version, again.config_name) == (3, "feeds")
    stored = batcher.batch(batch_id)
    assert stored is not None and (stored.config_version, stored.config_name) == (3, "feeds")
    assert stored.state == BatchState.SEALED


def test_a_stream_of_configuration_a_is_refused_to_configuration_b(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """Configuration A adds feed ``orders`` (stream ``orders``); configuration B's add of a
    feed on that stream is refused naming A, and B's configuration stays empty, so B never
    seals a batch A's sweeper would load as A's version says. Each keeps adding feeds on
    streams of its own, and A is refused B's stream in turn."""
    _, bucket = s3_bucket
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    a = FeedsConfig(ddb_store, "feeds-a")
    a.add(Feed("orders", bucket, LocalTarget(str(a_db)), thresholds=ONE), who="op", why="t")
    b = FeedsConfig(ddb_store, "feeds-b")
    with pytest.raises(
        StateConflict, match=r"stream 'orders' belongs to feeds configuration 'feeds-a'"
    ):
        b.add(Feed("orders", bucket, LocalTarget(str(b_db)), thresholds=ONE), who="op", why="t")
    with pytest.raises(StateConflict, match="feeds-a"):
        b.add(
            Feed("mine", bucket, LocalTarget(str(b_db)), stream="orders", prefix="m/"),
            who="op",
            why="t",
        )
    assert b.read().version == 0
    b.add(Feed("orders-b", bucket, LocalTarget(str(b_db)), prefix="b/"), who="op", why="t")
    a.add(Feed("more", bucket, LocalTarget(str(a_db)), prefix="more/"), who="op", why="t")
    with pytest.raises(StateConflict, match="feeds-b"):
        a.add(
            Feed("theirs", bucket, LocalTarget(str(a_db)), stream="orders-b", prefix="t/"),
            who="op",
            why="t",
        )


def test_a_loader_refuses_a_batch_of_another_configuration(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """A batch recording configuration ``feeds-b``'s name (two configurations that shared a
    stream before streams were claimed) is not loaded by ``feeds-a``'s loader: the load is
    refused naming both, and nothing reaches A's warehouse."""
    s3, bucket = s3_bucket
    a_db = tmp_path / "a.db"
    pipeline = S3ToRedshift(
        ddb_store,
        stream="orders",
        loader=LocalWarehouseLoader(a_db, s3),
        manifest_bucket=bucket,
        thresholds=ONE,
        s3_client=s3,
        min_load_time=10,
    )
    body = b'{"o": 1}\n'
    r = pipeline.handle(direct(put_object(s3, bucket, "o/1.jsonl", body)), FakeLambdaContext(5000))
    [batch_id] = r["sealed"]
    Batcher(ddb_store, "orders").record_config_version(batch_id, 1, "feeds-b")
    FeedsConfig(ddb_store, "feeds-a").add(
        Feed("orders", bucket, LocalTarget(str(a_db)), thresholds=ONE), who="op", why="t"
    )
    a = S3Feeds(
        ddb_store, manifest_bucket=bucket, config_name="feeds-a", s3_client=s3, min_load_time=0
    )
    result = a.load(batch_id)
    assert result != "loaded", result
    stored = Batcher(ddb_store, "orders").batch(batch_id)
    assert stored is not None and stored.state != BatchState.LOADED
    assert stored.error is not None and "configuration 'feeds-b', not 'feeds-a'" in stored.error
    in_a = LocalWarehouseLoader(a_db, None).counts_by_object() if a_db.exists() else {}
    assert in_a == {}


def test_a_sweeper_leaves_another_configurations_batch_untouched(
    ddb_store: Store, s3_bucket: tuple[Any, str], local_s3: Any, tmp_path: Any
) -> None:
    """Two configurations that both batch stream ``orders`` (as before streams were claimed:
    the claim is deleted to get there): B's seal records B's name with its version, so A's
    sweeper does not claim B's batch (its attempts stay 0) and nothing reaches A's warehouse;
    B's sweeper then loads it into B's."""
    s3, bucket = s3_bucket
    other = f"{bucket}-b"
    s3.create_bucket(Bucket=other)
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    FeedsConfig(ddb_store, "feeds-a").add(
        Feed("orders", bucket, LocalTarget(str(a_db)), thresholds=ONE), who="op", why="t"
    )
    ddb_store.table.delete(keys.stream_owner("orders").item())
    FeedsConfig(ddb_store, "feeds-b").add(
        Feed("orders", other, LocalTarget(str(b_db)), thresholds=ONE), who="op", why="t"
    )
    a = S3Feeds(ddb_store, manifest_bucket=bucket, config_name="feeds-a", s3_client=s3)
    b = S3Feeds(ddb_store, manifest_bucket=other, config_name="feeds-b", s3_client=s3)
    body = b'{"o": "b-file"}\n'
    r = b.handle(direct(put_object(s3, other, "x.jsonl", body)), FakeLambdaContext(5000))
    [batch_id] = r["sealed"]
    sealed = Batcher(ddb_store, "orders").batch(batch_id)
    assert sealed is not None and sealed.config_name == "feeds-b"
    assert a.sweep()["loads"] == {}
    untouched = Batcher(ddb_store, "orders").batch(batch_id)
    assert untouched is not None
    assert (untouched.state, untouched.attempts) == (BatchState.SEALED, 0)
    assert b.sweep()["loads"] == {batch_id: "loaded"}
    in_a = LocalWarehouseLoader(a_db, None).counts_by_object() if a_db.exists() else {}
    assert in_a == {}
    assert LocalWarehouseLoader(b_db, None).counts_by_object() == {f"s3://{other}/x.jsonl": 1}


def test_loaders_racing_to_record_a_version_all_get_the_one_recorded(
    ddb_store: Store, s3_bucket: tuple[Any, str]
) -> None:
    """Eight threads record versions 1 to 8 on one unversioned batch at once (released
    together by a barrier): exactly one version is stored, and every thread was told that one,
    so every load of the batch uses one target."""
    s3, bucket = s3_bucket
    pipeline = S3ToRedshift(
        ddb_store,
        stream="race",
        loader=LocalWarehouseLoader(":memory:", s3),
        manifest_bucket=bucket,
        thresholds=ONE,
        s3_client=s3,
        min_load_time=10,
    )
    r = pipeline.handle(
        direct(put_object(s3, bucket, "r/1.jsonl", b'{"o": 1}\n')), FakeLambdaContext(5000)
    )
    [batch_id] = r["sealed"]
    barrier = threading.Barrier(8)
    told: list[int | None] = []

    def record(version: int) -> None:
        batcher = Batcher(ddb_store, "race")
        barrier.wait()
        told.append(batcher.record_config_version(batch_id, version, "feeds").config_version)

    threads = [threading.Thread(target=record, args=(v,)) for v in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = Batcher(ddb_store, "race").batch(batch_id)
    assert stored is not None and stored.config_version in range(1, 9)
    assert told == [stored.config_version] * 8
