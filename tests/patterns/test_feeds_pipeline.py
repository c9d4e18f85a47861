"""One handler and one sweeper for many feeds, on DynamoDB Local, a local S3 and the local
warehouse: arrivals routed to their feeds and loaded exactly once, unrouted ones recorded,
counted and listed (never redelivered), a paused feed sealing but not loading until resumed,
a removal refused until drained, and the hot path's cost per arrival unchanged by feeds."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import BatchState, Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.feeds.config import INVOCATION_MAX, MAX_CACHE_INTERVAL, FeedSet
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object, s3_record, sqs
from stateless_state import InvalidArgument, StateConflict, Store, clock
from stateless_state.cloudwatch import emf_documents
from stateless_state.testing import FakeLambdaContext
from tests.support.clocks import ManualClock


def no_time() -> FakeLambdaContext:
    """An invocation with 5 s left: retries fit, a load (min_load_time 10 s) does not."""
    return FakeLambdaContext(5000)


COUNT3 = Thresholds(count=3, bytes=None, age=None)


def local_feed(name: str, prefix: str, bucket: str, db: Path, **more: Any) -> Feed:
    return Feed(
        name=name,
        bucket=bucket,
        prefix=prefix,
        target=LocalTarget(str(db)),
        thresholds=more.pop("thresholds", COUNT3),
        **more,
    )


def deployment(store: Store, s3: Any, bucket: str, **more: Any) -> S3Feeds:
    return S3Feeds(
        store,
        manifest_bucket=bucket,
        s3_client=s3,
        min_load_time=more.pop("min_load_time", 10),
        **more,
    )


def objects(s3: Any, bucket: str, prefix: str, n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` objects of two JSON lines each under ``prefix``; their S3 records."""
    out = []
    for i in range(n):
        body = "".join(json.dumps({"o": f"{tag}{i}", "n": j}) + "\n" for j in range(2))
        key = f"{prefix}{tag}-{i}.jsonl"
        out.append(put_object(s3, bucket, key, body.encode(), sequencer=f"{i:08X}"))
    return out


def removed_under_a_warm_container(
    store: Store, s3: Any, bucket: str, name: str, db: Path, remover: clock.Clock | None = None
) -> tuple[FeedsConfig, S3Feeds, FeedSet]:
    """What a straggler's test starts from: the feed ``name`` (at ``name/``) added, a
    container that read it (and caches it for 900 s), then the feed removed (by ``remover``'s
    clock, if given). Returns the configuration, the warm container and the removal."""
    config = FeedsConfig(store)
    config.add(local_feed(name, f"{name}/", bucket, db), who="op", why="t")
    warm = deployment(store, s3, bucket, cache_interval=900)
    warm.prepare()
    with clock.using(remover) if remover is not None else contextlib.nullcontext():
        removed = config.remove(name, who="op", why="retired")
    return config, warm, removed


def rows_by_object(db: Path) -> dict[str, int]:
    return LocalWarehouseLoader(db, None).counts_by_object()


def test_arrivals_go_to_their_feeds_and_unrouted_ones_are_kept_and_counted(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    config.add(local_feed("orders", "orders/", bucket, tmp_path / "o.db"), who="op", why="t")
    config.add(local_feed("eu", "orders/eu/", bucket, tmp_path / "eu.db"), who="op", why="t")
    feeds = deployment(ddb_store, s3, bucket)
    orders = objects(s3, bucket, "orders/", 3, "o")
    eu = objects(s3, bucket, "orders/eu/", 3, "e")
    stray = objects(s3, bucket, "misc/", 2, "m")
    before = ddb_store.metrics.snapshot()
    report = feeds.handle(direct(*orders, *eu, *stray, stray[0]))  # one stray redelivered
    assert report["by_feed"] == {"eu": 3, "orders": 3} and report["unrouted"] == 3
    assert sorted(report["loads"].values()) == ["loaded", "loaded"]
    assert set(rows_by_object(tmp_path / "o.db")) == {
        f"s3://{bucket}/orders/o-{i}.jsonl" for i in range(3)
    }
    assert set(rows_by_object(tmp_path / "eu.db")) == {
        f"s3://{bucket}/orders/eu/e-{i}.jsonl" for i in range(3)
    }
    listed = feeds.unrouted()
    assert sorted(u.key for u in listed) == ["misc/m-0.jsonl", "misc/m-1.jsonl"], "once each"
    spent = ddb_store.metrics.snapshot() - before
    assert spent.by_operation["feeds.unrouted"].calls == 3, "every unrouted arrival counted"
    docs = emf_documents(spent)
    [doc] = [d for d in docs if d["Operation"] == "feeds.unrouted"]
    assert doc["Calls"] == 3
    # Over SQS an unrouted arrival is acknowledged: never redelivered.
    assert feeds.handle(sqs(*stray))["batchItemFailures"] == []


def test_the_pipelines_own_manifests_are_never_routed(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    # A feed over the whole bucket, manifests and staged copies included.
    config.add(local_feed("all", "", bucket, tmp_path / "a.db"), who="op", why="t")
    feeds = deployment(ddb_store, s3, bucket)
    report = feeds.handle(direct(*objects(s3, bucket, "in/", 3, "x")))
    assert list(report["loads"].values()) == ["loaded"]
    manifests = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="manifests/")["Contents"]
    ]
    assert manifests
    again = feeds.handle(direct(*(s3_record(bucket, k, 10) for k in manifests)))
    assert again["own_objects"] == len(manifests) and again["arrivals"] == 0


