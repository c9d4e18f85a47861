"""The sweeper's loads: due batches of many targets loaded at once, each target failing alone.

One scheduled sweeper serves every stream (every feed) of a deployment, and their batches go to
different warehouse tables. :func:`load_due` takes the due loads of one sweep, each tagged with
its **target** (the warehouse table it commits into: what a load locks, and what fails when
credentials or a table are broken), and:

* loads different targets **concurrently**, up to ``max_parallel`` of them at a time, one
  thread each; a target's own batches one after another (on Redshift they would take turns at
  the target's ledger lock anyway, and one connection per target bounds what a sweep opens);
* lets a failing target **stop only itself**: once a load of a target fails (``retry-later``
  or ``failed``: the load raised), that target's other batches are not tried in this sweep
  (``deferred``: they stay due, untouched, for the next one), while the other targets' loads
  go on. Within a target, batches that never failed go before retries, so one poisoned batch
  does not hold up its target's fresh ones, and a target whose fresh batch fails is most likely
  broken as a whole (its credentials, its table). A broken target so costs one failed attempt
  per sweep, and the failed batch backs off by its own lifecycle (``retry_backoff``, doubling,
  up to ``max_attempts``, then ``failed`` for an operator);
* checks the invocation's remaining time before each load (``min_load_time``), as a sweep
  always did: what does not fit is ``skipped_for_time`` and stays due.

Each target's loads run in a copy of the caller's :mod:`contextvars` context, taken when the
sweep starts (one copy per target, as a context runs in one thread at a time): the clock in
force (:func:`stateless_state.clock.using`, a virtual one under a test) and anything else bound
to the context is what every load sees, in whichever thread; what a load sets in its context
stays in its target's copy.

Exactly once does not depend on any of this: every load goes through its batch's fenced claim
and the warehouse ledger, whatever runs beside it. With a single target nothing runs in another
thread (the deterministic simulation runs sweeps in one thread of control). An unexpected error
(a load's claim could not reach DynamoDB, say) stops its own target; the others finish, and the
first such error is then raised, so the invocation fails as a sweep always failed on it.

Costs: none of its own (no request; the loads' own requests are the pipeline's), one thread per
target loaded at once.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from stateless_state import InvalidArgument
from stateless_state.retry import LambdaContext

__all__ = ["DueLoad", "LoadResult", "LoadsReport", "load_due", "remaining"]

LoadResult = Literal[
    "loaded",
    "already-loaded",
    "abandoned",
    "busy",
    "retry-later",
    "failed",
    "superseded",
    "paused",
]
"""What :meth:`patterns.pipeline.S3ToRedshift.load` did with one batch (``paused``: a feed's
load, not claimed because its feed is paused; see :mod:`patterns.feeds`)."""

FAILED_LOADS: frozenset[str] = frozenset({"retry-later", "failed"})
"""The results of a load that raised (recorded on the batch): its target stops for the sweep."""

_log = logging.getLogger("patterns.sweeper")


@dataclass(frozen=True)
class DueLoad:
    """One batch a sweep may load: ``load`` loads it (and says what it did), into ``target``.
    ``retry`` when an earlier load of it failed; ``min_load_time`` the seconds of invocation it
    needs left to be started."""

    batch_id: str
    target: str
    load: Callable[[], LoadResult]
    retry: bool = False
    min_load_time: float = 0.0


@dataclass
class LoadsReport:
    """What :func:`load_due` did: each tried batch's result (in the order given), the batches
    ``deferred`` because their target failed earlier in the sweep, how many were skipped for
    lack of time, and the targets whose loads failed."""

    loads: dict[str, LoadResult] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    skipped_for_time: int = 0
    failing_targets: list[str] = field(default_factory=list)


@dataclass
class _TargetRun:
    loads: dict[str, LoadResult] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)
    skipped_for_time: int = 0
    failed: bool = False
    error: BaseException | None = None


def _run_target(jobs: Sequence[DueLoad], time_left: Callable[[], float]) -> _TargetRun:
    run = _TargetRun()
    for job in jobs:
        if run.failed:
            run.deferred.append(job.batch_id)
        elif time_left() < job.min_load_time:
            run.skipped_for_time += 1
        else:
            try:
                result = job.load()
            except Exception as e:
                _log.warning("load of %s into %s raised", job.batch_id, job.target, exc_info=True)
                run.failed, run.error = True, e
                continue
            run.loads[job.batch_id] = result
            run.failed = result in FAILED_LOADS
    return run


def remaining(context: LambdaContext | None) -> float:
    """The invocation's remaining seconds (unbounded without a Lambda context)."""
    if context is None:
        return float("inf")
    return context.get_remaining_time_in_millis() / 1000.0


def load_due(
    due: Sequence[DueLoad],
    *,
    time_left: Callable[[], float] = lambda: float("inf"),
    max_parallel: int = 8,
) -> LoadsReport:
    """Load ``due`` (oldest first within each target), different targets at once, as the module
    docstring says. ``time_left`` is the invocation's remaining seconds. Raises the first
    unexpected error of a load once every target is done."""
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise InvalidArgument(f"max_parallel must be a positive int, got {max_parallel!r}")
    by_target: dict[str, list[DueLoad]] = {}
    for job in due:
        by_target.setdefault(job.target, []).append(job)
    # Fresh batches before retries (stable: oldest first within each kind).
    groups = [sorted(jobs, key=lambda j: j.retry) for jobs in by_target.values()]
    if len(groups) <= 1 or max_parallel == 1:
        runs = [_run_target(jobs, time_left) for jobs in groups]
    else:
        from concurrent.futures import ThreadPoolExecutor

        # Copied here, in the caller's thread: a pool's thread starts with an empty context,
        # where clock.current() would be the system clock whatever the caller is using.
        contexts = [contextvars.copy_context() for _ in groups]
        with ThreadPoolExecutor(min(max_parallel, len(groups)), "sweep-load") as pool:
            runs = list(
                pool.map(
                    lambda context, jobs: context.run(_run_target, jobs, time_left),
                    contexts,
                    groups,
                )
            )
    report = LoadsReport()
    results: dict[str, LoadResult] = {}
    for target, run in zip(by_target, runs, strict=True):
        results.update(run.loads)
        report.deferred += run.deferred
        report.skipped_for_time += run.skipped_for_time
        if run.failed:
            report.failing_targets.append(target)
    report.loads = {j.batch_id: results[j.batch_id] for j in due if j.batch_id in results}
    errors = [run.error for run in runs if run.error is not None]
    if errors:
        raise errors[0]
    return report
