"""Who runs next: seeded random walk, PCT, exhaustive depth-first search, and Hypothesis.

A scheduler is asked, before each schedule, for the seed of that schedule (``begin``; ``None``
when it has nothing left to try), then at each step to pick one of the listed options
(``choose``), then told the schedule ended (``end``). Options are listed so that index 0 is always
"the invocation that ran last carries on, no fault": the sequential run is all zeros.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...errors import InvalidArgument
from .footprint import Footprint, dependent
from .schedule import Option

__all__ = [
    "PCT",
    "Drawn",
    "Exhaustive",
    "Pruned",
    "RandomWalk",
    "Replay",
    "Scheduler",
    "shard",
]


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
    _stride: int = field(default=1, repr=False)
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
        self._done += self._stride


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
    _stride: int = field(default=1, repr=False)
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
        self._done += self._stride
        self._longest = max(self._longest, self._step)


def shard(strategy: Scheduler, index: int, count: int) -> Scheduler:
    """A fresh copy of ``strategy`` that begins only its schedules ``i`` with
    ``i % count == index``, in order: one worker's share of a parallel exploration.

    Only seeded strategies shard, whose schedule ``i`` is drawn from its own seed: a
    :class:`RandomWalk`'s share is exactly those schedules of the serial walk. A :class:`PCT`
    shard learns its schedules' length (k) from the schedules it ran itself, so its change points
    can fall elsewhere than a serial run's. :class:`Exhaustive` and :class:`Drawn` choose each
    schedule from the ones before it, and do not shard.
    """
    if not isinstance(strategy, RandomWalk | PCT):
        raise InvalidArgument(
            f"{type(strategy).__name__} chooses each schedule from the ones it ran before, so it "
            "cannot be split between workers: explore it with workers=1, or use RandomWalk or "
            "PCT with workers"
        )
    if not 0 <= index < count:
        raise InvalidArgument(f"shard {index} of {count} does not exist")
    copied = copy.deepcopy(strategy)
    copied._done, copied._stride = index, count
    return copied


class Pruned(Exception):
    """Raised by a reducing scheduler when every way on from here repeats, up to the order of
    independent steps, a schedule it explored before: the engine stops this schedule unchecked."""


@dataclass
class _Node:
    """One step of the current path with a choice: its options (invocation and action), the
    one taken, the sleep set it was reached with (invocation → footprint of its pending step,
    which needs no exploring from here), the footprint of the continuing invocation's step once
    it ran, and which invocations' steps from here turned out to only read."""

    kinds: tuple[tuple[int, str], ...]
    choice: int
    sleep: dict[int, Footprint | None]
    asleep: frozenset[int]
    continuing: int | None
    first: Footprint | None = None
    reads: dict[int, bool] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.kinds)


