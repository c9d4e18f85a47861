"""A third adversary's cases against the feeds' fixes (the linger, declared problems, refused
declarations), kept as they were found: a clock stepped forward, a bad declared revision, a
declaration checked without its manifest bucket, problems behind problems."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from patterns.config import feeds_settings
from patterns.feeds import FeedsConfig
from patterns.feeds.config import INVOCATION_MAX, MAX_CACHE_INTERVAL
from patterns.testing import direct
from stateless_state import InvalidArgument, Store, clock
from stateless_state.cloudwatch import emf_documents
from tests.patterns.test_feeds_pipeline import (
    deployment,
    local_feed,
    no_time,
    objects,
    removed_under_a_warm_container,
    rows_by_object,
)
from tests.support.clocks import ManualClock

LINGER = MAX_CACHE_INTERVAL + INVOCATION_MAX


def test_a_sweeper_clock_stepped_forward_never_hastens_the_drop(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """A sweeper container an hour behind sees the removal first (stamps T-3600, caches it);
    NTP then steps its clock right. By the wall clock its stamp + linger is long past, but it
    also waits the linger on its monotonic clock, so the straggler a warm container routes 4
    minutes later is loaded."""
    s3, bucket = s3_bucket
    db = tmp_path / "o.db"
    now = ManualClock(time.time())
    with clock.using(now):
        _, warm, _ = removed_under_a_warm_container(ddb_store, s3, bucket, "orders", db)
        sweeper = deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0)
        with clock.using(ManualClock(now.time() - 3600)):
            assert sweeper.sweep()["dropped"] == []
        now.advance(60)  # the same container, its clock stepped right
        dropped_early = sweeper.sweep()["dropped"]
        now.advance(240)
        late = warm.handle(direct(*objects(s3, bucket, "orders/", 1, "late")), no_time())
        assert late["by_feed"] == {"orders": 1}, "the warm container still routes"
        now.advance(LINGER)
        deployment(ddb_store, s3, bucket, cache_interval=0, min_load_time=0).sweep()
        sweeper.sweep()
    loaded = set(rows_by_object(db)) if db.exists() else set()
    assert (dropped_early, loaded) == ([], {f"s3://{bucket}/orders/late-0.jsonl"})


@pytest.mark.parametrize("revision", [0, 10**12, -1, True, 3.0])
def test_a_bad_declared_revision_is_refused_when_built(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, revision: Any
) -> None:
    s3, bucket = s3_bucket
    feeds = [local_feed("orders", "orders/", bucket, tmp_path / "o.db")]
    with pytest.raises(InvalidArgument, match="declared revision"):
        deployment(ddb_store, s3, bucket, declared=feeds, declared_revision=revision)


def _feed(tmp_path: Path, name: str, prefix: str, stream: str = "shared") -> dict[str, Any]:
    return {
        "name": name,
        "bucket": "feeds-bucket",
        "prefix": prefix,
        "stream": stream,
        "target": {"kind": "local", "path": str(tmp_path / "w.db"), "table": name},
    }


BASE = {"STATELESS_STATE_TABLE": "state-table", "AWS_REGION": "us-east-1"}
SETTINGS_STORE = Store("feeds-settings", region_name="us-east-1")  # no request is made


def test_feeds_settings_without_its_manifest_bucket_still_checks_the_declared_feeds(
    tmp_path: Path,
) -> None:
    """MANIFEST_BUCKET unset: a FEED_LOCATIONS miss and two feeds on one stream (neither
    needs the manifest bucket) are reported beside it."""
    declaration = json.dumps(
        {"revision": 1, "feeds": [_feed(tmp_path, "a", "a/"), _feed(tmp_path, "b", "b/")]}
    )
    env = {**BASE, "FEEDS": declaration, "FEED_LOCATIONS": "other-bucket/x/"}
    with pytest.raises(InvalidArgument) as without:
        feeds_settings(env, store=SETTINGS_STORE, s3=object())
    text = str(without.value)
    assert "MANIFEST_BUCKET" in text
    assert "outside" in text and "shared" in text, text


def test_a_feeds_own_problem_hides_no_clash_of_the_set(tmp_path: Path) -> None:
    """One feed outside FEED_LOCATIONS, and the others' clash of streams: both reported."""
    declaration = json.dumps(
        {"revision": 1, "feeds": [_feed(tmp_path, "a", "a/"), _feed(tmp_path, "b", "b/")]}
    )
    env = {
        **BASE,
        "FEEDS": declaration,
        "MANIFEST_BUCKET": "manifest-bucket",
        "FEED_LOCATIONS": "feeds-bucket/a/",
    }
    with pytest.raises(InvalidArgument) as refused:
        feeds_settings(env, store=SETTINGS_STORE, s3=object())
    text = str(refused.value)
    assert "outside" in text
    assert "shared" in text, text


def test_every_clash_of_the_declared_set_is_reported(tmp_path: Path) -> None:
    feeds = [
        _feed(tmp_path, n, f"{n}/", stream=s)
        for n, s in [("a", "s1"), ("b", "s1"), ("c", "s2"), ("d", "s2")]
    ]
    env = {
        **BASE,
        "FEEDS": json.dumps({"revision": 1, "feeds": feeds}),
        "MANIFEST_BUCKET": "manifest-bucket",
    }
    with pytest.raises(InvalidArgument) as refused:
        feeds_settings(env, store=SETTINGS_STORE, s3=object())
    text = str(refused.value)
    assert "'s1'" in text and "'s2'" in text, text


@pytest.mark.parametrize("kind", ["stream_clash", "location_clash", "fewer_lanes", "other_config"])
def test_a_declaration_the_stored_configuration_refuses_leaves_it_served(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, kind: str
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    config.add(
        local_feed("orders", "orders/", bucket, tmp_path / "o.db", lanes=2), who="op", why="t"
    )
    if kind == "stream_clash":
        declared = [local_feed("other", "other/", bucket, tmp_path / "x.db", stream="orders")]
    elif kind == "location_clash":
        declared = [local_feed("other", "orders/", bucket, tmp_path / "x.db")]
    elif kind == "fewer_lanes":
        declared = [local_feed("orders", "orders/", bucket, tmp_path / "o.db", lanes=1)]
    else:
        FeedsConfig(ddb_store, "rival").add(
            local_feed("r", "rival/", bucket, tmp_path / "r.db", stream="taken"), who="op", why="t"
        )
        declared = [local_feed("other", "other/", bucket, tmp_path / "x.db", stream="taken")]
    d = deployment(ddb_store, s3, bucket, declared=declared, declared_revision=1)
    before = ddb_store.metrics.snapshot()
    report = d.handle(direct(*objects(s3, bucket, "orders/", 3, "o")))
    assert report["by_feed"] == {"orders": 3}
    assert "declaration_refused" in report, report
    swept = d.sweep()
    assert swept["declaration_refused"]
    spent = ddb_store.metrics.snapshot() - before
    assert spent.by_operation["feeds.declaration_refused"].calls == 2
    [doc] = [x for x in emf_documents(spent) if x["Operation"] == "feeds.declaration_refused"]
    assert doc["Calls"] == 2
