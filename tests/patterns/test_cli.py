"""The operator CLI, run as the real console script against DynamoDB Local."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from patterns.batcher import Arrival, Batcher, BatchState, Thresholds
from stateless_state import Store
from tests.support.cli import cli

pytestmark = pytest.mark.race


def batches_in_every_state(store: Store) -> dict[str, str]:
    b = Batcher(store, "ops", Thresholds(count=2, bytes=None, age=None), max_attempts=1)
    ids: dict[str, str] = {}

    def seal(tag: str) -> str:
        b.add(Arrival(f"s3://b/{tag}-1", 5, time.time(), {"bucket": "b", "key": f"{tag}-1"}))
        sealed = b.add(
            Arrival(f"s3://b/{tag}-2", 7, time.time(), {"bucket": "b", "key": f"{tag}-2"})
        ).sealed
        assert sealed is not None
        return sealed.id

    ids[BatchState.LOADED] = seal("loaded")
    b.claim_load(ids[BatchState.LOADED]).loaded()
    ids[BatchState.FAILED] = seal("failed")
    b.claim_load(ids[BatchState.FAILED]).failed("COPY failed: bad JSON in s3://b/failed-2")
    ids[BatchState.LOADING] = seal("loading")
    b.claim_load(ids[BatchState.LOADING])
    ids[BatchState.SEALED] = seal("sealed")
    b.add(Arrival("s3://b/open-1", 1, time.time(), {"bucket": "b", "key": "open-1"}))
    ids[BatchState.OPEN] = "ops/0/000000000004"
    return ids


def test_list_and_show(ddb_store: Store, tmp_path: Path) -> None:
    ids = batches_in_every_state(ddb_store)
    r = cli(ddb_store, "--json", "batches", "list", "ops", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = {row["id"]: row["state"] for row in json.loads(r.stdout)}
    assert listed == {v: k for k, v in ids.items()}
    r = cli(ddb_store, "--json", "batches", "list", "ops", "--state", "failed", tmp=tmp_path)
    assert [row["id"] for row in json.loads(r.stdout)] == [ids[BatchState.FAILED]]
    r = cli(ddb_store, "--json", "batches", "show", ids[BatchState.FAILED], tmp=tmp_path)
    shown = json.loads(r.stdout)
    assert shown["error"].startswith("COPY failed")
    assert sorted(m["id"] for m in shown["members"]) == ["s3://b/failed-1", "s3://b/failed-2"]
    r = cli(ddb_store, "batches", "list", "ops", tmp=tmp_path)
    assert r.returncode == 0 and "ops/0/000000000001" in r.stdout, "a readable table"
    r = cli(ddb_store, "--json", "cost", tmp=tmp_path)
    assert json.loads(r.stdout)["by_operation"]["Query"]["requests"] >= 1


@pytest.mark.parametrize(
    ("action", "state", "after"),
    [
        ("retry", BatchState.FAILED, BatchState.SEALED),
        ("retry", BatchState.LOADING, BatchState.SEALED),
        ("retry", BatchState.SEALED, BatchState.SEALED),
        ("retry", BatchState.LOADED, None),
        ("retry", BatchState.OPEN, None),
        ("abandon", BatchState.FAILED, BatchState.ABANDONED),
        ("abandon", BatchState.SEALED, BatchState.ABANDONED),
        ("abandon", BatchState.LOADING, BatchState.ABANDONED),
        ("abandon", BatchState.OPEN, BatchState.ABANDONED),
        ("abandon", BatchState.LOADED, None),
    ],
)
def test_retry_and_abandon_in_each_state(
    ddb_store: Store, tmp_path: Path, action: str, state: str, after: str | None
) -> None:
    ids = batches_in_every_state(ddb_store)
    r = cli(
        ddb_store,
        "--json",
        action,
        ids[state],
        "--yes",
        "--why",
        "runbook step",
        "--who",
        "oncall",
        # An abandon of a batch a loader held is recorded in the warehouse ledger too.
        env={"LOCAL_WAREHOUSE": str(tmp_path / "wh.db")},
        tmp=tmp_path,
    )
    batch = Batcher(ddb_store, "ops").batch(ids[state])
    assert batch is not None
    if after is None:
        assert r.returncode == 4, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "nothing changed" in r.stderr
        assert batch.state == state
        return
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["state"] == after
    assert batch.state == after
    entry = dict(batch.history[-1])
    assert (entry["action"], entry["who"], entry["why"], entry["from"]) == (
        action,
        "oncall",
        "runbook step",
        state,
    )


def test_abandon_of_a_claimed_batch_needs_the_warehouse(ddb_store: Store, tmp_path: Path) -> None:
    ids = batches_in_every_state(ddb_store)
    env = {"LOCAL_WAREHOUSE": "", "REDSHIFT_TABLE": ""}
    for state in (BatchState.LOADING, BatchState.FAILED):
        r = cli(ddb_store, "abandon", ids[state], "--yes", "--why", "x", env=env, tmp=tmp_path)
        assert r.returncode == 4, r.stderr
        assert "warehouse ledger" in r.stderr and "nothing changed" in r.stderr
        batch = Batcher(ddb_store, "ops").batch(ids[state])
        assert batch is not None and batch.state == state
    # Never claimed: DynamoDB alone stops it for good.
    sealed = ids[BatchState.SEALED]
    r = cli(ddb_store, "abandon", sealed, "--yes", "--why", "x", env=env, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli(ddb_store, "retry", sealed, "--yes", "--why", "x", tmp=tmp_path)
    assert r.returncode == 4 and "abandoned" in r.stderr, "abandon is final"


def test_changes_need_confirmation(ddb_store: Store, tmp_path: Path) -> None:
    ids = batches_in_every_state(ddb_store)
    r = cli(ddb_store, "retry", ids[BatchState.FAILED], "--why", "x", tmp=tmp_path)
    assert r.returncode == 7 and "--yes" in r.stderr
    failed = Batcher(ddb_store, "ops").batch(ids[BatchState.FAILED])
    assert failed is not None and failed.state == BatchState.FAILED


def test_lease_show_and_break(ddb_store: Store, tmp_path: Path) -> None:
    held = ddb_store.lease("nightly", duration=600, owner="worker-7").acquire()
    r = cli(ddb_store, "--json", "lease", "show", "nightly", tmp=tmp_path)
    shown = json.loads(r.stdout)
    assert (shown["owner"], shown["fence"], shown["held"]) == ("worker-7", 1, True)
    r = cli(ddb_store, "lease", "break", "nightly", "--yes", "--why", "stuck", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not ddb_store.lease("nightly", duration=1).state().held
    assert held.release() is True, "nobody took it since: the stale holder's release is a no-op"
    again = ddb_store.lease("nightly", duration=1).acquire()
    assert again.fence == 2
    r = cli(ddb_store, "lease", "break", "nobody", "--yes", "--why", "x", tmp=tmp_path)
    assert r.returncode == 4


def test_counter_versions_and_sessions(ddb_store: Store, tmp_path: Path) -> None:
    ddb_store.counter("files").add(41)
    v = ddb_store.versioned("config")
    v.put({"a": 1}, expected=None)
    v.put({"a": 2}, expected=1)
    r = cli(ddb_store, "--json", "counter", "get", "files", tmp=tmp_path)
    assert json.loads(r.stdout) == {"name": "files", "value": 41}
    r = cli(ddb_store, "--json", "versions", "show", "config", tmp=tmp_path)
    assert [x["value"] for x in json.loads(r.stdout)] == [{"a": 1}, {"a": 2}]
    clicks = ddb_store.sessions("clicks", gap=10, max_duration=100)
    clicks.add("u1", 100.0, value=2)
    clicks.add("u1", 105.0, value=3)
    clicks.close_due(now=1000.0)
    r = cli(ddb_store, "--json", "sessions", "show", "clicks", "u1", tmp=tmp_path)
    [session] = json.loads(r.stdout)
    assert (session["count"], session["sum"], session["closed"]) == (2, 5.0, True)
    r = cli(ddb_store, "sessions", "show", "clicks", "nobody", tmp=tmp_path)
    assert r.returncode == 3


def test_bad_input_is_one_line_and_an_exit_code(ddb_store: Store, tmp_path: Path) -> None:
    cases = [
        (cli(ddb_store, "batches", "show", "ops/0/000000000099", tmp=tmp_path), 3, "no batch"),
        (cli(ddb_store, "batches", "show", "garbage", tmp=tmp_path), 2, "not a batch id"),
        (
            cli(ddb_store, "--table", "no-such-table", "counter", "get", "x", tmp=tmp_path),
            5,
            "does not exist",
        ),
        (
            cli(
                None,
                "--table",
                "t-t-t",
                "counter",
                "get",
                "x",
                tmp=tmp_path,
                env={
                    "AWS_REGION": "us-east-1",
                    "AWS_CONFIG_FILE": "/nonexistent",
                    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                    "AWS_EC2_METADATA_DISABLED": "true",
                },
            ),
            6,
            "no AWS credentials",
        ),
        (
            cli(None, "counter", "get", "x", tmp=tmp_path, env={"STATELESS_STATE_TABLE": ""}),
            2,
            "no table",
        ),
    ]
    for result, code, text in cases:
        assert result.returncode == code, (result.returncode, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], result.stderr
        assert "Traceback" not in result.stderr


def test_init_prints_cloudformation(tmp_path: Path) -> None:
    r = cli(None, "--table", "my-table", "init", "--print-cloudformation", tmp=tmp_path)
    table = json.loads(r.stdout)["Resources"]["StateTable"]["Properties"]
    assert table["TableName"] == "my-table" and table["BillingMode"] == "PAY_PER_REQUEST"
