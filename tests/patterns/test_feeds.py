"""Feeds: the routing rule over drawn keys (hostile ones included), the configuration as a
versioned object (history with who and why, compare-and-set, checks before anything is stored),
and bad feeds refused when added."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.batcher import Thresholds
from patterns.feeds import (
    Feed,
    FeedsConfig,
    LocalTarget,
    PostgresTarget,
    RedshiftTarget,
    Router,
    S3Feeds,
    feed_from_json,
)
from patterns.loaders import postgres_ledger, redshift_ledger
from patterns.s3 import s3_arrivals
from patterns.testing import direct, s3_record
from stateless_state import InvalidArgument, StateConflict, Store, VersionConflict

RS = {
    "iam_role": "arn:aws:iam::123456789012:role/copy",
    "database": "dev",
    "workgroup_name": "wg",
}


def redshift(table: str = "public.events", **more: Any) -> RedshiftTarget:
    return RedshiftTarget(table=table, **{**RS, **more})


def feed(name: str, prefix: str = "", *, bucket: str = "landing", **more: Any) -> Feed:
    return Feed(name=name, bucket=bucket, prefix=prefix, target=redshift(f"s.{name}"), **more)


# the routing rule

BUCKETS = ["landing", "other-bucket"]
# Hostile pieces: separators, S3's URL-encoding characters, '#' (our key separator), spaces,
# combining marks, emoji, a prefix of another piece.
PIECES = ["a", "a/", "ab", "/", "%", "+", " ", "#", "%2B", ".csv", "\u00e9", "e\u0301", "🦆", ""]
pieces = st.lists(st.sampled_from(PIECES), max_size=4).map("".join)


def oracle(feeds: list[Feed], bucket: str, key: str) -> Feed | None:
    """The rule as stated: of the live feeds of the bucket whose prefix starts the key and
    whose suffix ends it, the longest prefix, then the longest suffix; exactly one, or none."""
    matching = [
        f
        for f in feeds
        if not f.removed
        and f.bucket == bucket
        and key.startswith(f.prefix)
        and key.endswith(f.suffix)
    ]
    if not matching:
        return None
    best = max((len(f.prefix), len(f.suffix)) for f in matching)
    winners = [f for f in matching if (len(f.prefix), len(f.suffix)) == best]
    assert len(winners) == 1, "a tie means two feeds at one location"
    return winners[0]


@st.composite
def feed_sets(draw: st.DrawFn) -> list[Feed]:
    locations = draw(
        st.lists(
            st.tuples(st.sampled_from(BUCKETS), pieces, pieces, st.booleans()),
            min_size=1,
            max_size=8,
            unique_by=lambda t: t[:3],
        )
    )
    return [
        Feed(
            name=f"f{i}",
            bucket=b,
            prefix=p,
            suffix=s,
            target=redshift(f"s.t{i}"),
            removed_at=1.0 if removed else None,
        )
        for i, (b, p, s, removed) in enumerate(locations)
    ]


@settings(max_examples=400, deadline=None)
@given(feeds=feed_sets(), bucket=st.sampled_from(BUCKETS), extra=pieces, tail=pieces)
def test_every_key_lands_in_the_feed_the_rule_picks_or_in_unrouted(
    feeds: list[Feed], bucket: str, extra: str, tail: str
) -> None:
    router = Router(feeds)
    # Keys that start at some feed's prefix and end at some feed's suffix, and keys that don't.
    candidates = {extra + tail} | {f.prefix + extra + g.suffix for f in feeds for g in feeds}
    for key in candidates:
        if not key:
            continue  # S3 has no empty key
        expected = oracle(feeds, bucket, key)
        assert router.route(bucket, key) is expected, key
        # The same key through an S3 notification (URL-encoded as S3 encodes it) routes the same.
        (arrival,) = s3_arrivals(direct(s3_record(bucket, key, 1)))
        assert router.route(arrival.data["bucket"], arrival.data["key"]) is expected


@settings(max_examples=200, deadline=None)
@given(
    locations=st.lists(st.tuples(st.sampled_from(BUCKETS), pieces, pieces), min_size=2, max_size=6)
)
def test_a_set_is_refused_exactly_when_two_live_feeds_share_a_location(
    locations: list[tuple[str, str, str]],
) -> None:
    feeds = [
        Feed(name=f"f{i}", bucket=b, prefix=p, suffix=s, target=redshift(f"s.t{i}"))
        for i, (b, p, s) in enumerate(locations)
    ]
    shared = len(set(locations)) < len(locations)
    if shared:
        with pytest.raises(InvalidArgument, match="cannot choose between them"):
            Router(feeds)
    else:
        Router(feeds)


def test_the_longest_prefix_wins_then_the_longest_suffix() -> None:
    feeds = [
        feed("all"),
        feed("logs", "logs/"),
        feed("app", "logs/app/"),
        Feed(name="csv", bucket="landing", prefix="logs/", suffix=".csv", target=redshift("s.c")),
        feed("elsewhere", "logs/app/", bucket="other-bucket"),
    ]
    router = Router(feeds)
    route = {
        k: getattr(router.route("landing", k), "name", None)
        for k in ["x", "logs/x.json", "logs/x.csv", "logs/app/x.csv", "logs/ap", "Logs/x"]
    }
    assert route == {
        "x": "all",
        "logs/x.json": "logs",
        "logs/x.csv": "csv",
        "logs/app/x.csv": "app",  # the longer prefix first, whatever the suffix
        "logs/ap": "logs",
        "Logs/x": "all",  # no case folding
    }
    assert router.route("third-bucket", "logs/x") is None


# bad feeds refused, before anything is stored


@pytest.mark.parametrize(
    "build, problem",
    [
        (lambda: redshift("bad-table"), "not a valid Redshift identifier"),
        (lambda: redshift("s.t", iam_role="role"), "IAM role ARN"),
        (lambda: redshift("s.t", copy_options=("DROP TABLE x",)), "allowlist"),
        (lambda: redshift("s.t", format="parquet", gzip=True), "Parquet"),
        (lambda: redshift("s.t", db_user="u"), "workgroup_name cannot take db_user"),
        (lambda: redshift("s.t", ledger_table="s.t"), "its own ledger"),
        (lambda: PostgresTarget("host=db", "x" * 64), "truncate"),
        (lambda: PostgresTarget("host=db", "s.t", ledger_table="s.t"), "its own ledger"),
    ],
)
def test_a_target_its_loader_would_refuse_is_refused_when_added(
    ddb_store: Store, build: Any, problem: str
) -> None:
    config = FeedsConfig(ddb_store)
    with pytest.raises(InvalidArgument, match=problem):
        config.add(Feed(name="f", bucket="landing", target=build()), who="op", why="t")
    assert config.read().version == 0, "nothing stored"


@pytest.mark.parametrize(
    "data, problem",
    [
        (
            {"kind": "redshift", "table": "s.t", "database": "dev", "workgroup_name": "w"},
            "iam_role",
        ),
        ({"kind": "redshift", **RS, "table": "s.t", "cluster_identifier": "c"}, "exactly one"),
        ({"kind": "redshift", **RS, "table": "s.t", "format": "xml"}, "format 'xml'"),
        ({"kind": "postgres", "table": "t"}, "dsn"),
        ({"kind": "postgres", "dsn": "postgresql://u:secret@db/x", "table": "t"}, "password"),
        ({"kind": "postgres", "dsn": "host=db password=x", "table": "t"}, "password"),
        ({"kind": "local"}, "path"),
        ({"kind": "snowflake"}, "not one of"),
        ({"kind": "local", "path": "w.db", "ledger_table": "l"}, "unknown local target field"),
        ({"kind": "local", "path": "w.db", "table": ""}, "local target table"),
    ],
)
def test_missing_or_bad_warehouse_settings_are_refused(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        feed_from_json({"name": "f", "bucket": "landing", "target": data})


@pytest.mark.parametrize(
    "more, problem",
    [
        ({"prefix": "x" * 1025}, "1025 bytes"),
        ({"prefix": "é" * 513}, "1026 bytes"),
        ({"suffix": "\ud800"}, "lone surrogate"),
        ({"bucket": "Bad_Bucket"}, "not a valid S3 bucket name"),
        ({"lanes": 0}, "lanes"),
        ({"name": ""}, "must not be empty"),
        ({"stream": "s" * 256}, "stream"),
    ],
)
def test_a_bad_location_or_shape_is_refused(more: dict[str, Any], problem: str) -> None:
    base: dict[str, Any] = {"name": "f", "bucket": "landing", "target": redshift("s.t")}
    with pytest.raises(InvalidArgument, match=problem):
        Feed(**{**base, **more})


def test_an_undecidable_overlap_a_shared_stream_or_a_ledger_as_table_is_refused(
    ddb_store: Store,
) -> None:
    config = FeedsConfig(ddb_store)
    config.add(feed("a", "in/"), who="op", why="first")
    ledger_a = redshift_ledger("s.a")
    refusals = [
        (feed("b", "in/"), "cannot choose between them"),
        (feed("c", "other/", stream="a"), "stream 'a', which is feed 'a'"),
        (
            Feed(name="d", bucket="landing", prefix="d/", target=redshift(ledger_a)),
            "the ledger table of feed 'a'",
        ),
        (  # Redshift folds case: the same table
            Feed(name="e", bucket="landing", prefix="e/", target=redshift(ledger_a.upper())),
            "the ledger table of feed 'a'",
        ),
    ]
    for bad, problem in refusals:
        with pytest.raises(InvalidArgument, match=problem):
            config.add(bad, who="op", why="bad")
    with pytest.raises(StateConflict, match="exists"):
        config.add(feed("a", "again/"), who="op", why="bad")
    assert config.read().version == 1
    # A longer prefix under the same one is decidable: accepted.
    config.add(feed("b", "in/b/"), who="op", why="nested")
    assert sorted(config.read().feeds) == ["a", "b"]


def test_each_target_has_its_own_ledger_by_default_named_by_the_loaders_rule() -> None:
    assert redshift("s.events").ledger == "s.stateless_state_ledger_events"
    assert redshift("events").ledger == "stateless_state_ledger_events"
    assert PostgresTarget("host=db", "s.events").ledger == "s.stateless_state_ledger_events"
    long = "t" * 60
    assert PostgresTarget("host=db", long).ledger == postgres_ledger(long), "the loaders' rule"
    assert redshift("s." + "t" * 120).ledger == redshift_ledger("s." + "t" * 120)
    assert redshift("s.t", ledger_table="s.shared").ledger == "s.shared"
    a, b = redshift("s.a").loader(), redshift("s.b").loader()
    assert a.ledger_table != b.ledger_table  # type: ignore[attr-defined]
    assert a.ledger_table == redshift("s.a").ledger  # type: ignore[attr-defined]
    pg = PostgresTarget("host=db", "s.a")
    assert pg.loader().ledger_table == pg.ledger  # type: ignore[attr-defined]


# the configuration as a versioned object


def test_every_change_is_a_version_with_who_and_why(ddb_store: Store) -> None:
    config = FeedsConfig(ddb_store)
    config.add(feed("orders", "orders/"), who="ana", why="new feed")
    config.update(
        "orders", {"target": {"table": "s.orders_v2", "format": "csv"}}, who="bo", why="v2"
    )
    config.pause("orders", who="ana", why="warehouse upgrade")
    config.resume("orders", who="ana", why="done")
    history = config.history()
    assert [
        (v.version, v.change.action, v.change.who, v.change.why) for v in history if v.change
    ] == [
        (1, "add", "ana", "new feed"),
        (2, "update", "bo", "v2"),
        (3, "pause", "ana", "warehouse upgrade"),
        (4, "resume", "ana", "done"),
    ]
    v2 = config.at(2).feed("orders")
    assert isinstance(v2.target, RedshiftTarget)
    assert (v2.target.table, v2.target.format, v2.target.iam_role) == (
        "s.orders_v2",
        "csv",
        RS["iam_role"],
    ), "the target merged field by field"
    assert config.at(1).feed("orders").target.table == "s.orders"
    assert config.at(3).feed("orders").paused and not config.read().feed("orders").paused


def test_an_edit_from_a_version_shown_is_refused_once_another_landed(ddb_store: Store) -> None:
    config = FeedsConfig(ddb_store)
    shown = config.add(feed("orders", "orders/"), who="ana", why="new").version
    config.update("orders", {"lanes": 2}, who="bo", why="hotter", expected=shown)
    with pytest.raises(VersionConflict):
        config.update("orders", {"lanes": 4}, who="ana", why="stale", expected=shown)
    assert config.read().feed("orders").lanes == 2


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"stream": "other"}, "never changes"),
        ({"name": "other"}, "never changes"),
        ({"lanes": 1}, "lanes only grow"),
        ({"paused": True}, "with pause and resume"),
        ({"colour": "red"}, "unknown feed field"),
        ({"target": {"table": "bad table"}}, "not a valid Redshift identifier"),
        ({"thresholds": {"count": None, "bytes": None, "age": None}}, "at least one threshold"),
    ],
)
def test_an_update_that_would_strand_batches_or_never_load_is_refused(
    ddb_store: Store, changes: dict[str, Any], problem: str
) -> None:
    config = FeedsConfig(ddb_store)
    config.add(feed("orders", "orders/", lanes=2), who="ana", why="new")
    with pytest.raises(InvalidArgument, match=problem):
        config.update("orders", changes, who="bo", why="bad")
    assert config.read().version == 1


def test_a_paused_feed_is_not_removed_and_a_why_is_brief(ddb_store: Store) -> None:
    config = FeedsConfig(ddb_store)
    config.add(feed("orders", "orders/", paused=True), who="ana", why="new, paused")
    with pytest.raises(StateConflict, match="resume it before removing it"):
        config.remove("orders", who="ana", why="retired")
    with pytest.raises(InvalidArgument, match="at most 1000 characters"):
        config.resume("orders", who="ana", why="x" * 1001)
    assert config.read().version == 1


def test_a_configuration_larger_than_an_item_holds_is_refused(ddb_store: Store) -> None:
    config = FeedsConfig(ddb_store)
    long = "p" * 600
    many = [
        Feed(name=f"f{i}", bucket="landing", prefix=f"{long}{i}/", target=redshift(f"s.t{i}"))
        for i in range(500)
    ]
    with pytest.raises(InvalidArgument, match="over the 350,000 one version holds"):
        config.declare(many, revision=1)
    assert config.read().version == 0


def test_the_cache_reads_at_most_once_per_interval(ddb_store: Store) -> None:
    writer = FeedsConfig(ddb_store)
    writer.add(feed("orders", "orders/"), who="ana", why="new")
    reader = FeedsConfig(ddb_store, cache_interval=900)
    assert reader.current().version == 1
    before = ddb_store.metrics.snapshot()
    writer.pause("orders", who="ana", why="x")
    after_write = ddb_store.metrics.snapshot()
    for _ in range(100):
        assert reader.current().version == 1
    assert (ddb_store.metrics.snapshot() - after_write).total.requests == 0
    assert reader.current(fresh=True).version == 2
    assert (ddb_store.metrics.snapshot() - before).total.requests > 0


def test_a_feed_round_trips_through_its_json() -> None:
    f = Feed(
        name="clicks 🦆",
        bucket="landing",
        prefix="a#b/%2B ",
        suffix=".csv",
        target=redshift("s.t", format="csv", gzip=True, copy_options=("IGNOREHEADER 1",)),
        thresholds=Thresholds(count=5, bytes=None, age=30),
        lanes=3,
        paused=True,
    )
    assert feed_from_json(json.loads(json.dumps(f.to_json()))) == f
    local = Feed(name="l", bucket="landing", target=LocalTarget("/tmp/w.db"))
    assert feed_from_json(local.to_json()) == local


# the deployment's settings

BASE_ENV = {"STATELESS_STATE_TABLE": "state", "MANIFEST_BUCKET": "manifests-bucket"}
SETTINGS_STORE = Store("feeds-settings", region_name="us-east-1")  # no request is made


def test_feeds_declared_in_the_deployment_are_read_from_one_json_setting() -> None:
    from patterns.config import feeds_settings

    declared = {"revision": 3, "feeds": [feed("orders", "orders/").to_json()]}
    env = {**BASE_ENV, "FEEDS": json.dumps(declared), "FEEDS_CACHE_INTERVAL": "30"}
    settings = feeds_settings(env, store=SETTINGS_STORE, s3=object())
    assert settings["declared"] == [feed("orders", "orders/")]
    assert (settings["declared_revision"], settings["cache_interval"]) == (3, 30.0)
    built = S3Feeds.from_env(env, store=SETTINGS_STORE, s3=object())
    assert built.config.cache_interval == 30.0 and built.manifest_bucket == "manifests-bucket"
    assert (
        feeds_settings(
            {**BASE_ENV, "FEEDS_CACHE_INTERVAL": "0.0"}, store=SETTINGS_STORE, s3=object()
        )["cache_interval"]
        == 0.0
    )


@pytest.mark.parametrize(
    "more, problem",
    [
        ({"REDSHIFT_TABLE": "s.t"}, "REDSHIFT_TABLE configure one stream"),
        ({"STREAM": "clicks"}, "STREAM configure one stream"),
        ({"FEEDS": "{"}, "FEEDS='{' is refused: not JSON"),
        ({"FEEDS": '{"feeds": []}'}, '"revision": <int'),
        ({"FEEDS": '{"revision": 0, "feeds": []}'}, "FEEDS revision"),
        (
            {"FEEDS": json.dumps({"revision": 1, "feeds": [{"name": "x", "bucket": "b-1"}]})},
            "FEEDS feeds[0]",
        ),
        (
            {
                "FEEDS": json.dumps(
                    {
                        "revision": 1,
                        "feeds": [
                            feed("x").to_json()
                            | {"target": {"kind": "redshift", **RS, "table": "a b"}}
                        ],
                    }
                )
            },
            "Redshift identifier",
        ),
        ({"FEEDS_CACHE_INTERVAL": "nan"}, "FEEDS_CACHE_INTERVAL"),
        ({"FEEDS_CACHE_INTERVAL": "901"}, "give seconds, 0 or more and at most 900"),
        ({"FEEDS_CONFIG": "\ud800"}, "FEEDS_CONFIG"),
        ({"MANIFEST_PREFIX": "m/" * 120}, "MANIFEST_PREFIX"),
        ({"FEEDS": '{"revision": 1, "revision": 2, "feeds": []}'}, "'revision' appears twice"),
        ({"FEEDS": "{}", "FEEDS_FILE": "feeds.json"}, "FEEDS and FEEDS_FILE are both set"),
        ({"FEEDS_FILE": "no-such-feeds.json"}, "cannot read"),
        ({"FEED_LOCATIONS": "my-feeds-bucket"}, "has no '/'"),
        ({"FEED_LOCATIONS": "Bad_Bucket/x/"}, "FEED_LOCATIONS"),
    ],
)
def test_a_bad_deployment_setting_is_refused_naming_it(more: dict[str, str], problem: str) -> None:
    from patterns.config import feeds_settings

    with pytest.raises(InvalidArgument, match=re.escape(problem)):
        feeds_settings({**BASE_ENV, **more}, store=SETTINGS_STORE, s3=object())


def test_every_bad_deployment_setting_is_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from patterns.config import SettingsRefused, feeds_settings

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bad_feed = feed("a").to_json() | {"lanes": 0}
    env = {
        "STATELESS_STATE_TABLE": "state",
        "LOAD_LEASE": "0",
        "FEEDS_CACHE_INTERVAL": "x",
        "FEEDS": json.dumps({"revision": 0, "feeds": [bad_feed, feed("ok").to_json()]}),
    }
    with pytest.raises(SettingsRefused) as refused:
        feeds_settings(env, store=None, s3=object())
    found = refused.value.problems
    for name in ("MANIFEST_BUCKET", "LOAD_LEASE", "FEEDS_CACHE_INTERVAL", "FEEDS revision"):
        assert sum(name in p for p in found) == 1, (name, found)
    assert sum("FEEDS feeds[0]" in p for p in found) == 1 and len(found) == 5


def test_declared_feeds_can_come_from_a_file_shipped_with_the_code(tmp_path: Path) -> None:
    """Lambda caps a function's environment at 4 KB: fifty declared feeds need a file."""
    from patterns.config import feeds_settings

    many = [feed(f"f{i:02d}", f"f{i:02d}/").to_json() for i in range(50)]
    (tmp_path / "feeds.json").write_text(json.dumps({"revision": 7, "feeds": many}))
    env = {**BASE_ENV, "FEEDS_FILE": "feeds.json", "LAMBDA_TASK_ROOT": str(tmp_path)}
    settings = feeds_settings(env, store=SETTINGS_STORE, s3=object())
    assert settings["declared_revision"] == 7 and len(settings["declared"]) == 50
    absolute = {**BASE_ENV, "FEEDS_FILE": str(tmp_path / "feeds.json")}
    assert len(feeds_settings(absolute, store=SETTINGS_STORE, s3=object())["declared"]) == 50
    (tmp_path / "bad.json").write_text('{"revision": 1, "feeds": [{"name": "x"}]}')
    with pytest.raises(InvalidArgument, match=r"FEEDS_FILE \(.*bad.json\) feeds\[0\]"):
        feeds_settings({**env, "FEEDS_FILE": "bad.json"}, store=SETTINGS_STORE, s3=object())


