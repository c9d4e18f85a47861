"""Who runs next: seeded random walk, PCT, exhaustive depth-first search, and Hypothesis.

A scheduler is asked, before each schedule, for the seed of that schedule (``begin``; ``None``
when it has nothing left to try), then at each step to pick one of the listed options
(``choose``), then told the schedule ended (``end``). Options are listed so that index 0 is always
"the invocation that ran last carries on, no fault": the sequential run is all zeros.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...errors import InvalidArgument
from .schedule import Option

__all__ = ["PCT", "Drawn", "Exhaustive", "RandomWalk", "Replay", "Scheduler"]


class Scheduler(Protocol):
    """What :func:`~stateless_state.testing.simulation.explore` asks of a strategy."""

    preemptions: int | None
    """At most this many preemptions per schedule (``None``: unbounded)."""

    def begin(self) -> int | None:
        """The seed of the next schedule, or ``None`` when there is nothing left to try."""
        ...

    def choose(self, options: Sequence[Option]) -> int:
        """The index of the option to take at this step."""
        ...

    def end(self) -> None:
        """The schedule begun last has ended."""
        ...


def _run_seed(seed: int, done: int) -> int:
    """The seed of schedule ``done`` of a strategy seeded ``seed``: the same on every machine."""
    return seed * 1_000_003 + done


def _fault(rng: random.Random, options: Sequence[Option], rate: float) -> int | None:
    """With probability ``rate``, one of the fault options (when there is one), else ``None``."""
    faulty = [i for i, o in enumerate(options) if o.action != "run"]
    if faulty and rng.random() < rate:
        return rng.choice(faulty)
    return None


@dataclass
class RandomWalk:
    """``schedules`` schedules, each a seeded random walk: at every step a fault with probability
    ``fault_rate`` (when the budget allows one), else a uniformly chosen invocation. Schedule
    ``i`` of ``seed`` is the same walk on every machine."""

    schedules: int = 100
    seed: int = 0
    fault_rate: float = 0.1
    preemptions: int | None = None
    _done: int = field(default=0, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise InvalidArgument(f"fault_rate must be within [0, 1], got {self.fault_rate}")

    def begin(self) -> int | None:
        if self._done >= self.schedules:
            return None
        run_seed = _run_seed(self.seed, self._done)
        self._rng = random.Random(run_seed)
        return run_seed

    def choose(self, options: Sequence[Option]) -> int:
        fault = _fault(self._rng, options, self.fault_rate)
        if fault is not None:
            return fault
        plain = [i for i, o in enumerate(options) if o.action == "run"] or list(range(len(options)))
        return self._rng.choice(plain)

    def end(self) -> None:
        self._done += 1


@dataclass
class PCT:
    """Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010) with bug depth
    ``depth``. Each schedule gives the invocations random distinct priorities and picks
    ``depth - 1`` random change points among the first ``steps`` steps; the ready invocation with
    the highest priority always runs, and at the i-th change point the running one drops to
    priority i, below every other. For a bug of depth d among n invocations and k steps, one
    schedule finds it with probability at least ``1 / (n * k ** (d - 1))``.

    ``steps`` (k: the steps where there is a choice) is ``steps_hint`` for the first schedule,
    then the longest schedule seen, so that the change points fall where the choices are.
    Faults are drawn as in :class:`RandomWalk`, at ``fault_rate``.
    """

    schedules: int = 100
    depth: int = 2
    seed: int = 0
    fault_rate: float = 0.05
    steps_hint: int = 40
    preemptions: int | None = None
    _done: int = field(default=0, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _priority: dict[int, float] = field(default_factory=dict, repr=False)
    _changes: list[int] = field(default_factory=list, repr=False)
    _step: int = field(default=0, repr=False)
    _longest: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise InvalidArgument(f"PCT depth must be >= 1, got {self.depth}")

    def begin(self) -> int | None:
        if self._done >= self.schedules:
            return None
        run_seed = _run_seed(self.seed, self._done)
        self._rng = random.Random(run_seed)
        # k is the schedule's length in choices: the hint until one schedule has run
        k = max(self._longest or self.steps_hint, 1)
        self._changes = sorted(self._rng.randrange(k) for _ in range(self.depth - 1))
        self._priority, self._step = {}, 0
        return run_seed

    def bound(self, invocations: int, steps: int) -> float:
        """PCT's lower bound on the chance that one schedule finds a bug of this depth."""
        return 1.0 / float(invocations * steps ** (self.depth - 1))

    def choose(self, options: Sequence[Option]) -> int:
        step, self._step = self._step, self._step + 1
        fault = _fault(self._rng, options, self.fault_rate)
        if fault is not None:
            return fault
        runs = [i for i, o in enumerate(options) if o.action == "run"]
        if not runs:
            return 0
        for i in runs:
            # New invocations (redeliveries) get a random priority above every change point.
            self._priority.setdefault(options[i].task, self.depth + self._rng.random())
        best = max(runs, key=lambda i: self._priority[options[i].task])
        while step in self._changes:
            self._changes.remove(step)
            self._priority[options[best].task] = float(self.depth - 1 - len(self._changes))
            best = max(runs, key=lambda i: self._priority[options[i].task])
        return best

    def end(self) -> None:
        self._done += 1
        self._longest = max(self._longest, self._step)


