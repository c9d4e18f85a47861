"""``stateless-state feeds ...``, run as the real console script against DynamoDB Local: every
edit recorded with who and why, bad input refused with exit 2 and a state that refuses an edit
with exit 4 (nothing changed either way), and the arrivals no feed took listed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import Arrival
from patterns.feeds import FeedsConfig, feed_from_json
from patterns.feeds.unrouted import record_unrouted
from stateless_state import Store
from tests.support.cli import cli

pytestmark = pytest.mark.race

ORDERS: dict[str, Any] = {
    "name": "orders",
    "bucket": "landing",
    "prefix": "orders/",
    "thresholds": {"count": 2, "bytes": None, "age": None},
    "target": {
        "kind": "redshift",
        "table": "sales.orders",
        "iam_role": "arn:aws:iam::123456789012:role/copy",
        "database": "dev",
        "workgroup_name": "wg",
    },
}


def test_add_list_show_update_pause_and_history(ddb_store: Store, tmp_path: Path) -> None:
    spec = tmp_path / "orders.json"
    spec.write_text(json.dumps(ORDERS))

    def run(*args: str) -> Any:
        return cli(ddb_store, *args, tmp=tmp_path)

    r = run("feeds", "add", f"@{spec}", "--why", "new feed", "--who", "ana", "--yes")
    assert r.returncode == 0, r.stderr
    r = run("--json", "feeds", "list")
    [row] = json.loads(r.stdout)
    assert (row["name"], row["state"], row["target"]) == (
        "orders",
        "running",
        "redshift:sales.orders (json)",
    )
    r = run("feeds", "show", "orders")
    ddl = 'CREATE TABLE IF NOT EXISTS "sales"."stateless_state_ledger_orders"'
    assert ddl in r.stdout, "its own ledger"
    changes = '{"target": {"table": "sales.orders_v2", "format": "csv"}}'
    r = run("feeds", "update", "orders", changes, "--why", "v2", "--who", "bo", "--yes")
    assert r.returncode == 0, r.stderr
    assert '"table": "sales.orders"' in r.stdout and "sales.orders_v2" in r.stdout, "the diff"
    r = run("feeds", "pause", "orders", "--why", "upgrade", "--who", "ana", "--yes")
    assert r.returncode == 0, r.stderr
    r = run("feeds", "pause", "orders", "--why", "again", "--yes")
    assert r.returncode == 4 and "already paused; nothing changed" in r.stderr
    r = run("--json", "feeds", "show", "orders", "--version", "1")
    assert json.loads(r.stdout)["target"]["table"] == "sales.orders", "as version 1 had it"
    r = run("--json", "feeds", "history", "orders")
    assert [(h["version"], h["action"], h["who"], h["why"]) for h in json.loads(r.stdout)] == [
        (1, "add", "ana", "new feed"),
        (2, "update", "bo", "v2"),
        (3, "pause", "ana", "upgrade"),
    ]
    r = run("feeds", "history")
    assert r.returncode == 0 and "upgrade" in r.stdout


@pytest.mark.parametrize(
    "feed, problem",
    [
        ({**ORDERS, "name": "again"}, "cannot choose between them"),
        ({**ORDERS, "target": {**ORDERS["target"], "table": "bad table"}}, "Redshift identifier"),
        ({**ORDERS, "target": {"kind": "postgres", "table": "t"}}, "dsn"),
        ({**ORDERS, "prefix": "x" * 1100}, "S3 keys are at most 1024"),
        ({**ORDERS, "colour": "red"}, "unknown feed field"),
    ],
)
def test_a_feed_that_would_never_load_is_refused_when_added(
    ddb_store: Store, tmp_path: Path, feed: dict[str, Any], problem: str
) -> None:
    FeedsConfig(ddb_store).add(feed_from_json(ORDERS), who="setup", why="t")
    r = cli(ddb_store, "feeds", "add", json.dumps(feed), "--why", "x", "--yes", tmp=tmp_path)
    assert r.returncode == 2, r.stderr
    assert problem in r.stderr and "nothing changed" in r.stderr
    assert r.stderr.count("\n") == 1, "one line"
    assert FeedsConfig(ddb_store).read().version == 1


def test_a_feed_naming_a_field_twice_is_refused(ddb_store: Store, tmp_path: Path) -> None:
    """JSON keeps the last of two keys silently: the first prefix would be lost unseen."""
    twice = json.dumps(ORDERS)[:-1] + ', "prefix": "other/"}'
    r = cli(ddb_store, "feeds", "add", twice, "--why", "x", "--yes", tmp=tmp_path)
    assert r.returncode == 2 and "'prefix' appears twice" in r.stderr, r.stderr
    assert FeedsConfig(ddb_store).read().version == 0


def test_a_removal_waits_for_the_feed_to_drain(ddb_store: Store, tmp_path: Path) -> None:
    config = FeedsConfig(ddb_store)
    feed = feed_from_json(ORDERS)
    config.add(feed, who="setup", why="t")
    config.batcher(feed).add(Arrival("s3://landing/orders/1", 5, 1.0, {"key": "orders/1"}))
    r = cli(ddb_store, "feeds", "remove", "orders", "--why", "retired", "--yes", tmp=tmp_path)
    assert r.returncode == 4 and "is open with 1 files" in r.stderr and "feeds drain" in r.stderr
    r = cli(ddb_store, "feeds", "drain", "orders", "--yes", tmp=tmp_path)
    assert r.returncode == 0 and "orders/0/000000000000" in r.stdout
    r = cli(ddb_store, "feeds", "remove", "orders", "--why", "retired", "--yes", tmp=tmp_path)
    assert r.returncode == 4 and "is sealed" in r.stderr
    assert not config.read().feed("orders").removed


def test_unrouted_arrivals_are_listed(ddb_store: Store, tmp_path: Path) -> None:
    for key in ("misc/a", "misc/b"):
        arrival = Arrival(
            f"s3://landing/{key}#etag=e", 3, 1_700_000_000.0, {"bucket": "landing", "key": key}
        )
        record_unrouted(ddb_store, "feeds", arrival)
        record_unrouted(ddb_store, "feeds", arrival)  # redelivered: one item
    r = cli(ddb_store, "--json", "feeds", "unrouted", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["key"] for row in json.loads(r.stdout)) == ["misc/a", "misc/b"]


def test_a_feeds_batch_is_abandoned_in_the_ledger_of_its_sealed_target(
    ddb_store: Store, tmp_path: Path
) -> None:
    db = tmp_path / "wh.db"
    config = FeedsConfig(ddb_store)
    spec = {**ORDERS, "target": {"kind": "local", "path": str(db)}}
    config.add(feed_from_json(spec), who="setup", why="t")
    batcher = config.batcher(feed_from_json(spec))
    batcher.config_version = 1
    results = [
        batcher.add(Arrival(f"s3://landing/orders/{i}", 5, 1.0, {"key": f"orders/{i}"}))
        for i in range(2)
    ]
    sealed = results[-1].sealed
    assert sealed is not None and sealed.config_version == 1
    batcher.claim_load(sealed.id)  # a loader holds it: the warehouse must hear of it
    # The feed moved to another warehouse since; the batch keeps the one it was sealed for.
    config.update("orders", {"target": {"path": str(tmp_path / "new.db")}}, who="op", why="m")
    r = cli(ddb_store, "abandon", sealed.id, "--why", "poison", "--yes", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT batch_id, status FROM ledger").fetchall()
    assert rows == [(sealed.id, "abandoned")]
    assert not (tmp_path / "new.db").exists()
