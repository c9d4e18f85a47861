"""§8 of ``make bench``: how fast the deterministic simulation explores schedules.

Each scenario of ``tests/support/simulations.py`` named in :data:`SCENARIOS` is explored under its
CI bounds twice, with the memo of answers (the default) and without it, a seeded one (a random
walk or PCT) a third time on two forked workers, and the run reports
schedules and steps per second and the share of the wall time spent inside moto (the in-process
AWS), measured by timing each request moto answers. The rest is the library's own code,
botocore's serialization and parsing, and the simulation's scheduling.

Alone: ``.venv/bin/python -m benchmarks.simulation``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stateless_state.testing.simulation import PCT, Exploration, RandomWalk
from stateless_state.testing.simulation import backend as sim_backend

SCENARIOS = ("batcher.lifecycle", "batcher.pipeline", "idempotency.zombie", "counter.tokens")
"""Measured in this order; a name not registered is left out of the table (and said so)."""

WORKERS = 2
"""The processes a seeded scenario is also explored on: this machine's cores."""


@dataclass(frozen=True)
class Throughput:
    """One exploration (its schedules, steps, seconds and rates), its bounds, and the seconds
    of it spent inside moto (``None`` when the forks spent them, out of this process's sight)."""

    bounds: str
    report: Exploration
    in_moto: float | None


@contextmanager
def _timing_moto() -> Iterator[list[float]]:
    """Accumulate the seconds ``Backend._send`` (moto answering one request) takes."""
    spent = [0.0]
    original = sim_backend.Backend._send

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    sim_backend.Backend._send = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        sim_backend.Backend._send = original  # type: ignore[method-assign]


def run(names: tuple[str, ...] = SCENARIOS) -> dict[str, dict[str, Throughput]]:
    """Each registered scenario among ``names``, with and without the memo, and a seeded one
    on :data:`WORKERS` processes (moto's share is then unmeasured: it is spent in the forks)."""
    from tests.support.simulations import specs

    registry = specs()
    results: dict[str, dict[str, Throughput]] = {}
    for name in names:
        spec = registry.get(name)
        if spec is None:
            continue
        results[name] = {}
        for label, memoize in (("memo", True), ("no memo", False)):
            with _timing_moto() as spent:
                report = spec.explore(ci=True, memoize=memoize)
            results[name][label] = Throughput(repr(spec.ci()), report.check(), spent[0])
            print(f"simulation {name}, {label}: {report}", flush=True)
        if isinstance(spec.ci(), RandomWalk | PCT):
            report = spec.explore(ci=True, workers=WORKERS)
            label = f"memo, {WORKERS} workers"
            results[name][label] = Throughput(repr(spec.ci()), report.check(), None)
            print(f"simulation {name}, {label}: {report}", flush=True)
    return results


def markdown(results: dict[str, dict[str, Throughput]]) -> list[str]:
    missing = [n for n in SCENARIOS if n not in results]
    lines = [
        "## 8. The deterministic simulation: schedules and steps per second",
        "",
        "Each scenario under its CI bounds (`tests/support/simulations.py`; `make simulate` runs "
        "the full ones), with the memo of answers (a request sent from a state an earlier "
        "schedule reached is answered from memory) and without it; a random walk or PCT also on "
        f"{WORKERS} forked workers (`explore(..., workers={WORKERS})`), the same schedules. "
        "A step is one choice of the "
        "scheduler: an AWS request, a sleep, an invocation's end. *In moto* is the share of the "
        "wall time moto spent answering; the rest is the library's code, botocore building and "
        "parsing requests, and the scheduler. The goal is 100 schedules per second for the "
        "batcher scenario on this machine.",
        "",
        "| scenario | bounds | memo | schedules | whole space | steps | seconds "
        "| schedules/s | steps/s | in moto |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for label, t in runs.items():
            r = t.report
            share = "n/a" if t.in_moto is None else f"{t.in_moto / (r.elapsed or 1):.0%}"
            lines.append(
                f"| {name} | `{t.bounds}` | {label} | {r.schedules:,} "
                f"| {'yes' if r.finished else 'no'} | {r.steps:,} | {r.elapsed:.1f} "
                f"| {r.schedules_per_second:,.1f} | {r.steps_per_second:,.0f} | {share} |"
            )
    if missing:
        lines += ["", f"Not registered in this run: {', '.join(missing)}."]
    return [*lines, ""]


if __name__ == "__main__":
    print("\n".join(markdown(run())))