@dataclass
class Exhaustive:
    """Every schedule, depth first, with at most ``preemptions`` preemptions each (a preemption:
    another invocation takes the turn while the one that ran last could have carried on) and the
    faults of the :class:`~stateless_state.testing.simulation.Faults` budget at every step they
    apply to. Stateless model checking in the manner of CHESS and loom: each schedule re-runs the
    code from the start, following the prefix still to explore. ``max_schedules`` stops early
    (then the exploration reports it did not finish)."""

    preemptions: int | None = 2
    max_schedules: int | None = None
    seed: int = 0
    _prefix: list[int] = field(default_factory=list, repr=False)
    _taken: list[tuple[int, int]] = field(default_factory=list, repr=False)
    _count: int = field(default=0, repr=False)
    finished: bool = field(default=False, repr=False)

    def begin(self) -> int | None:
        if self.finished or (self.max_schedules is not None and self._count >= self.max_schedules):
            return None
        self._taken = []
        return self.seed

    def choose(self, options: Sequence[Option]) -> int:
        depth = len(self._taken)
        choice = self._prefix[depth] if depth < len(self._prefix) else 0
        if choice >= len(options):
            raise RuntimeError(
                "the simulation is not deterministic: a replayed prefix met fewer options "
                f"({len(options)}) at step {depth} than when it was first run; does the code "
                "read the time, a random number or a set's order outside stateless_state.clock?"
            )
        self._taken.append((choice, len(options)))
        return choice

    def end(self) -> None:
        self._count += 1
        for depth in range(len(self._taken) - 1, -1, -1):
            choice, n = self._taken[depth]
            if choice + 1 < n:
                self._prefix = [c for c, _ in self._taken[:depth]] + [choice + 1]
                return
        self.finished = True


@dataclass
class Replay:
    """Exactly one schedule: the given seed and choices (what a failure's line holds)."""

    seed: int
    choices: Sequence[int]
    preemptions: int | None = None
    _begun: bool = field(default=False, repr=False)
    _at: int = field(default=0, repr=False)

    def begin(self) -> int | None:
        if self._begun:
            return None
        self._begun, self._at = True, 0
        return self.seed

    def choose(self, options: Sequence[Option]) -> int:
        at, self._at = self._at, self._at + 1
        choice = self.choices[at] if at < len(self.choices) else 0
        if choice >= len(options):
            raise RuntimeError(
                f"replay diverged at step {at}: the line chose option {choice} of "
                f"{len(options)}; was the scenario or the code changed since it was printed?"
            )
        return choice

    def end(self) -> None:
        pass


@dataclass
class Drawn:
    """Choices drawn from Hypothesis (``data`` is what ``st.data()`` gives a test), so that a
    failing schedule shrinks: towards fewer steps, lower indices, hence fewer preemptions and
    faults. One schedule per example; ``seed`` fixes the nonces."""

    data: Any = field(repr=False)
    seed: int = 0
    preemptions: int | None = None
    _begun: bool = field(default=False, repr=False)

    def begin(self) -> int | None:
        if self._begun:
            return None
        self._begun = True
        return self.seed

    def choose(self, options: Sequence[Option]) -> int:
        from hypothesis import strategies as st

        if len(options) == 1:
            return 0
        return int(self.data.draw(st.integers(0, len(options) - 1)))

    def end(self) -> None:
        pass
