"""Feeds refused where they would never load or would lose files: a PostgreSQL stream whose
batch ids overflow the ledger's ``batch_id VARCHAR(256)``, a declared feed that fails its
checks (refused when the deployment is built, not at every invocation), a feed inside the
deployment's manifest prefix, and two spellings of one PostgreSQL database."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patterns.batcher import Thresholds, batch_id
from patterns.batcher.manifest_keys import MAX_FENCE, MAX_REVISION, is_own_key, manifest_key
from patterns.batcher.object_pins import stage_key
from patterns.feeds import Feed, FeedsConfig, LocalTarget, PostgresTarget, RedshiftTarget, S3Feeds
from patterns.feeds.config import check_feeds
from patterns.feeds.pipeline import DECLARATION_REFUSED_OPERATION, target_label
from patterns.loaders import postgres_ledger
from patterns.testing import direct, put_object, s3_record
from stateless_state import InvalidArgument, Store

ONE = Thresholds(count=1, bytes=None, age=None)


def passwordless(uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fixture's URI as a keyword DSN without a password (a feed refuses one), the
    password moved to ``PGPASSWORD``."""
    parts = urlsplit(uri)
    if parts.password:
        monkeypatch.setenv("PGPASSWORD", parts.password)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[0]
    port = f" port={parts.port}" if parts.port else ""
    return f"host={host}{port} user={parts.username} dbname={parts.path.lstrip('/')}"


def postgres_schema(uri: str, target: PostgresTarget, schema: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (o text, n int)")
        conn.execute(target.ledger_ddl())


# B4: a stream whose batch ids overflow the PostgreSQL ledger


def test_a_postgres_stream_whose_batch_ids_overflow_the_ledger_is_refused_when_added(
    ddb_store: Store,
) -> None:
    """A 240-character stream makes lane 255's batch ids 257 characters (``<stream>/255/`` and
    12 digits): the ledger claim could never be inserted, so the feed is refused, naming the
    limit, and nothing is stored."""
    target = PostgresTarget("host=db dbname=w", "s.events")
    feed = Feed("long", "bkt", target, prefix="in/", stream="s" * 240, thresholds=ONE)
    config = FeedsConfig(ddb_store)
    with pytest.raises(InvalidArgument, match=r"feed 'long'.*at most 239 characters"):
        config.add(feed, who="op", why="test")
    assert config.read().version == 0


@pytest.mark.race
def test_a_postgres_stream_at_the_limit_loads_on_its_highest_lane(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The longest stream accepted (239 characters) loads: its batch ids, lane 255's
    included, fit the ledger's column (inserted directly for lane 255: routing picks the lane
    by the arrival's hash)."""
    s3, bucket = s3_bucket
    dsn = passwordless(postgres, monkeypatch)
    schema = f"e{uuid.uuid4().hex[:8]}"
    target = PostgresTarget(dsn, f"{schema}.events")
    postgres_schema(postgres, target, schema)
    stream = "s" * 239
    feed = Feed("edge", bucket, target, prefix="in/", stream=stream, thresholds=ONE, lanes=256)
    FeedsConfig(ddb_store).add(feed, who="op", why="test")
    feeds = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0)
    body = (json.dumps({"o": "x", "n": 1}) + "\n").encode()
    report = feeds.handle(direct(put_object(s3, bucket, "in/x.jsonl", body)))
    assert list(report["loads"].values()) == ["loaded"]
    longest = f"{stream}/255/{10**12 - 1:012d}"
    assert len(longest) == 256
    with psycopg.connect(postgres, autocommit=True) as conn:
        table = target.ledger
        conn.execute(
            f"INSERT INTO {table} (batch_id, fence, loaded_at) VALUES (%s, 1, now())", (longest,)
        )
        assert conn.execute(f"SELECT o FROM {schema}.events").fetchall() == [("x",)]


# B10: a declared feed that fails its checks


def test_a_bad_declared_feed_is_refused_when_the_deployment_is_built(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """A declared feed its loader would refuse (a Redshift table name with '-') fails the
    deployment's construction, naming the feed and the fix, with nothing stored: before, the
    deployment built and every handle() raised, so no feed's arrival was added. Two declared
    feeds on one stream are refused the same way; the stored feed keeps being served by a
    deployment whose declaration is good."""
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    good = Feed("good", bucket, LocalTarget(str(tmp_path / "g.db")), prefix="g/")
    stored = config.add(good, who="op", why="test").version
    rs = RedshiftTarget(
        "s.bad-name", "arn:aws:iam::123456789012:role/c", "dev", workgroup_name="wg"
    )
    bad = Feed("bad", bucket, rs, prefix="b/")
    with pytest.raises(InvalidArgument, match=r"nothing stored: feed 'bad'.*fix the declaration"):
        S3Feeds(
            ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[bad], declared_revision=1
        )
    one = Feed("one", bucket, LocalTarget(str(tmp_path / "o.db")), prefix="o/", stream="x")
    two = Feed("two", bucket, LocalTarget(str(tmp_path / "t.db")), prefix="t/", stream="x")
    with pytest.raises(InvalidArgument, match=r"feed 'two' batches stream 'x'.*fix the declar"):
        S3Feeds(
            ddb_store,
            manifest_bucket=bucket,
            s3_client=s3,
            declared=[one, two],
            declared_revision=1,
        )
    with pytest.raises(InvalidArgument, match="declared twice"):
        S3Feeds(
            ddb_store,
            manifest_bucket=bucket,
            s3_client=s3,
            declared=[one, one],
            declared_revision=1,
        )
    assert config.read().version == stored
    feeds = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[one], declared_revision=1
    )
    assert feeds.handle(direct(s3_record(bucket, "g/1.jsonl", 10)))["by_feed"] == {"good": 1}
    assert sorted(config.read().feeds) == ["good", "one"]


def test_an_oversized_declaration_is_refused_when_built(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """The declaration alone over the size one version holds is refused by the constructor,
    naming size and fix, before any request."""
    s3, bucket = s3_bucket
    db = str(tmp_path / "w.db")
    big = [
        Feed(f"f{i}", bucket, LocalTarget(db, f"t{i}"), prefix=f"p{i:04d}/" + "x" * 1000)
        for i in range(400)
    ]
    with pytest.raises(InvalidArgument, match=r"over the 350,000 one version holds.*fix the decl"):
        S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, declared=big, declared_revision=1)
    assert FeedsConfig(ddb_store).read().version == 0
    fits = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=big[:250], declared_revision=1
    )
    assert len(fits.prepare().feeds) == 250


