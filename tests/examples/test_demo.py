"""The README's first command, run as a newcomer would (small sizes), with and without chaos;
``--one-stream`` and the PostgreSQL warehouse."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.race


OK = "OK: every object version loaded exactly once or reported superseded"


def _demo(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "examples.s3_redshift_batcher.demo", *args, "--no-progress"],
        capture_output=True,
        text=True,
        # a hang guard: the chaos run took 112 s alone on a slow 2-core machine, 199 s beside
        # the suite's other worker
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert OK in proc.stdout
    return proc.stdout


def _figure(pattern: str, out: str) -> list[int]:
    found = re.search(pattern, out)
    assert found, f"{pattern!r} not in the report:\n{out}"
    return [int(g) for g in found.groups()]


FEED = (
    r"{name}\s+s3://demo-bucket/demo-input/{name}/ -> table (\S+) .*?: (\d+) versions in (\d+) "
    r"batches .*?; rows (\d+)/(\d+), (\d+) versions loaded once, (\d+) superseded"
)


def _feeds(out: str) -> dict[str, list[int]]:
    """Each feed's report: versions, batches, rows expected and loaded, loaded, superseded."""
    found = {}
    for name in ("orders", "events", "catalog"):
        match = re.search(FEED.format(name=name), out)
        assert match, f"feed {name} not in the report:\n{out}"
        assert match.group(1).endswith(name), "each feed loads into its own table"
        found[name] = [int(g) for g in match.groups()[1:]]
    return found


@pytest.mark.parametrize("chaos", [False, True])
def test_demo_runs_to_a_successful_report(chaos: bool) -> None:
    """The README's command: three feeds in one deployment (CSV, JSON lines, and keys
    rewritten in rounds), each into its own table, and objects no feed takes; with chaos, the
    crash-torture run in small, with rewrites, deletions and hostile keys near S3's 1,024-byte
    limit together, as ``make torture``."""
    args = ["--objects", "80", "--workers", "3", "--count", "12", "--age", "1"]
    args += ["--rewrites", "0.1"]
    if chaos:
        # Crash points kill per step, the parent per half second: at 0.3 the deaths stay past
        # the floor below however fast the run is (at 0.15 a run of 11 s saw 16).
        args += ["--chaos", "--kill-every", "0.5", "--crash-points", "0.3"]
        args += ["--deletions", "0.2", "--long-keys", "0.2"]
    out = _demo(*args)
    assert "[3 feeds, one deployment]" in out
    rows = _figure(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows[0] == rows[1] > 0
    assert 'COPY "stage_' in out and "MANIFEST FORMAT AS CSV GZIP IGNOREHEADER 1" in out
    assert "MANIFEST FORMAT AS JSON 'auto'" in out, "each feed's COPY as its target words it"
    assert "header; stored: csv, gzip)" in out and "JSON lines; stored: json)" in out
    (written,) = _figure(r"object versions written\s+(\d+)", out)
    unrouted, recorded = _figure(r"unrouted (\d+) object versions .*?: (\d+) recorded", out)
    assert unrouted == recorded >= 1, "every object at no feed's location is recorded"
    assert _figure(r"distinct arrivals batched\s+(\d+)", out) == [written - unrouted]
    loaded, superseded = _figure(
        r"object versions\s+(\d+) loaded exactly once .*?, (\d+) reported superseded", out
    )
    assert loaded + superseded == written - unrouted
    feeds = _feeds(out)
    for versions, _, expected, got, once, gone in feeds.values():
        assert expected == got > 0 and once + gone == versions
    assert sum(f[0] for f in feeds.values()) == written - unrouted
    assert sum(f[2] for f in feeds.values()) == rows[0]
    if not chaos:
        # 80 objects: 2 unrouted, 26 per feed; 7 rewritten halfway; the 26 of the catalog
        # rewritten in each of four rounds.
        assert (unrouted, written) == (2, 80 + 7 + 4 * 26)
        assert feeds["catalog"][0] >= 5 * 26
        assert superseded == 0, "nothing deleted: every version still exists"
        return
    # 15 objects with keys of 1,000-1,024 bytes (5 per feed); 16 deleted after their arrival,
    # by marker (the version stays and must load) and by deleting the version (loaded if its
    # batch read it first, else superseded); the re-created ones are versions of their own.
    long_keys, longest = _figure(r"long keys\s+(\d+) objects with keys of 1,000 to (\d+)", out)
    assert long_keys == 15 and 1000 <= longest <= 1024
    deleted, marked, purged = _figure(
        r"deletions after arrival\s+(\d+): (\d+) by a delete marker.*?, (\d+) of the version",
        out,
    )
    assert deleted == 16 and marked > 0 and purged > 0
    assert superseded <= purged
    # The crash-torture run: at least 20 workers die, at random moments (killed by the
    # parent) and at the pipeline's crash points (they kill themselves), and still every
    # version is loaded exactly once or reported superseded.
    (parent,) = _figure(r"chaos\s+(\d+) workers killed by the parent", out)
    (themselves,) = _figure(r"crash points\s+(\d+) workers killed themselves", out)
    assert parent + themselves >= 20, out


def test_demo_of_one_stream() -> None:
    """``--one-stream``: the first template's deployment, every format in one table."""
    args = ["--objects", "80", "--workers", "3", "--count", "12", "--age", "1"]
    out = _demo(*args, "--rewrites", "0.1", "--one-stream")
    assert "[one stream]" in out and "per feed" not in out.lower()
    rows = _figure(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows[0] == rows[1] > 0
    (written,) = _figure(r"object versions written\s+(\d+)", out)
    assert written == 88, "80 objects, 8 rewritten"
    assert _figure(r"distinct arrivals batched\s+(\d+)", out) == [written]
    assert 'COPY "stage_' in out and "LOCK" in out, "the whole load's SQL is shown"


def test_demo_into_postgres() -> None:
    """``make demo ARGS="--warehouse postgres"``: the same feeds into their tables of a
    PostgreSQL server the demo starts (a ledger per table), checked the same way."""
    args = ["--objects", "40", "--workers", "2", "--count", "12", "--age", "1"]
    out = _demo(*args, "--warehouse", "postgres")
    rows = _figure(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows[0] == rows[1] > 0
    feeds = _feeds(out)
    assert all(f[2] == f[3] > 0 for f in feeds.values())
    assert "table demo.orders" in out
    assert "header; stored: csv, gzip)" in out, "a PostgreSQL target keeps its format too"