def test_a_paused_feed_seals_but_does_not_load_and_resuming_loses_nothing(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "o.db"
    config = FeedsConfig(ddb_store)
    config.add(local_feed("orders", "orders/", bucket, db), who="op", why="t")
    feeds = deployment(ddb_store, s3, bucket, cache_interval=900)
    first = objects(s3, bucket, "orders/", 3, "a")
    feeds.handle(direct(*first), no_time())  # sealed, not loaded (no time left)
    # Paused by an operator; this container's cache still says "running" (an hour's interval),
    # but every load reads the configuration first.
    config.pause("orders", who="op", why="warehouse upgrade")
    report = feeds.handle(direct(*objects(s3, bucket, "orders/", 3, "b")))
    assert list(report["loads"].values()) == ["paused"]
    swept = feeds.sweep()
    assert swept["paused"] == ["orders"] and swept["loads"] == {}
    batcher = feeds.pipeline("orders").batcher
    states = [b.state for b in batcher.batches()]
    assert states == [BatchState.SEALED, BatchState.SEALED], "both sealed, neither claimed"
    assert all(b.attempts == 0 for b in batcher.batches()), "a paused load claims nothing"
    assert feeds.load("orders/0/000000000000") == "paused"
    assert not db.exists() or rows_by_object(db) == {}
    config.resume("orders", who="op", why="done")
    swept = feeds.sweep()
    assert sorted(swept["loads"].values()) == ["loaded", "loaded"]
    assert len(rows_by_object(db)) == 6 and set(rows_by_object(db).values()) == {2}


def test_a_removal_is_refused_until_drained_and_stragglers_are_still_loaded(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "o.db"
    config = FeedsConfig(ddb_store)
    config.add(local_feed("orders", "orders/", bucket, db), who="op", why="t")
    stale = deployment(ddb_store, s3, bucket, cache_interval=900)
    stale.handle(direct(*objects(s3, bucket, "orders/", 2, "a")), no_time())  # open, 2 files
    with pytest.raises(StateConflict, match=r"not drained: batch orders/0/000000000000 is open"):
        config.remove("orders", who="op", why="retired")
    [sealed] = config.seal_open("orders")
    assert sealed.seal_reason == "age" and sealed.config_version == 1
    with pytest.raises(StateConflict, match="is sealed"):
        config.remove("orders", who="op", why="retired")
    fresh = deployment(ddb_store, s3, bucket, cache_interval=0)
    assert list(fresh.sweep()["loads"].values()) == ["loaded"]
    removed = config.remove("orders", who="op", why="retired")
    assert removed.feed("orders").removed
    # A container that has not seen the removal still routes to the feed...
    stale.handle(direct(*objects(s3, bucket, "orders/", 1, "late")), no_time())
    # ... while the others no longer do.
    assert fresh.handle(direct(*objects(s3, bucket, "orders/", 1, "after")))["unrouted"] == 1
    # The sweeper seals the straggler's open batch whatever its age, and loads it.
    swept = fresh.sweep()
    assert list(swept["loads"].values()) == ["loaded"] and swept["dropped"] == []
    assert set(rows_by_object(db)) == {
        f"s3://{bucket}/orders/{k}.jsonl" for k in ("a-0", "a-1", "late-0")
    }
    # Once no container can route to it any more, the drained feed is dropped.
    assert config.drop_removed("orders", linger=3600) is None, "too early"
    dropped = config.drop_removed("orders", linger=0)
    assert dropped is not None and "orders" not in dropped.feeds
    assert [v.change.action for v in config.history() if v.change][-2:] == ["remove", "drop"]


def test_the_linger_before_a_drop_is_the_sweepers_time_not_the_removers(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """An operator whose clock is an hour behind removes a feed: a warm container still
    routes to it for its cache interval, and the sweeper keeps the stream until the linger
    has passed since it first saw the removal, by its own clock, so the straggler loads."""
    s3, bucket = s3_bucket
    db = tmp_path / "o.db"
    now = ManualClock(time.time())
    linger = MAX_CACHE_INTERVAL + INVOCATION_MAX
    with clock.using(now):
        behind = ManualClock(now.time() - 3600)
        _, warm, removed = removed_under_a_warm_container(
            ddb_store, s3, bucket, "orders", db, remover=behind
        )
        assert removed.feed("orders").removed_at == pytest.approx(now.time() - 3600)
        sweeper = deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0)
        assert sweeper.sweep()["dropped"] == [], "removed_at + linger is past, but not seen"
        now.advance(899)
        late = warm.handle(direct(*objects(s3, bucket, "orders/", 1, "late")), no_time())
        assert late["by_feed"] == {"orders": 1}, "the warm container routes by its cache"
        now.advance(linger - 900)
        swept = sweeper.sweep()
        assert list(swept["loads"].values()) == ["loaded"] and swept["dropped"] == []
        now.advance(2)
        assert sweeper.sweep()["dropped"] == ["orders"]
    assert set(rows_by_object(db)) == {f"s3://{bucket}/orders/late-0.jsonl"}


def test_a_removal_stamp_only_grows_and_a_feed_removed_again_lingers_again(
    ddb_store: Store, tmp_path: Path
) -> None:
    """A sweeper whose clock is an hour behind stamps first: a sweeper with the right clock
    raises the stamp to its own time (so it waits the whole linger), the one behind keeps its
    own stamp (measured by its own clock), and a later stamp behind never lowers it."""
    now = ManualClock(time.time())
    with clock.using(now):
        config = FeedsConfig(ddb_store)
        feed = local_feed("orders", "orders/", "feeds-bucket", tmp_path / "o.db")
        config.add(feed, who="op", why="t")
        first = config.remove("orders", who="op", why="t").feed("orders")
        behind = FeedsConfig(ddb_store)
        with clock.using(ManualClock(now.time() - 3600)):
            assert behind.removal_seen(first) == pytest.approx(now.time() - 3600)
        right = FeedsConfig(ddb_store)
        assert right.removal_seen(first) == now.time()
        assert behind.removal_seen(first) == pytest.approx(now.time() - 3600), "its own"
        with clock.using(ManualClock(now.time() - 60)):
            assert FeedsConfig(ddb_store).removal_seen(first) == now.time(), "never lowered"
        now.advance(100)
        config.add(feed, who="op", why="back")
        now.advance(100)
        second = config.remove("orders", who="op", why="t").feed("orders")
        assert FeedsConfig(ddb_store).removal_seen(second) == now.time(), "a new removal"
        with pytest.raises(InvalidArgument, match="not removed"):
            config.removal_seen(feed)


def test_declared_feeds_apply_once_per_revision(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    v1 = [local_feed("orders", "orders/", bucket, tmp_path / "o.db")]
    new = deployment(ddb_store, s3, bucket, declared=v1, declared_revision=2)
    assert new.prepare().version == 1
    FeedsConfig(ddb_store).pause("orders", who="op", why="operator's pause")
    v0 = [local_feed("orders", "old/", bucket, tmp_path / "o.db")]
    old = deployment(ddb_store, s3, bucket, declared=v0, declared_revision=1)
    assert old.prepare().feed("orders").prefix == "orders/", "an older revision never undoes"
    v3 = [local_feed("orders", "orders/v3/", bucket, tmp_path / "o.db", lanes=2)]
    newer = deployment(ddb_store, s3, bucket, declared=v3, declared_revision=3)
    after = newer.prepare()
    assert after.feed("orders").prefix == "orders/v3/" and after.feed("orders").lanes == 2
    assert after.feed("orders").paused, "the operator's pause stays"
    assert [v.change.action for v in FeedsConfig(ddb_store).history() if v.change] == [
        "declare",
        "pause",
        "declare",
    ]
    with pytest.raises(InvalidArgument, match="declared_revision"):
        deployment(ddb_store, s3, bucket, declared=v3)


def test_the_hot_path_costs_per_arrival_what_one_stream_costs(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """The same events through one stream's pipeline and through a feed of a deployment with
    three feeds: the same requests and WCU per arrival (the configuration read once, before)."""
    s3, bucket = s3_bucket
    th = Thresholds(count=50, bytes=None, age=None)
    config = FeedsConfig(ddb_store)
    for name in ("a", "b", "c"):
        config.add(
            local_feed(name, f"{name}/", bucket, tmp_path / f"{name}.db", thresholds=th),
            who="op",
            why="t",
        )
    feeds = deployment(ddb_store, s3, bucket, cache_interval=900)
    single = S3ToRedshift(
        ddb_store,
        stream="single",
        loader=LocalWarehouseLoader(tmp_path / "s.db", s3),
        manifest_bucket=bucket,
        thresholds=th,
        s3_client=s3,
    )

    def events(prefix: str, per_event: int) -> list[dict[str, Any]]:
        records = [s3_record(bucket, f"{prefix}/k{i}.jsonl", 10, etag=f"e{i}") for i in range(150)]
        return [direct(*records[i : i + per_event]) for i in range(0, 150, per_event)]

    def cost(handle: Any, prefix: str, per_event: int) -> tuple[float, float]:
        handle(events(f"{prefix}/warm", per_event)[0], no_time())  # a warm container
        before = ddb_store.metrics.snapshot()
        for event in events(f"{prefix}/m{per_event}", per_event):
            handle(event, no_time())
        spent = (ddb_store.metrics.snapshot() - before).total
        return spent.requests / 150, spent.wcu / 150

    by_feed = {n: cost(feeds.handle, "a", n) for n in (1, 10)}
    assert by_feed == {n: cost(single.handle, "x", n) for n in (1, 10)}
    # The figures of tests/benchmarks/test_batcher_cost.py: one 3-item transaction per single
    # arrival; per event of ten, one transaction of 10 dedupe records, a chunk and the batch.
    assert by_feed == {1: (1.0, 6.0), 10: (0.1, pytest.approx(2.4))}


def test_one_feeds_broken_warehouse_does_not_stop_the_others(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    config.add(local_feed("broken", "b/", bucket, tmp_path / "b.db"), who="op", why="t")
    config.add(local_feed("fine", "f/", bucket, tmp_path / "f.db"), who="op", why="t")

    def loaders(target: Any) -> Any:
        if target.path.endswith("b.db"):
            raise ConnectionError("the warehouse is down")
        return target.loader(s3=s3)

    feeds = deployment(ddb_store, s3, bucket, loader_factory=loaders, retry_backoff=3600)
    events = [direct(*objects(s3, bucket, p, 3, p[0])) for p in ("b/", "f/")]
    for event in events:
        feeds.handle(event, no_time())
    swept = feeds.sweep()
    assert swept["loads"] == {
        "broken/0/000000000000": "retry-later",
        "fine/0/000000000000": "loaded",
    }
    assert swept["failing_targets"] == [f"sqlite:{tmp_path / 'b.db'}"], "named, not an id"
    [failed] = feeds.pipeline("broken").batcher.batches()
    assert failed.error == "ConnectionError: the warehouse is down"
    assert len(rows_by_object(tmp_path / "f.db")) == 3


def test_a_sweeper_whose_clock_is_behind_never_hastens_a_drop(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """Found by the adversary: a sweeper an hour behind stamped the removal first, and a
    sweeper with the right clock dropped the feed a second later, while a warm container still
    routed to it; the straggler was never loaded. Now the right sweeper waits the linger from
    its own sighting, and loads it."""
    s3, bucket = s3_bucket
    db = tmp_path / "o.db"
    now = ManualClock(time.time())
    linger = MAX_CACHE_INTERVAL + INVOCATION_MAX
    with clock.using(now):
        _, warm, _ = removed_under_a_warm_container(ddb_store, s3, bucket, "orders", db)
        behind = deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0)
        right = deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0)
        with clock.using(ManualClock(now.time() - 3600)):
            assert behind.sweep()["dropped"] == []
        now.advance(1)
        assert right.sweep()["dropped"] == [], "a stamp from a clock behind hastens nothing"
        now.advance(300)
        late = warm.handle(direct(*objects(s3, bucket, "orders/", 1, "late")), no_time())
        assert late["by_feed"] == {"orders": 1}
        swept = right.sweep()
        assert list(swept["loads"].values()) == ["loaded"] and swept["dropped"] == []
        now.advance(linger)
        assert right.sweep()["dropped"] == ["orders"]
    assert set(rows_by_object(db)) == {f"s3://{bucket}/orders/late-0.jsonl"}


def test_a_feed_on_a_dropped_feeds_stream_loads_its_batches_as_they_were_sealed(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """A batch of the stream sealed under a version where another feed (since dropped) had
    it loads into that feed's target: the version's feed is found by stream, not by the name
    of the feed that batches the stream now."""
    s3, bucket = s3_bucket
    config, warm, _ = removed_under_a_warm_container(
        ddb_store, s3, bucket, "old", tmp_path / "old.db"
    )
    assert config.drop_removed("old", linger=0) is not None  # no linger: stragglers follow
    sealed = warm.handle(direct(*objects(s3, bucket, "old/", 3, "late")), no_time())["sealed"]
    assert len(sealed) == 1, "sealed under the warm container's version, where 'old' lives"
    new = local_feed("new", "new/", bucket, tmp_path / "new.db", stream="old")
    config.add(new, who="op", why="takes the stream")
    sweeper = deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0)
    swept = sweeper.sweep()
    assert list(swept["loads"].values()) == ["loaded"]
    assert set(rows_by_object(tmp_path / "old.db")) == {
        f"s3://{bucket}/old/late-{i}.jsonl" for i in range(3)
    }
    assert not (tmp_path / "new.db").exists()