def test_a_declaration_the_stored_configuration_refuses_leaves_the_stored_feeds_served(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """Refused only against what is stored (here a stream changed, then the same revision with
    other feeds): the stored feeds go on being served, the refusal is logged, counted and
    reported by every sweep; no invocation fails for it."""
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    good = Feed("good", bucket, LocalTarget(str(tmp_path / "g.db")), prefix="g/", thresholds=ONE)
    config.add(good, who="op", why="test")
    moved = replace(good, stream="elsewhere")
    new = Feed("new", bucket, LocalTarget(str(tmp_path / "n.db")), prefix="n/", thresholds=ONE)
    before = ddb_store.metrics.snapshot()
    feeds = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[moved, new], declared_revision=1
    )
    report = feeds.handle(direct(s3_record(bucket, "g/1.jsonl", 10), s3_record(bucket, "n/1", 9)))
    assert (report["by_feed"], report["unrouted"]) == ({"good": 1}, 1)
    assert "declared revision 1 refused" in report["declaration_refused"]
    assert "its stream never changes" in report["declaration_refused"]
    swept = feeds.sweep()
    assert swept["declaration_refused"] == report["declaration_refused"]
    counted = (ddb_store.metrics.snapshot() - before).by_operation[DECLARATION_REFUSED_OPERATION]
    assert counted.calls == 2 and counted.requests == 0
    assert sorted(config.read().feeds) == ["good"]
    # Revision 2 applied; the same revision declaring other feeds is refused, not ignored.
    fixed = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[good, new], declared_revision=2
    )
    assert sorted(fixed.prepare().feeds) == ["good", "new"] and fixed.declaration_refused is None
    other = replace(new, prefix="other/")
    clash = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[good, other], declared_revision=2
    )
    assert clash.prepare().feed("new").prefix == "n/"
    assert "revision 2 was applied with other feeds" in (clash.declaration_refused or "")
    again = S3Feeds(
        ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[new, good], declared_revision=2
    )
    assert again.prepare().version == fixed.prepare().version and again.declaration_refused is None


# B5: a feed inside the deployment's manifest location