@dataclass
class Exhaustive:
    """Every schedule, depth first, with at most ``preemptions`` preemptions each (a preemption:
    another invocation takes the turn while the one that ran last could have carried on) and the
    faults of the :class:`~stateless_state.testing.simulation.Faults` budget at every step they
    apply to. Stateless model checking in the manner of CHESS and loom: each schedule re-runs the
    code from the start, following the prefix still to explore. ``max_schedules`` stops early
    (then the exploration reports it did not finish).

    With ``reduce``, schedules that differ only in the order of independent steps are run once
    (sleep sets, Godefroid 1996): once the subtree where the invocation that ran last carries
    on is explored, a preemption there does not run that invocation's step until a step
    dependent on it has run (:mod:`.footprint` says which are). Only the carrying-on step is put
    to sleep, because only for it does the schedule that was explored instead need no more
    preemptions than the one left out (Coons, Musuvathi and McKinley, OOPSLA 2013, show that
    sleeping any step under a preemption bound misses schedules within it). So every schedule
    within the bound is run or has an equivalent within the bound that was.

    ``reduce`` also leaves out a crash at a step that only reads (and does not end the
    invocation): crashing there leaves the state that crashing at the invocation's next step
    does, which is explored, with no more preemptions.

    Both assume the invocations share state only through DynamoDB and S3 requests (any other
    service's are ordered against everything) and what they mark with
    :meth:`~stateless_state.testing.simulation.World.touch`. Unmarked Python state that a check
    reads is safe only where the check is a property of each record it holds (a log of what
    callers were told, as :class:`patterns.testing.BatchHistory` keeps): reordered, or with a
    record more, it fails no less. ``pruned`` counts the schedules stopped as repeats."""

    preemptions: int | None = 2
    max_schedules: int | None = None
    seed: int = 0
    reduce: bool = False
    finished: bool = field(default=False, repr=False)
    pruned: int = field(default=0, repr=False)
    _nodes: list[_Node] = field(default_factory=list, repr=False)
    _depth: int = field(default=0, repr=False)
    _count: int = field(default=0, repr=False)
    _moved: set[int] = field(default_factory=set, repr=False)
    _since: list[Footprint | None] = field(default_factory=list, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def begin(self) -> int | None:
        if self.finished or (self.max_schedules is not None and self._count >= self.max_schedules):
            return None
        self._depth = 0
        self._moved, self._since = set(), []
        return self.seed

    def ran(self, task: int, footprint: Footprint | None, ended: bool) -> None:
        """The step just taken (by ``task``, -1 for the world) touched ``footprint``; ``ended``:
        the invocation ended with it."""
        if not self.reduce:
            return
        node = self._nodes[self._depth - 1] if self._depth > 0 else None
        if node is not None and self._since and task in self._sleep_after(node):
            # a step forced (the only option) though asleep: what follows repeats a schedule
            self.pruned += 1
            self._stopped = True
            raise Pruned
        if node is not None and not self._since:
            if node.choice == 0 and node.continuing is not None:
                node.first = footprint
            who, action = node.kinds[node.choice]
            if action == "run":
                node.reads[who] = (
                    footprint is not None and not ended and not any(w for _, w in footprint)
                )
        self._moved.add(task)
        self._since.append(footprint)

    def _sleep_after(self, parent: _Node) -> dict[int, Footprint | None]:
        """The sleep set of the step after ``parent``'s choice, from what ran since then."""
        sleeping = dict(parent.sleep)
        if parent.choice > 0 and parent.continuing is not None:
            sleeping.setdefault(parent.continuing, parent.first)
        return {
            task: footprint
            for task, footprint in sleeping.items()
            if task not in self._moved and not any(dependent(footprint, f) for f in self._since)
        }

    def choose(self, options: Sequence[Option]) -> int:
        depth = self._depth
        self._depth += 1
        if depth < len(self._nodes):
            node = self._nodes[depth]
            if node.n != len(options):
                raise RuntimeError(
                    "the simulation is not deterministic: a replayed prefix met "
                    f"{len(options)} options at step {depth} where it first met {node.n}; does "
                    "the code read the time, a random number or a set's order outside "
                    "stateless_state.clock?"
                )
        else:
            sleep = self._sleep_after(self._nodes[depth - 1]) if self.reduce and depth else {}
            continuing = None
            if options[0].action == "run" and any(o.preempts for o in options):
                continuing = options[0].task
            asleep = frozenset(
                i for i, o in enumerate(options) if o.action == "run" and o.task in sleep
            )
            kinds = tuple((o.task, o.action) for o in options)
            node = _Node(kinds, -1, sleep, asleep, continuing)
            node.choice = self._next(node, -1)
            self._nodes.append(node)
            if node.choice < 0:
                self.pruned += 1
                self._stopped = True
                raise Pruned
        self._moved, self._since = set(), []
        return node.choice

    @staticmethod
    def _next(node: _Node, after: int) -> int:
        for i in range(after + 1, node.n):
            who, action = node.kinds[i]
            if i not in node.asleep and not (action == "crash" and node.reads.get(who, False)):
                return i
        return -1

    def end(self) -> None:
        if not self._stopped:
            self._count += 1
        self._stopped = False
        while self._nodes:
            node = self._nodes[-1]
            if node.choice >= 0:
                choice = self._next(node, node.choice)
                if choice >= 0:
                    node.choice = choice
                    return
            self._nodes.pop()
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
