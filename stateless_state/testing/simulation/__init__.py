"""Deterministic simulation: every interleaving, crash and clock of real handler code, replayable
from one line.

A *scenario* is a function ``scenario(world)`` that sets up AWS state, registers Lambda
invocations (``world.invoke(handler, event)``) and checks (``world.check(fn)``). :func:`explore`
runs it under many schedules. In each, the invocations run real code (the library, the
patterns, your handler) one at a time; control passes between them only at a *step* — an AWS
request through a client from ``world.client(...)``, a sleep, an invocation's return — and a
scheduler picks who goes next and which fault, if any, hits that step (:class:`Faults`: ambiguous
writes, throttles, conflicts, crashes, zombie pauses, Lambda timeouts, redeliveries, TTL
deletion). Time is virtual and per invocation (:mod:`stateless_state.clock`): a 30 s lease expiry
costs nothing, and each invocation may run with its own clock skew. State lives in moto, in
process, reset per schedule: safe, since nothing runs concurrently.

Strategies: :class:`RandomWalk` (seeded), :class:`PCT` (random priorities with ``depth - 1``
change points: for a bug of depth d, n invocations and k steps, each schedule finds it with
probability at least 1/(n*k^(d-1))), :class:`Exhaustive` (every schedule under a preemption
bound, with the fault budget at every step it applies to) and :class:`Hypothesis` (choices drawn
by Hypothesis, so a failure shrinks to a minimal schedule).

Every failure carries one line (``sim1:…``) that :func:`replay` turns back into the same
schedule: the same requests in the same order.

>>> def scenario(world):
...     store = Store("state", client=world.client("dynamodb")); store.create_table()
...     counter = store.counter("hits")
...     for i in range(2):
...         world.invoke(lambda event, context: counter.add(1, token="event-1"))
...     world.check(lambda: assert_equal(counter.value(), 1))
>>> explore(scenario, Exhaustive(preemptions=2), faults=Faults(crash=1, ambiguous=1)).check()
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ... import clock
from ...errors import InvalidArgument
from .backend import Backend
from .parallel import Ran, explore_on
from .schedule import FAULTS, Faults, Option, ReplayLine
from .schedulers import PCT, Drawn, Exhaustive, Pruned, RandomWalk, Replay, Scheduler, shard
from .world import EPOCH, LATENCY, Engine, Outcome, SetupClock, SimulationError, Step, World

__all__ = [
    "EPOCH",
    "FAULTS",
    "LATENCY",
    "PCT",
    "Exhaustive",
    "Exploration",
    "Failure",
    "Faults",
    "Hypothesis",
    "Option",
    "Outcome",
    "RandomWalk",
    "ReplayLine",
    "Run",
    "Scheduler",
    "SimulationError",
    "SimulationFailed",
    "Step",
    "World",
    "explore",
    "replay",
]

Scenario = Callable[[World], Any]


class SimulationFailed(AssertionError):
    """A check failed under some schedule; the message holds the replay line, and ``run`` is
    that schedule (``None`` only when raised without one)."""

    def __init__(self, message: str, run: Run | None = None) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class Run:
    """One schedule, run: its replay line, what each delivery did, the steps taken, and the
    check that failed (``error``; ``None`` when every check held)."""

    line: ReplayLine
    outcomes: list[Outcome]
    trace: list[Step]
    error: BaseException | None

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        """The request trace: (invocation, operation, digest of the request's bytes), in order."""
        return [(s.invocation, s.operation, s.digest) for s in self.trace if s.kind == "request"]


@dataclass
class Failure:
    """A schedule under which a check failed: found after ``schedules`` schedules and
    ``elapsed`` wall seconds."""

    run: Run
    schedules: int
    elapsed: float
    scenario: str
    setup: str = ""

    def __str__(self) -> str:
        tail = "\n".join(f"    {s}" for s in self.run.trace[-25:])
        more = len(self.run.trace) - 25
        return (
            f"{type(self.run.error).__name__}: {self.run.error}\n"
            f"  after {self.schedules} schedules ({self.elapsed:.1f} s); replay it with\n"
            f"    simulation.replay({self.scenario}, {str(self.run.line)!r}{self.setup})\n"
            f"  the schedule's steps{f' (last 25 of {len(self.run.trace)})' if more > 0 else ''}:\n"
            f"{tail}"
        )


@dataclass
class Exploration:
    """What :func:`explore` did: how many schedules and steps, how long it took, whether the
    strategy ran out of schedules (``finished``: for :class:`Exhaustive`, the whole space under
    its bounds was covered), and the failures found. ``pruned`` counts the schedules a reducing
    :class:`Exhaustive` stopped part way as repeats of ones it ran (not in ``schedules``; their
    steps are in ``steps``)."""

    strategy: str
    schedules: int = 0
    pruned: int = 0
    steps: int = 0
    elapsed: float = 0.0
    finished: bool = False
    failures: list[Failure] = field(default_factory=list)

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.elapsed if self.elapsed else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.elapsed if self.elapsed else 0.0

    def check(self) -> Exploration:
        """Raise :class:`SimulationFailed` with the first failure's replay line, if any."""
        if self.failures:
            raise SimulationFailed(str(self.failures[0]), self.failures[0].run)
        return self

    def __str__(self) -> str:
        verdict = f"{len(self.failures)} failing" if self.failures else "every check held"
        done = ", the whole space" if self.finished else ""
        pruned = f" ({self.pruned} more stopped as repeats)" if self.pruned else ""
        return (
            f"{self.strategy}: {self.schedules} schedules{done}{pruned}, {self.steps} steps, "
            f"{self.elapsed:.1f} s ({self.schedules_per_second:.1f} schedules/s); {verdict}"
        )


@dataclass
class Hypothesis:
    """Draw each schedule's choices from Hypothesis, ``max_examples`` schedules, so that a
    failure shrinks to a minimal schedule (fewest steps, preemptions and faults) before it is
    reported. Derandomized: the same examples on every run."""

    max_examples: int = 100
    seed: int = 0
    preemptions: int | None = None


def _name(scenario: Scenario) -> str:
    return getattr(scenario, "__qualname__", repr(scenario))


def _setup(setup: Scenario | None) -> str:
    return "" if setup is None else f", setup={_name(setup)}"


def _run_one(
    scenario: Scenario, scheduler: Scheduler, faults: Faults, backend: Backend, seed: int
) -> tuple[Run | None, int]:
    """One schedule run and checked; ``None`` for one the scheduler stopped as a repeat."""
    backend.reset(seed)
    run = Engine(scheduler, faults, seed, backend)
    backend.bind(run)
    with clock.using(SetupClock(run)):
        scenario(run.world)
    try:
        run.execute()
    except Pruned:
        return None, run.steps
    finally:
        scheduler.end()
    backend.settle()
    error: BaseException | None = None
    with clock.using(SetupClock(run)):
        try:
            for check in run.checks:
                check()
        except (KeyboardInterrupt, SystemExit, SimulationError):
            raise
        except BaseException as e:  # pytest.fail() raises a BaseException: a failed check too
            error = e
    line = ReplayLine(seed, tuple(run.choices), scheduler.preemptions, faults)
    return Run(line, [t.outcome for t in run.tasks], list(run.trace), error), run.steps


_MOST_WORKERS = 64
"""The most processes ``explore`` forks: more than any machine's cores it is meant for."""


def explore(
    scenario: Scenario,
    strategy: Scheduler | Hypothesis | None = None,
    *,
    faults: Faults | None = None,
    setup: Scenario | None = None,
    max_failures: int = 1,
    memoize: bool = True,
    workers: int = 1,
) -> Exploration:
    """Run ``scenario`` under the schedules ``strategy`` chooses (default: 100 seeded random
    walks), injecting up to ``faults`` per schedule; stop after ``max_failures`` failures.

    ``setup(world)``, when given, runs once before the first schedule (creating tables, buckets,
    objects: anything whose state every schedule starts from); each schedule then starts from a
    copy of the state it left, and ``scenario`` only builds objects and registers invocations
    and checks. Without it, ``scenario`` does its own set-up every schedule (slower).

    Deterministic: the same scenario, strategy and faults explore the same schedules. Costs wall
    time only for the code and moto (virtual sleeps are free): a few milliseconds per request.
    With ``setup`` and ``memoize`` (the default), a request sent from a state an earlier
    schedule reached is answered from memory instead of by moto (:mod:`.memo`): exhaustive
    search, whose schedules share long prefixes, asks moto only where a schedule departs.
    :func:`replay` never memoizes, so replaying a failure also checks the memo.

    ``workers`` > 1 runs a :class:`RandomWalk` or :class:`PCT` on that many forked processes
    (Linux and macOS), schedule ``i`` on worker ``i mod workers``, each with its own in-process
    AWS and memo: about ``workers`` times the schedules per second on as many cores. The report
    is a serial run's: the same first ``max_failures`` failures by schedule (a random walk's
    schedules, steps and failures are exactly a serial walk's; a PCT worker learns the length
    of its schedules from its own, so its change points can differ). Each failure is replayed
    here to rebuild its run, and one that does not fail again with the same exception and
    message raises :class:`SimulationError`: the scenario depends on something outside the
    simulation. An exception that escapes a worker's schedule is raised here only if a serial
    run would meet it (no ``max_failures`` failures before it); workers past the last schedule
    wanted are stopped, not waited for. At most 64 workers, and no more than the schedules. A
    scenario's own state outside AWS (files, globals) is each worker's copy; give files a name
    per process.
    """
    faults = faults or Faults()
    strategy = strategy if strategy is not None else RandomWalk()
    for name, value in (("workers", workers), ("max_failures", max_failures)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be a whole number >= 1, got {value!r}")
    if workers > _MOST_WORKERS:
        raise InvalidArgument(
            f"workers={workers} would fork as many processes: at most {_MOST_WORKERS}; give it "
            "the cores this machine has (os.cpu_count())"
        )
    if workers > 1:
        if isinstance(strategy, Hypothesis):
            raise InvalidArgument(
                "Hypothesis draws each schedule after the one before (to shrink a failure), so "
                "it cannot be split between workers: explore it with workers=1"
            )
        # a worker without a schedule would only run the set-up
        if isinstance(strategy, RandomWalk | PCT):
            workers = max(1, min(workers, strategy.schedules))
        shards = [shard(strategy, w, workers) for w in range(workers)]
    if not isinstance(strategy, Hypothesis):
        if vars(strategy).get("_explored"):
            raise SimulationError(
                f"{strategy!r} explored before: a strategy keeps its progress (an exhaustive "
                "one would claim a space it never ran), so give each explore a new one"
            )
        vars(strategy)["_explored"] = True
    report = Exploration(strategy=repr(strategy))
    started = time.perf_counter()
    if workers > 1:
        _explore_on(shards, scenario, faults, setup, max_failures, memoize, report, started)
        report.elapsed = time.perf_counter() - started
        return report
    with Backend(memo=memoize) as backend:
        _prepare(backend, setup)
        if isinstance(strategy, Hypothesis):
            _explore_hypothesis(scenario, strategy, faults, backend, report, started, setup)
        else:
            while len(report.failures) < max_failures:
                seed = strategy.begin()
                if seed is None:
                    report.finished = True
                    break
                run, steps = _run_one(scenario, strategy, faults, backend, seed)
                report.steps += steps
                if run is None:
                    report.pruned += 1
                    continue
                report.schedules += 1
                if run.error is not None:
                    elapsed = time.perf_counter() - started
                    report.failures.append(
                        Failure(run, report.schedules, elapsed, _name(scenario), _setup(setup))
                    )
    report.finished = report.finished and isinstance(strategy, Exhaustive) and strategy.finished
    report.elapsed = time.perf_counter() - started
    return report


def _explore_on(
    shards: list[Scheduler],
    scenario: Scenario,
    faults: Faults,
    setup: Scenario | None,
    max_failures: int,
    memoize: bool,
    report: Exploration,
    started: float,
) -> None:
    """:func:`explore` on ``len(shards)`` processes (:mod:`.parallel`)."""
    workers = len(shards)

    def work(worker: int, wanted: Callable[[int], bool], tell: Callable[[Ran], None]) -> None:
        mine = shards[worker]
        with Backend(memo=memoize) as backend:
            _prepare(backend, setup)
            # a seeded strategy's k-th schedule on this worker is schedule worker + k * workers
            for index in itertools.count(worker, workers):
                if not wanted(index):
                    return
                seed = mine.begin()
                if seed is None:
                    return
                run, steps = _run_one(scenario, mine, faults, backend, seed)
                if run is None or run.error is None:
                    tell(Ran(index, steps, pruned=run is None))
                else:
                    tell(Ran(index, steps, line=str(run.line), error=_said(run.error)))

    found: dict[int, float] = {}

    def seen(ran: Ran) -> None:
        if ran.line is not None:
            found[ran.index] = time.perf_counter() - started

    ran = explore_on(workers, work, max_failures, seen)
    for r in ran:
        report.steps += r.steps
        if r.pruned:
            report.pruned += 1
            continue
        report.schedules += 1
        if r.line is None:
            continue
        again = replay(scenario, r.line, setup=setup)
        if again.error is None or _said(again.error) != r.error:
            raise SimulationError(
                f"schedule {r.line} failed a check in a worker ({r.error}) but replayed here "
                f"{'without failing' if again.error is None else f'with {_said(again.error)}'}: "
                "the scenario depends on something outside the simulation (a file, a global, the "
                "process), which each worker has its own copy of"
            )
        report.failures.append(
            Failure(again, report.schedules, found[r.index], _name(scenario), _setup(setup))
        )


def _said(error: BaseException) -> str:
    """An exception as a worker and this process compare it: its type and message."""
    try:
        message = str(error)
    except Exception:  # a message that cannot be told is compared by its type alone
        message = "(a message that cannot be shown)"
    return f"{type(error).__name__}: {message}"


def _explore_hypothesis(
    scenario: Scenario,
    strategy: Hypothesis,
    faults: Faults,
    backend: Backend,
    report: Exploration,
    started: float,
    setup: Scenario | None,
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    last: list[Run] = []

    @settings(
        max_examples=strategy.max_examples,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def probe(data: Any) -> None:
        drawn = Drawn(data, strategy.seed, strategy.preemptions)
        run, steps = _run_one(scenario, drawn, faults, backend, strategy.seed)
        assert run is not None  # only a reducing Exhaustive stops a schedule
        report.schedules += 1
        report.steps += steps
        if run.error is not None:
            last[:] = [run]
            raise run.error

    try:
        probe()
    except Exception:
        if not last:
            raise
        elapsed = time.perf_counter() - started
        report.failures.append(
            Failure(last[0], report.schedules, elapsed, _name(scenario), _setup(setup))
        )


def _prepare(backend: Backend, setup: Scenario | None) -> None:
    if setup is None:
        return
    backend.reset(0)
    run = Engine(Replay(0, ()), Faults(), 0, backend)
    backend.bind(run)
    with clock.using(SetupClock(run)):
        setup(run.world)
    if run.tasks:
        raise SimulationError("setup registers no invocations: do that in the scenario")
    backend.snapshot()


def replay(scenario: Scenario, line: str | ReplayLine, *, setup: Scenario | None = None) -> Run:
    """Run the one schedule ``line`` describes (as a failure printed it) and return what it
    did; ``run.error`` is the failed check again, and ``run.requests`` the same requests in the
    same order."""
    parsed = ReplayLine.parse(line) if isinstance(line, str) else line
    scheduler = Replay(parsed.seed, parsed.choices, parsed.preemptions)
    with Backend(memo=False) as backend:
        _prepare(backend, setup)
        scheduler.begin()
        run, _ = _run_one(scenario, scheduler, parsed.faults, backend, parsed.seed)
    assert run is not None  # only a reducing Exhaustive stops a schedule
    return run