def test_a_declared_feed_inside_the_manifest_prefix_is_refused_when_built(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    """Declared at ``manifests/inbox/`` of the manifest bucket, a feed could never receive a
    file of its own (each is taken for a manifest): the deployment refuses to build, naming
    the feed and the fix, nothing stored. The same prefix in another bucket, or a feed whose
    location merely covers the manifest prefix, is accepted."""
    s3, bucket = s3_bucket
    target = LocalTarget(str(tmp_path / "w.db"))
    inside = Feed("inbox", bucket, target, prefix="manifests/inbox/", thresholds=ONE)
    with pytest.raises(
        InvalidArgument, match=r"feed 'inbox'.*inside this deployment's manifest location"
    ):
        S3Feeds(
            ddb_store, manifest_bucket=bucket, s3_client=s3, declared=[inside], declared_revision=1
        )
    assert FeedsConfig(ddb_store).read().version == 0
    elsewhere = Feed("inbox", "other-bucket", target, prefix="manifests/inbox/")
    covering = Feed("all", bucket, target, prefix="", stream="all")
    S3Feeds(
        ddb_store,
        manifest_bucket=bucket,
        s3_client=s3,
        declared=[elsewhere, covering],
        declared_revision=1,
    )


def test_a_stored_feed_inside_the_manifest_prefix_has_its_files_recorded_unrouted(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The configuration cannot know the manifest location, so a stored feed inside it is
    accepted; the deployment then logs an error naming it and the fix, and records and counts
    each of its files as unrouted (listed, under ``feeds.unrouted``) instead of taking them
    for its own objects. An object under the manifest prefix that no such feed covers is
    still one of its own."""
    s3, bucket = s3_bucket
    feed = Feed(
        "inbox",
        bucket,
        LocalTarget(str(tmp_path / "w.db")),
        prefix="manifests/inbox/",
        thresholds=ONE,
    )
    FeedsConfig(ddb_store).add(feed, who="op", why="test")
    deployment = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0)
    body = (json.dumps({"o": "x"}) + "\n").encode()
    before = ddb_store.metrics.snapshot()
    with caplog.at_level("ERROR", logger="patterns.feeds"):
        report = deployment.handle(direct(put_object(s3, bucket, "manifests/inbox/x.jsonl", body)))
    assert (report["arrivals"], report["unrouted"], report["own_objects"]) == (0, 1, 0)
    assert [u.key for u in deployment.unrouted()] == ["manifests/inbox/x.jsonl"]
    assert any(
        "feed 'inbox'" in r.getMessage() and "prefix outside" in r.getMessage()
        for r in caplog.records
    )
    counted = (ddb_store.metrics.snapshot() - before).by_operation["feeds.unrouted"]
    assert counted.calls == 1
    own = deployment.handle(direct(s3_record(bucket, "manifests/s/0/000000000001.0.manifest", 9)))
    assert (own["unrouted"], own["own_objects"]) == (0, 1)


# B2: one PostgreSQL database behind two spellings of its dsn


def ledger_clash(dsn_a: str, dsn_b: str) -> dict[str, Feed]:
    """Feed b loading into feed a's ledger table (its default one,
    ``s.stateless_state_ledger_a``), each target with its own dsn."""
    a = Feed("a", "bkt", PostgresTarget(dsn_a, "s.a"), prefix="a/", thresholds=ONE)
    ledger = postgres_ledger("s.a")
    b = Feed("b", "bkt", PostgresTarget(dsn_b, ledger), prefix="b/", thresholds=ONE)
    return {"a": a, "b": b}


@pytest.mark.parametrize(
    "other",
    [
        "host=db dbname=w",
        "dbname=w host=db",
        "host=db  dbname=w",
        "postgresql://db/w",
        "postgresql://db:5432/w",
        "host=DB dbname=w port=5432",
        "postgresql:///w?host=db",
    ],
)
def test_another_targets_ledger_is_refused_whatever_the_dsn_spelling(other: str) -> None:
    """Before, only the exact same string was taken for one database, so feed b could load
    into feed a's ledger (a forged row there makes a's batch ``already-loaded`` and its files
    are never loaded)."""
    with pytest.raises(InvalidArgument, match="the ledger table of feed 'a'"):
        check_feeds(ledger_clash("host=db dbname=w", other))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("dbname=w", "host=localhost port=5432 dbname=w"),
        ("host=/run/postgresql dbname=w", "postgresql://localhost/w"),
        ("host=db user=w", "host=db dbname=w"),
    ],
)
def test_libpq_defaults_are_one_database(a: str, b: str) -> None:
    """No host is the local server (socket or localhost), no port 5432, no dbname the user."""
    with pytest.raises(InvalidArgument, match="ledger table"):
        check_feeds(ledger_clash(a, b))


@pytest.mark.parametrize(
    "other", ["host=db dbname=x", "host=db port=5433 dbname=w", "host=db2 dbname=w"]
)
def test_other_databases_may_hold_a_table_of_the_ledgers_name(other: str) -> None:
    check_feeds(ledger_clash("host=db dbname=w", other))


def test_a_dsn_that_is_no_connection_string_is_refused_when_compared() -> None:
    with pytest.raises(InvalidArgument, match="not a connection string"):
        check_feeds(ledger_clash("host=db dbname=w", "host=db dbname"))


def test_a_reordered_dsn_onto_anothers_ledger_is_refused_when_added(ddb_store: Store) -> None:
    """The edit runs the check: nothing stored but feed a."""
    feeds = ledger_clash("host=db user=u dbname=w", "dbname=w user=u host=db")
    config = FeedsConfig(ddb_store)
    config.add(feeds["a"], who="op", why="test")
    with pytest.raises(InvalidArgument, match="the ledger table of feed 'a'"):
        config.add(feeds["b"], who="op", why="test")
    assert sorted(config.read().feeds) == ["a"]


# A feed over the manifest location: a producer's file there is its own, not the pipeline's


def test_a_producers_file_under_the_manifest_prefix_goes_to_the_feed_over_it(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    s3, bucket = s3_bucket
    feed = Feed("all", bucket, LocalTarget(str(tmp_path / "w.db")), prefix="", thresholds=ONE)
    FeedsConfig(ddb_store).add(feed, who="op", why="test")
    deployment = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0)
    body = (json.dumps({"o": "x"}) + "\n").encode()
    theirs = put_object(s3, bucket, "manifests/orders-2026.csv", body)
    ours = s3_record(bucket, "manifests/all/0/000000000001.0.manifest", 9)
    report = deployment.handle(direct(theirs, ours))
    assert (report["by_feed"], report["own_objects"], report["unrouted"]) == ({"all": 1}, 1, 0)


ids = st.tuples(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40),
    st.integers(0, 99),
    st.integers(0, 10**12 - 1),
).map(lambda t: batch_id(*t))


@given(
    batch=ids,
    fence=st.integers(0, MAX_FENCE),
    revision=st.integers(0, MAX_REVISION),
    member=st.text(max_size=30),
    key=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=80),
)
def test_every_key_the_pipeline_writes_is_its_own_and_a_producers_is_not(
    batch: str, fence: int, revision: int, member: str, key: str
) -> None:
    prefix = "manifests/"
    assert is_own_key(prefix, manifest_key(prefix, batch, fence, revision))
    assert is_own_key(prefix, stage_key(f"{prefix}staged/", batch, member, key))
    # A producer's file under the prefix: a data file's name, not a manifest's or a copy's.
    assert not is_own_key(prefix, f"{prefix}{key}.csv")
    assert not is_own_key(prefix, f"{prefix}staged/{key}.json.gz")
    assert not is_own_key("other/", manifest_key(prefix, batch, fence, revision))


def test_a_stored_feed_outside_the_readable_locations_is_logged_when_read(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The CLI cannot know the deployment's grants, so it stores the feed; every container
    that reads its version names it and the fix."""
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    config.add(
        Feed("in", bucket, LocalTarget(str(tmp_path / "i.db")), prefix="in/"), who="o", why="t"
    )
    config.add(
        Feed("hr", bucket, LocalTarget(str(tmp_path / "h.db")), prefix="hr/"), who="o", why="t"
    )
    feeds = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, locations=[f"{bucket}/in/"])
    with caplog.at_level("ERROR", logger="patterns.feeds"):
        feeds.prepare()
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "feed 'hr' is at" in logged[0] and "FeedLocations" in logged[0]


