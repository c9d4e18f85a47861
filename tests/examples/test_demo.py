"""The README's first command, run as a newcomer would (small sizes), with and without chaos."""

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
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert OK in proc.stdout
    return proc.stdout


def _figure(pattern: str, out: str) -> list[int]:
    found = re.search(pattern, out)
    assert found, f"{pattern!r} not in the report:\n{out}"
    return [int(g) for g in found.groups()]


@pytest.mark.parametrize("chaos", [False, True])
def test_demo_runs_to_a_successful_report(chaos: bool) -> None:
    """The README's command; with chaos, the crash-torture run in small, with rewrites,
    deletions and hostile keys near S3's 1,024-byte limit together, as ``make torture``."""
    args = ["--objects", "80", "--workers", "3", "--count", "12", "--age", "1"]
    args += ["--rewrites", "0.1"]  # 8 objects get a second version mid-run
    if chaos:
        # Crash points kill per step, the parent per half second: at 0.3 the deaths stay past
        # the floor below however fast the run is (at 0.15 a run of 11 s saw 16).
        args += ["--chaos", "--kill-every", "0.5", "--crash-points", "0.3"]
        args += ["--deletions", "0.2", "--long-keys", "0.2"]
    out = _demo(*args)
    rows = _figure(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows[0] == rows[1] > 0
    assert 'COPY "stage_' in out and "MANIFEST" in out, "the Redshift SQL is shown"
    (written,) = _figure(r"object versions written\s+(\d+)", out)
    assert _figure(r"distinct arrivals batched\s+(\d+)", out) == [written]
    loaded, superseded = _figure(
        r"object versions\s+(\d+) loaded exactly once .*?, (\d+) reported superseded", out
    )
    assert loaded + superseded == written
    if not chaos:
        assert written == 88, "80 objects, 8 rewritten"
        assert superseded == 0, "nothing deleted: every version still exists"
        return
    # 16 objects with keys of 1,000-1,024 bytes; 16 deleted after their arrival, by marker
    # (the version stays and must load) and by deleting the version (loaded if its batch read
    # it first, else superseded); the re-created ones are versions of their own.
    long_keys, longest = _figure(r"long keys\s+(\d+) objects with keys of 1,000 to (\d+)", out)
    assert long_keys == 16 and 1000 <= longest <= 1024
    deleted, marked, purged = _figure(
        r"deletions after arrival\s+(\d+): (\d+) by a delete marker.*?, (\d+) of the version",
        out,
    )
    assert deleted == 16 and marked > 0 and purged > 0
    assert superseded <= purged
    (recreated,) = _figure(r"(\d+) by re-creating deleted objects", out)
    assert written == 88 + recreated
    # The crash-torture run: at least 20 workers die, at random moments (killed by the
    # parent) and at the pipeline's crash points (they kill themselves), and still every
    # version is loaded exactly once or reported superseded.
    (parent,) = _figure(r"chaos\s+(\d+) workers killed by the parent", out)
    (themselves,) = _figure(r"crash points\s+(\d+) workers killed themselves", out)
    assert parent + themselves >= 20, out


def test_demo_into_postgres() -> None:
    """``make demo ARGS="--warehouse postgres"``: the same pipeline into a PostgreSQL server the
    demo starts, checked the same way."""
    args = ["--objects", "40", "--workers", "2", "--count", "12", "--age", "1"]
    out = _demo(*args, "--warehouse", "postgres")
    rows = _figure(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows[0] == rows[1] > 0
