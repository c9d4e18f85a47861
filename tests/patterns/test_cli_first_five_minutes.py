"""The CLI as a new user meets it: every lane listed, a missing counter reported as missing,
``--json`` and ``--version`` wherever they are typed, instants as ISO 8601 with how far they
are (never raw epochs, in errors too), help for every argument, and a missing table that says
how to create it. The console script runs against DynamoDB Local; the parser is walked in
process."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import stateless_state
from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.cli import parser
from stateless_state import Store
from tests.support.cli import cli

pytestmark = pytest.mark.race

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z"
# Epoch seconds of this century as a number: what the CLI must never print.
RAW_EPOCH = re.compile(r"(?<![\d.:-])1[5-9][0-9]{8}(\.[0-9]+)?(?![\d])")


def three_lanes(store: Store) -> set[str]:
    """A 3-lane stream with batches in every lane; the ids of all its batches."""
    b = Batcher(store, "multi", Thresholds(count=2, bytes=None, age=None), lanes=3)
    i = 0
    while {b.lane_of(f"s3://b/k{j}") for j in range(i)} != {0, 1, 2}:
        i += 1
    b.add_many([Arrival(f"s3://b/k{j}", 1, time.time(), {}) for j in range(i)])
    return {x.id for x in b.batches()}


def test_batches_list_shows_every_lane_unless_told(ddb_store: Store, tmp_path: Path) -> None:
    ids = three_lanes(ddb_store)
    assert {i.split("/")[1] for i in ids} == {"0", "1", "2"}
    r = cli(ddb_store, "--json", "batches", "list", "multi", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {row["id"] for row in json.loads(r.stdout)} == ids
    r = cli(ddb_store, "batches", "list", "multi", "--lane", "2", "--json", tmp=tmp_path)
    assert {row["id"] for row in json.loads(r.stdout)} == {i for i in ids if "/2/" in i}
    r = cli(ddb_store, "batches", "list", "multi", "--lanes", "2", "--json", tmp=tmp_path)
    assert {row["id"] for row in json.loads(r.stdout)} == {i for i in ids if "/2/" not in i}
    r = cli(ddb_store, "batches", "list", "multi", "--lane", "256", tmp=tmp_path)
    assert r.returncode == 2 and "lanes count from 0 to 255" in r.stderr


def test_a_missing_counter_exits_like_a_missing_lease(ddb_store: Store, tmp_path: Path) -> None:
    results = {
        "lease": cli(ddb_store, "lease", "show", "nobody", tmp=tmp_path),
        "counter": cli(ddb_store, "counter", "get", "nobody", tmp=tmp_path),
    }
    for kind, r in results.items():
        assert r.returncode == 3, (kind, r.stderr)
        assert r.stderr.strip() == f"stateless-state: no {kind} nobody"
    ddb_store.counter("reset-to-zero").reset()
    r = cli(ddb_store, "--json", "counter", "get", "reset-to-zero", tmp=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["value"] == 0, "zero is not missing"


def test_json_version_and_table_work_before_or_after_the_command(
    ddb_store: Store, tmp_path: Path
) -> None:
    ddb_store.counter("files").add(7)
    expected = {"name": "files", "value": 7}
    spellings = [
        ("--json", "counter", "get", "files"),
        ("counter", "--json", "get", "files"),
        ("counter", "get", "files", "--json"),
        ("counter", "get", "--json", "files", "--table", ddb_store.table_name),
    ]
    for argv in spellings:
        # --table where given wins over the environment's table.
        env = {"STATELESS_STATE_TABLE": "not-this-one"} if "--table" in argv else None
        r = cli(ddb_store, *argv, env=env, tmp=tmp_path)
        assert r.returncode == 0, (argv, r.stderr)
        assert json.loads(r.stdout) == expected, argv
    version = f"stateless-state {stateless_state.__version__}"
    for argv in (("--version",), ("batches", "--version"), ("batches", "list", "x", "--version")):
        r = cli(None, *argv, tmp=tmp_path)
        assert (r.returncode, r.stdout.strip()) == (0, version), argv


def test_instants_are_iso_8601_with_how_far_never_epochs(ddb_store: Store, tmp_path: Path) -> None:
    ddb_store.lease("nightly", duration=600, owner="worker-7").acquire()
    r = cli(ddb_store, "lease", "show", "nightly", tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(ISO + r" \(in 10 min\)", r.stdout), r.stdout
    assert not RAW_EPOCH.search(r.stdout), r.stdout
    r = cli(ddb_store, "--json", "lease", "show", "nightly", tmp=tmp_path)
    assert re.fullmatch(ISO, json.loads(r.stdout)["expires_at"]), r.stdout
    short = ddb_store.lease("short", duration=1, owner="w")
    short.acquire()
    time.sleep(1.1)
    r = cli(ddb_store, "lease", "break", "short", "--yes", "--why", "x", tmp=tmp_path)
    assert r.returncode == 4, r.stderr
    assert re.search(r"expired " + ISO + r" \((now|\d+ s ago)\)", r.stderr), "errors too"
    assert not RAW_EPOCH.search(r.stderr), r.stderr
    ids = three_lanes(ddb_store)
    r = cli(ddb_store, "batches", "list", "multi", tmp=tmp_path)
    assert r.returncode == 0 and "(3 lanes)" in r.stdout, r.stdout
    # opened just now: "now" under a second, "N s ago" after (a slow machine)
    assert len(re.findall(ISO + r" \((now|\d+ s ago)\)", r.stdout)) == len(ids), r.stdout
    assert not RAW_EPOCH.search(r.stdout), r.stdout
    one = sorted(ids)[0]
    r = cli(ddb_store, "batches", "show", one, tmp=tmp_path)
    assert re.search(ISO, r.stdout) and not RAW_EPOCH.search(r.stdout), r.stdout
    r = cli(ddb_store, "--json", "batches", "show", one, tmp=tmp_path)
    assert not RAW_EPOCH.search(r.stdout), r.stdout
    shown = json.loads(r.stdout)
    assert re.fullmatch(ISO, shown["opened_at"]) and re.fullmatch(ISO, shown["sealed_at"])
    assert all(re.fullmatch(ISO, m["at"]) for m in shown["members"]), shown["members"]


def test_a_missing_table_suggests_stateless_state_init(ddb_store: Store, tmp_path: Path) -> None:
    r = cli(ddb_store, "counter", "get", "x", "--table", "no-such-table", tmp=tmp_path)
    assert r.returncode == 5
    [line] = r.stderr.strip().splitlines()
    assert "`stateless-state init --table no-such-table`" in line, line


def helps(p: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, str | None]]:
    """(where, its help) of every argument and subcommand of the parser tree, but ``--help``."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                yield f"{path} {name}", texts.get(name)
                yield from helps(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action.help


def test_every_argument_and_command_has_help() -> None:
    found = list(helps(parser()))
    assert len(found) > 60, "the walk reaches the subcommands' arguments"
    assert [where for where, text in found if not (text or "").strip()] == []


def test_every_command_takes_the_common_options() -> None:
    def commands(p: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, set[str]]]:
        options = {o for a in p._actions for o in a.option_strings}
        yield path, options
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from commands(child, f"{path} {name}")

    common = {"--json", "--version", "--table", "--endpoint-url", "--region"}
    lacking = {path: common - options for path, options in commands(parser(), "stateless-state")}
    assert {path: gap for path, gap in lacking.items() if gap} == {}