def test_a_targets_label_is_its_loaders_name() -> None:
    """The sweeper groups and reports loads by it, so it is computed without building the
    loader (a factory that cannot build one must not stop the feed's sweep)."""
    rs = RedshiftTarget("s.t", "arn:aws:iam::123456789012:role/c", "dev", workgroup_name="wg")
    pg = PostgresTarget("host=db dbname=w user=secret", "public.t")
    for target in (LocalTarget("/tmp/w.db", "t"), rs, pg):
        loader = target.loader(s3=object(), redshift_client=object())
        assert target_label(target) == getattr(loader, "target", None)
    assert "secret" not in target_label(pg)


@pytest.mark.parametrize(
    "key",
    [
        "manifests/q1 report/0/000000000001.0.manifest",  # the stream is percent-encoded
        "manifests/a#b/0/000000000001.0.manifest",
        "manifests/x/4096/000000000001.0.manifest",  # lanes are 0..255
        "manifests/x/0/000000000001.9223372036854775808.manifest",  # over MAX_FENCE
        "manifests/x/0/000000000001.0.r0.manifest",  # revisions start at 1
        "manifests/staged/x/0/000000000001/notahash/data.csv",
    ],
)
def test_a_key_no_writer_of_ours_could_make_is_not_ours(key: str) -> None:
    """Found by the adversary: shapes near ours, which a whole-bucket feed must route."""
    assert not is_own_key("manifests/", key)
