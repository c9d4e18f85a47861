"""The local warehouse's table per feed: feeds loading into tables of one SQLite file, each row
in its own feed's table once, the file's one ledger keeping every batch from committing twice
whatever its table; table names SQLite would refuse, or the ledger itself, refused before any
arrival is stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import Thresholds
from patterns.batcher.batches import Batch, BatchState
from patterns.batcher.manifest import Manifest, ManifestEntry
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds, feed_from_json
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.testing import direct, put_object
from stateless_state import InvalidArgument, Store


def feed(name: str, db: Path, bucket: str, table: str) -> Feed:
    return Feed(
        name=name,
        bucket=bucket,
        prefix=f"{name}/",
        target=LocalTarget(str(db), table=table),
        thresholds=Thresholds(count=2, bytes=None, age=None),
    )


def test_feeds_load_into_their_own_tables_of_one_file(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "w.db"
    config = FeedsConfig(ddb_store)
    # A table name that needs quoting, and one the default would be.
    for name, table in (("clicks", 'click "events"'), ("orders", "rows")):
        config.add(feed(name, db, bucket, table), who="op", why="t")
    feeds = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=0)
    records = [
        put_object(s3, bucket, f"{name}/{i}.jsonl", json.dumps({"f": name, "i": i}).encode())
        for name in ("clicks", "orders")
        for i in range(2)
    ]
    report = feeds.handle(direct(*records))
    assert sorted(report["loads"].values()) == ["loaded", "loaded"]
    clicks = LocalWarehouseLoader(db, None, table='click "events"')
    orders = LocalWarehouseLoader(db, None)
    assert clicks.counts_by("f", "i") == {("clicks", "0"): 1, ("clicks", "1"): 1}
    assert orders.counts_by("f", "i") == {("orders", "0"): 1, ("orders", "1"): 1}
    assert set(clicks.counts_by_object()) == {f"s3://{bucket}/clicks/{i}.jsonl" for i in (0, 1)}
    ledger = orders.ledger()
    assert ledger == clicks.ledger(), "one ledger for the file"
    assert sorted(ledger) == ["clicks/0/000000000000", "orders/0/000000000000"]
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"ledger", "rows", 'click "events"'}


def test_the_files_one_ledger_keeps_a_batch_from_committing_twice_into_any_table(
    s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """A loader of another table of the file (a feed whose table changed between two loads of
    one batch, say) finds the batch in the ledger and commits nothing."""
    s3, bucket = s3_bucket
    record = put_object(s3, bucket, "k.jsonl", b'{"x": 1}\n')
    pinned = record["s3"]["object"]
    entry = ManifestEntry(
        f"s3://{bucket}/k.jsonl", 9, version_id=pinned.get("versionId"), etag=pinned.get("eTag")
    )
    manifest = Manifest("s/0/000000000000", bucket, "m/", (entry,))

    class Ticket:
        batch = Batch("s", 0, 0, BatchState.LOADING, 1, 9, 0.0)
        fence = 1

        def record_statement(self, statement_id: str) -> None:
            raise AssertionError("the local warehouse records no statement")

    a = LocalWarehouseLoader(tmp_path / "w.db", s3, table="a")
    b = LocalWarehouseLoader(tmp_path / "w.db", s3, table="b")
    assert a.load(Ticket(), manifest).committed
    second = b.load(Ticket(), manifest)
    assert not second.committed and not second.abandoned
    assert b.recorded(Ticket()) is not None
    assert a.counts_by("x") == {("1",): 1} and b.counts_by("x") == {}
    assert b.abandon(manifest.batch_id) == "loaded", "the file's ledger has it loaded"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("ledger", "is the file's ledger table"),
        ("LEDGER", "is the file's ledger table"),
        ("sqlite_stat1", "starts with 'sqlite_'"),
        ("SQLite_x", "starts with 'sqlite_'"),
        ("a\x00b", "contains NUL"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_a_table_sqlite_would_refuse_or_the_ledger_is_refused_before_anything_is_stored(
    ddb_store: Store, tmp_path: Path, table: str, problem: str
) -> None:
    db = tmp_path / "w.db"
    with pytest.raises(InvalidArgument, match=problem):
        LocalWarehouseLoader(db, None, table=table)
    bad = feed("f", db, "landing", table)
    config = FeedsConfig(ddb_store)
    with pytest.raises(InvalidArgument, match=problem):
        config.add(bad, who="op", why="bad")
    assert config.read().version == 0 and not db.exists(), "nothing stored, no file made"


def test_a_local_target_keeps_its_table_through_json_and_defaults_to_rows() -> None:
    named = feed("f", Path("/tmp/w.db"), "landing", "clicks")
    assert named.to_json()["target"] == {"kind": "local", "path": "/tmp/w.db", "table": "clicks"}
    assert feed_from_json(named.to_json()) == named
    default = Feed(name="g", bucket="landing", target=LocalTarget("/tmp/w.db"))
    assert default.to_json()["target"] == {"kind": "local", "path": "/tmp/w.db"}, "as before"
    assert feed_from_json(default.to_json()).target == LocalTarget("/tmp/w.db", table="rows")
    changed = named.with_changes({"target": {"table": "clicks_v2"}})
    assert changed.target == LocalTarget("/tmp/w.db", table="clicks_v2"), "the path kept"
