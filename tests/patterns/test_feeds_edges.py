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
from patterns.feeds import Feed, FeedsConfig, PostgresTarget, S3Feeds
from patterns.testing import direct, put_object
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
