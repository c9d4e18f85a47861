"""The benchmark's smoke run, so `make bench` cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.race


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = (tmp_path / "RESULTS.md").read_text()
    assert "## 1. Cost per arrival against batch size" in results
    assert "| 100 | 1.010 | 6.00 | 0.00 |" in results, "ours: one request and 6 WCU per arrival"
    assert (tmp_path / "wcu_per_arrival.png").stat().st_size > 10_000
