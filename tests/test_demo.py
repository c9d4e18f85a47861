"""The README's first command, run as a newcomer would (small sizes), with and without chaos."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.race


@pytest.mark.parametrize("chaos", [False, True])
def test_demo_runs_to_a_successful_report(chaos: bool) -> None:
    args = ["--objects", "80", "--workers", "3", "--count", "12", "--age", "1", "--no-progress"]
    args += ["--rewrites", "0.1"]  # 8 objects get a second version mid-run
    if chaos:
        # Crash points kill per step, the parent per half second: at 0.3 the deaths stay past
        # the floor below however fast the run is (at 0.15 a run of 11 s saw 16).
        args += ["--chaos", "--kill-every", "0.5", "--crash-points", "0.3"]
    proc = subprocess.run(
        [sys.executable, "-m", "examples.s3_redshift_batcher.demo", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "OK: every row of every object version loaded exactly once" in out
    rows = re.search(r"rows expected / loaded\s+(\d+) / (\d+)", out)
    assert rows and rows.group(1) == rows.group(2)
    assert re.search(r"distinct arrivals batched\s+88\b", out), "80 objects, 8 rewritten"
    assert "88 (8 objects rewritten mid-run)" in out
    assert 'COPY "stage_' in out and "MANIFEST" in out, "the Redshift SQL is shown"
    if chaos:
        # The crash-torture run: at least 20 workers die, at random moments (killed by the
        # parent) and at the pipeline's crash points (they kill themselves), and still every row
        # is loaded exactly once.
        parent = re.search(r"chaos\s+(\d+) workers killed by the parent", out)
        themselves = re.search(r"crash points\s+(\d+) workers killed themselves", out)
        assert parent and themselves, out
        assert int(parent.group(1)) + int(themselves.group(1)) >= 20, out


def test_demo_into_postgres() -> None:
    """``make demo ARGS="--warehouse postgres"``: the same pipeline into a PostgreSQL server the
    demo starts, checked the same way."""
    args = ["--objects", "40", "--workers", "2", "--count", "12", "--age", "1", "--no-progress"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.s3_redshift_batcher.demo",
            *args,
            "--warehouse",
            "postgres",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: every row of every object version loaded exactly once" in proc.stdout
    rows = re.search(r"rows expected / loaded\s+(\d+) / (\d+)", proc.stdout)
    assert rows and rows.group(1) == rows.group(2) and int(rows.group(1)) > 0
