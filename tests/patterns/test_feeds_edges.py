"""Feeds refused where they would never load or would lose files: a PostgreSQL stream whose
batch ids overflow the ledger's ``batch_id VARCHAR(256)``, a declared feed that fails its
checks (refused when the deployment is built, not at every invocation), a feed inside the
deployment's manifest prefix, and two spellings of one PostgreSQL database."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from patterns.batcher import Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, PostgresTarget, RedshiftTarget, S3Feeds
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
