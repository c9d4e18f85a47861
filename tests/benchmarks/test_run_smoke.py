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
    assert "## 1. Cost per arrival against batch size and records per event" in results
    # ours at 1, 10 and 100 records per event: requests and WCU per arrival
    assert "| 10 | 1.000 | 6.00 | 0.100 | 2.40 | 0.100 | 2.40 |" in results, results
    assert "| 100 | 1.000 | 6.00 | 0.100 | 2.40 | 0.020 | 2.18 |" in results, results
    assert "| `a handler: S3ToRedshift and RedshiftDataApiLoader` |" in results
    assert (tmp_path / "wcu_per_arrival.png").stat().st_size > 10_000
    assert "## 6. Idempotency against Powertools" in results
    assert "| first call + a model save |" in results and "**A zombie that fails**" in results
    assert "## 8. The deterministic simulation: schedules and steps per second" in results
    assert "| counter.tokens | `Exhaustive(preemptions=1" in results, results
    assert "## 9. Feeds: loads of different targets overlap" in results
    assert "| 0.1 s | one ledger lock |" in results, results
    assert "## 10. The deployed artifact: sizes" in results
    assert "| the layer (`make layer`) |" in results