def test_a_declared_feed_outside_the_readable_locations_is_refused_at_cold_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from patterns.config import feeds_settings

    bucket = feed("x").bucket
    inside, other = feed("orders", "orders/eu/"), replace(feed("hr", "hr/"), bucket="hr-bucket")
    declared = {"revision": 1, "feeds": [inside.to_json(), other.to_json()]}
    env = {**BASE_ENV, "FEEDS": json.dumps(declared), "FEED_LOCATIONS": f"{bucket}/orders/"}
    with pytest.raises(InvalidArgument, match=r"FEEDS: feed 'hr' is at s3://hr-bucket/hr/"):
        feeds_settings(env, store=SETTINGS_STORE, s3=object())
    declared["feeds"] = [inside.to_json()]
    env["FEEDS"] = json.dumps(declared)
    settings = feeds_settings(env, store=SETTINGS_STORE, s3=object())
    assert settings["locations"] == [f"{bucket}/orders/"]
    # A prefix that only starts like the location's is outside it: orders/ is not order/.
    narrow = S3Feeds(SETTINGS_STORE, manifest_bucket="m-bucket", locations=[f"{bucket}/order"])
    assert narrow.locations == [f"{bucket}/order"]
    with pytest.raises(InvalidArgument, match="outside the locations"):
        S3Feeds(
            SETTINGS_STORE,
            manifest_bucket="m-bucket",
            locations=[f"{bucket}/orders/us/"],
            declared=[inside],
            declared_revision=1,
        )


def test_a_cache_interval_longer_than_the_sweepers_wait_is_refused(ddb_store: Store) -> None:
    """The sweeper drops a removed feed MAX_CACHE_INTERVAL plus an invocation after its removal,
    whatever its own interval: a handler caching longer could route to a dropped feed (its
    arrival then stranded in a batch no sweeper seals), so it is refused. Found by the
    adversary with a handler at 3,600 s and a sweeper at 60 s."""
    from patterns.feeds.config import MAX_CACHE_INTERVAL

    FeedsConfig(ddb_store, cache_interval=MAX_CACHE_INTERVAL)
    with pytest.raises(InvalidArgument, match="cache_interval 3600 s is over 900 s"):
        FeedsConfig(ddb_store, cache_interval=3600)
