"""One simulated schedule: the world its invocations share, and the engine that runs them.

Each invocation runs real code on its own thread, but only one thread ever runs at a time: an
invocation runs until its next *step* (an AWS request through a client the world made, a sleep,
or its return), parks there, and the engine asks the scheduler who goes next and with which
fault. State lives in moto, in process, reset for every schedule; moto is safe here because
nothing in it runs concurrently. Time is virtual: it moves only when an invocation sleeps, a
request completes (``LATENCY``) or a pause or timeout is chosen.

What moto does not model and DynamoDB does, the world does: ``ClientRequestToken`` idempotency
of ``TransactWriteItems`` (a repeat within 10 minutes of the token's first success succeeds
without applying again; the same token with other parameters is
``IdempotentParameterMismatchException``; a cancelled or refused transaction binds no token) and
TTL deletion (the ``ttl`` fault deletes the items whose ``ttl`` has passed, all or any one alone,
never one whose has not). ``tests/stateless_state/test_simulation_model.py`` checks both against
DynamoDB Local.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ... import clock
from ..faults import conflict_response, error_response
from .footprint import Footprint, Resource, request_footprint
from .memo import body_bytes
from .schedule import FAULTS, Faults, Option, ReplayLine
from .schedulers import Scheduler

__all__ = ["EPOCH", "LATENCY", "Outcome", "SimulationError", "Step", "World"]

EPOCH = 1_767_225_600.0
"""Virtual wall-clock time at the start of every schedule (2026-01-01T00:00:00Z)."""
LATENCY = 0.001
"""Virtual seconds each request takes."""
TOKEN_WINDOW = 600.0
"""How long DynamoDB remembers a ``ClientRequestToken``."""
WATCHDOG = 60.0
"""How long an invocation may run between two steps before the engine calls it stuck: blocked
(it used next to no CPU for this many wall seconds: a lock, a database's busy wait, a real
sleep) or busy (this many CPU seconds: a loop that neither sends a request nor sleeps). A slow
step on a loaded machine (little CPU, but some, in every period) is waited for, up to
``WATCHDOG_WALL``. Where a thread's CPU clock cannot be read, wall seconds alone."""
WATCHDOG_WALL = 10 * WATCHDOG
"""Wall seconds a step that keeps using CPU may take before the engine calls it stuck anyway."""
MAX_DELIVERIES = 100
"""Deliveries (first ones, redeliveries and duplicates) one schedule may hold: more means a
fault budget without practical end (``Faults(duplicate=...)``), refused rather than run."""

_WRITES = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "ExecuteStatement",
        "BatchExecuteStatement",
    }
)


class SimulationError(RuntimeError):
    """The simulation itself could not go on (not a failed check): an invocation stuck outside
    a step, or code that is not deterministic."""


class _Killed(BaseException):
    """Raised inside an invocation the schedule crashed or timed out. A ``BaseException`` so
    that no ``except Exception`` (botocore's included) stops it unwinding."""


@dataclass
class Step:
    """One step of the trace: who, what request (a digest of its bytes) or ``sleep``/``return``,
    and the option the schedule took there."""

    invocation: str
    kind: str
    operation: str
    digest: str
    action: str

    def __str__(self) -> str:
        fault = "" if self.action == "run" else f" [{self.action}]"
        return f"{self.invocation}: {self.operation}{fault}"


@dataclass
class Outcome:
    """How one delivery of an event ended: ``ok`` (with ``result``), ``error`` (with ``error``:
    the handler raised), ``crashed`` or ``timeout``. ``attempt`` counts deliveries of the same
    event (1 for the first)."""

    name: str
    event: Any
    attempt: int
    status: str = "running"
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Pending:
    kind: str  # start | request | sleep | return
    service: str = ""
    operation: str = ""
    wake: float = 0.0
    footprint: Footprint | None = None

    def allows(self, fault: str) -> bool:
        if self.kind == "start":
            return False
        if fault in ("crash", "pause", "timeout", "duplicate"):
            return True
        if self.kind != "request":
            return False
        if fault == "ambiguous":
            return self.operation in _WRITES
        if fault == "throttle":
            return self.service == "dynamodb"
        if fault == "conflict":
            return self.operation == "TransactWriteItems"
        return False


class _SeededChance:
    """The chance half of a virtual clock: jitter and nonces drawn from one seeded source."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def uniform(self, a: float, b: float) -> float:
        return self._rng.uniform(a, b)

    def randrange(self, n: int) -> int:
        return self._rng.randrange(n)

    def token_hex(self, nbytes: int) -> str:
        return self._rng.getrandbits(8 * nbytes).to_bytes(nbytes, "big").hex()

    def identity(self) -> str:
        return "simulation"


class _TaskClock(_SeededChance):
    def __init__(self, run: Engine, task: _Task) -> None:
        super().__init__(task.rng)
        self._run, self._task = run, task

    def time(self) -> float:
        return self._run.now + self._task.skew

    def monotonic(self) -> float:
        return self._run.now

    def sleep(self, seconds: float) -> None:
        self._task.step(_Pending("sleep", operation="sleep", wake=self._run.now + max(0, seconds)))

    def identity(self) -> str:
        return f"sim:{self._task.base}"


class SetupClock(_SeededChance):
    """The clock of the scenario's own code (set-up and checks): virtual, never a step."""

    def __init__(self, run: Engine) -> None:
        super().__init__(run.rng)
        self._run = run

    def time(self) -> float:
        return self._run.now

    def monotonic(self) -> float:
        return self._run.now

    def sleep(self, seconds: float) -> None:
        self._run.now += max(0.0, seconds)


class _Context:
    """The Lambda context an invocation sees: its remaining time runs on virtual time."""

    def __init__(self, run: Engine, task: _Task) -> None:
        self._run, self._task = run, task
        self.function_name = "simulated"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.UUID(int=task.rng.getrandbits(128), version=4))
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:simulated"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._task.deadline - self._run.now) * 1000))


_local = threading.local()


def _own_cpu_clock() -> int | None:
    """The calling thread's CPU clock (for :func:`_cpu_seconds` from another thread), or
    ``None`` where the platform has none. Taken by the thread itself, while it surely lives."""
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None:
        return None
    try:
        clock_id: int = getter(threading.get_ident())
        time.clock_gettime(clock_id)
    except OSError:
        return None
    return clock_id


def _cpu_seconds(clock_id: int | None) -> float | None:
    """CPU seconds the thread of ``clock_id`` has used; ``None`` when unknown (or it ended)."""
    if clock_id is None:
        return None
    try:
        return time.clock_gettime(clock_id)
    except OSError:
        return None


def _running_task() -> _Task | None:
    task: _Task | None = getattr(_local, "task", None)
    return task


class _Task:
    def __init__(
        self,
        run: Engine,
        index: int,
        outcome: Outcome,
        handler: Callable[[Any, Any], Any],
        *,
        skew: float,
        timeout: float,
        redeliver: bool,
        chain: int,
        base: str,
        not_before: float,
    ) -> None:
        self.run, self.index, self.outcome, self.handler = run, index, outcome, handler
        self.base, self.not_before = base, not_before
        self.skew, self.timeout, self.redeliver, self.chain = skew, timeout, redeliver, chain
        self.rng = random.Random(f"{run.seed}:{index}")
        self.deadline = 0.0
        self.pending: _Pending | None = _Pending("start")
        self.paused_until = 0.0
        self.action = "run"
        self.killed: str | None = None
        self.done = False
        self.touched: set[tuple[Resource, bool]] = set()
        self.stuck = False
        self._cpu_clock: int | None = None
        self._cpu_mark: float | None = 0.0
        self._cpu_at_resume = 0.0
        self._go = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._main, name=f"sim:{outcome.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.outcome.name

    def _main(self) -> None:
        _local.task = self
        self._cpu_clock = _own_cpu_clock()
        self._go.acquire()
        try:
            if self.killed:
                raise _Killed
            with clock.using(_TaskClock(self.run, self)):
                result = self.handler(self.outcome.event, _Context(self.run, self))
                if self.run.faults.crash or self.run.faults.timeout or self.run.faults.duplicate:
                    self.step(_Pending("return", operation="return"))
            if self.run.now >= self.deadline:
                # it ran past its Lambda timeout: Lambda ended it, whatever it returned
                self.killed = "timeout"
            else:
                self.outcome.status, self.outcome.result = "ok", result
        except _Killed:
            self.outcome.status = self.killed or "crashed"
        except (KeyboardInterrupt, SystemExit) as e:
            # the person running the exploration asked it to stop, not the handler to fail
            self.outcome.status, self.outcome.error = "error", e
            self.run.stop = e
        except BaseException as e:
            self.outcome.status, self.outcome.error = "error", e
        finally:
            if self.killed:
                # A crash or Lambda's timeout ends the invocation whatever it does next: a
                # handler that swallowed the kill and returned did not return.
                self.outcome.status = self.killed
                self.outcome.result = self.outcome.error = None
            self.pending, self.done = None, True
            self.run.back.release()

    def due(self, now: float) -> bool:
        """Whether it may run at ``now``: a redelivery not yet started waits for its time."""
        pending = self.pending
        return not (pending is not None and pending.kind == "start" and self.not_before > now)

    def start(self) -> None:
        self.deadline = self.run.now + self.timeout
        self._thread.start()

    def step(self, pending: _Pending) -> str:
        """Park here until the scheduler picks this invocation; the option it took."""
        if self.killed:
            raise _Killed
        self.pending = pending
        self.run.back.release()
        self._go.acquire()
        if self.killed:
            raise _Killed
        return self.action

    def resume(self, action: str) -> None:
        pending = self.pending
        # where its CPU clock stood (a thread not started yet has used none)
        self._cpu_mark = _cpu_seconds(self._cpu_clock) if self._thread.ident else 0.0
        self._cpu_at_resume = self._cpu_mark or 0.0
        if pending is not None and pending.kind == "start":
            self.start()
        elif pending is not None and pending.kind == "sleep" and not self.killed:
            # a sleep that ends wakes at its time; one killed in its sleep moves no clock
            self.run.now = max(self.run.now, pending.wake)
        self.action = action
        self._go.release()
        self._wait_for_step(pending)

    def _wait_for_step(self, pending: _Pending | None) -> None:
        """Wait until the invocation reaches its next step (or ends); :class:`SimulationError`
        when it is stuck (:data:`WATCHDOG`)."""
        waited = 0.0
        while not self.run.back.acquire(timeout=WATCHDOG):
            waited += WATCHDOG
            before, now = self._cpu_mark, _cpu_seconds(self._cpu_clock)
            if now is None or before is None:
                self._stuck(pending, f"ran {waited:g} s of wall time")
            self._cpu_mark = now
            used = now - self._cpu_at_resume
            if used >= WATCHDOG:
                self._stuck(pending, f"is busy: {used:.1f} s of CPU", busy=True)
            if now - before < 0.01 * WATCHDOG:
                self._stuck(
                    pending,
                    f"is blocked: {now - before:.2f} s of CPU in the last {WATCHDOG:g} s of "
                    "wall time",
                )
            if waited >= WATCHDOG_WALL:
                self._stuck(pending, f"ran {waited:g} s of wall time ({used:.1f} s of CPU)")

    def _stuck(self, pending: _Pending | None, how: str, *, busy: bool = False) -> NoReturn:
        self.stuck = True
        frames = sys._current_frames().get(self._thread.ident or -1)
        stack = "".join(traceback.format_stack(frames)[-8:]) if frames is not None else ""
        was = "its start" if pending is None or pending.kind == "start" else pending.operation
        run = self.run
        line = ReplayLine(run.seed, tuple(run.choices), run.scheduler.preemptions, run.faults)
        cause = (
            "a loop that neither sends a request nor sleeps on the clock (virtual time moves "
            "only at steps, so a loop waiting for it never ends)?"
            if busy
            else "is it waiting on a lock another simulated invocation holds (one held across a "
            "step), sleeping with time.sleep rather than the clock, or calling AWS through a "
            "client the world did not make (world.client)?"
        )
        raise SimulationError(
            f"invocation {self.name!r} {how} without reaching a step since {was}: {cause}\n"
            f"  the schedule so far (simulation.replay reaches the same point): {line}\n"
            f"  where it is now:\n{stack}"
        )


@dataclass
class World:
    """What a scenario builds a schedule from, and what its checks read afterwards.

    A scenario is a function ``scenario(world)``. It runs once per schedule, on a fresh moto
    backend: it creates what the invocations need (tables, buckets, objects: set-up requests are
    not steps), registers the invocations with :meth:`invoke`, and the checks with
    :meth:`check`. Every AWS client the code under test uses must come from :meth:`client`.
    """

    _run: Engine = field(repr=False)

    @property
    def now(self) -> float:
        """Virtual wall-clock time (epoch seconds), as DynamoDB's TTL sees it."""
        return self._run.now

    @property
    def seed(self) -> int:
        """This schedule's seed."""
        return self._run.seed

    @property
    def rng(self) -> random.Random:
        """A random source for the scenario's own set-up, seeded by the schedule."""
        return self._run.rng

    @property
    def outcomes(self) -> list[Outcome]:
        """How each delivery ended, in the order they were made (redeliveries included)."""
        return [t.outcome for t in self._run.tasks]

    @property
    def trace(self) -> list[Step]:
        """Every step taken, in order."""
        return list(self._run.trace)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on the simulated backend: each of its requests is a step
        of the invocation that sends it (and not a step when sent by set-up or checks)."""
        return self._run.client(service, **kwargs)

    def invoke(
        self,
        handler: Callable[[Any, Any], Any],
        event: Any = None,
        *,
        name: str | None = None,
        skew: float = 0.0,
        timeout: float = 900.0,
        redeliver: bool = True,
    ) -> None:
        """Deliver ``event`` to ``handler(event, context)`` as one Lambda invocation (in the
        scenario: a check or a handler that calls this is refused). ``skew``
        shifts this invocation's wall clock (seconds; its monotonic clock is unaffected);
        ``timeout`` is its Lambda timeout (virtual seconds; the default is Lambda's longest, so
        that a pause outlives a lease, not the invocation: a zombie). With ``redeliver`` the
        event is delivered again when this invocation crashes, times out or raises (up to
        :attr:`Faults.redeliveries` times, :attr:`Faults.redeliver_after` virtual seconds
        later), as SQS and Lambda's retries do."""
        _callable_as_a_handler(handler)
        if self._run.running:
            raise SimulationError(
                "world.invoke was called while the schedule ran (from a check or a handler): "
                "register every delivery in the scenario itself; redeliveries and duplicates "
                "come from Faults"
            )
        self._run.add_task(
            handler, event, name=name, skew=skew, timeout=timeout, redeliver=redeliver
        )

    def touch(self, resource: str, *, write: bool = True) -> None:
        """Say that the invocation running now reads (``write=False``) or writes ``resource``:
        state the invocations share outside AWS (a local warehouse, a shared Python object
        whose order of updates the checks can tell). :class:`Exhaustive` with ``reduce``
        reorders steps only where their footprints are independent, and sees AWS requests by
        itself, but not this. Outside an invocation (set-up, checks) it does nothing."""
        task = _running_task()
        if task is not None and task.run is self._run:
            task.touched.add((("touch", resource, ""), write))

    def check(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register ``fn`` (no arguments) to run after every invocation has ended; it fails the
        schedule by raising (an ``assert``, say). Usable as a decorator."""
        self._run.checks.append(fn)
        return fn


def _callable_as_a_handler(handler: Callable[[Any, Any], Any]) -> None:
    if inspect.iscoroutinefunction(handler):
        raise SimulationError(
            f"{handler!r} is a coroutine function: Lambda's Python runtime calls "
            "handler(event, context) and never awaits it (run your coroutine with asyncio.run "
            "inside a plain handler)"
        )
    try:
        inspect.signature(handler).bind(None, None)
    except TypeError:
        raise SimulationError(
            f"{handler!r} cannot be called as handler(event, context), as Lambda calls it"
        ) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): let the call tell


class Engine:
    """The engine of one schedule."""

    def __init__(self, scheduler: Scheduler, faults: Faults, seed: int, clients: Any) -> None:
        self.scheduler, self.faults, self.seed = scheduler, faults, seed
        self.now = EPOCH
        self.rng = random.Random(f"{seed}:world")
        self.tasks: list[_Task] = []
        self.checks: list[Callable[[], Any]] = []
        self.trace: list[Step] = []
        self.choices: list[int] = []
        self.steps = 0
        self.running = False
        self.stop: BaseException | None = None
        self._home = threading.current_thread()
        self.back = threading.Semaphore(0)
        self.budget = faults.budget()
        self.tokens: dict[str, tuple[str, float]] = {}
        self._clients = clients
        self._last: _Task | None = None
        self._preemptions = 0
        ran = getattr(scheduler, "ran", None)
        self._ran: Callable[[int, Footprint | None, bool], None] | None = (
            ran if callable(ran) else None
        )
        self.world = World(self)

    # -- set-up --------------------------------------------------------------------------------

    def client(self, service: str, **kwargs: Any) -> Any:
        return self._clients.make(service, **kwargs)

    def add_task(
        self,
        handler: Callable[[Any, Any], Any],
        event: Any,
        *,
        name: str | None,
        skew: float,
        timeout: float,
        redeliver: bool,
        attempt: int = 1,
        chain: int | None = None,
        not_before: float = 0.0,
    ) -> _Task:
        index = len(self.tasks)
        if index >= MAX_DELIVERIES:
            raise SimulationError(
                f"more than {MAX_DELIVERIES} deliveries in one schedule: a fault budget without "
                "practical end (Faults(duplicate=...) or redeliveries); give it a few, not many"
            )
        base = name or f"inv{index}"
        label = base if attempt == 1 else f"{base}#{attempt}"
        task = _Task(
            self,
            index,
            Outcome(label, event, attempt),
            handler,
            skew=skew,
            timeout=timeout,
            redeliver=redeliver,
            chain=index if chain is None else chain,
            base=base,
            not_before=not_before,
        )
        self.tasks.append(task)
        return task

    def _again(self, task: _Task, *, attempt: int, delay: float = 0.0) -> None:
        self.add_task(
            task.handler,
            task.outcome.event,
            name=task.base,
            skew=task.skew,
            timeout=task.timeout,
            redeliver=task.redeliver,
            attempt=attempt,
            chain=task.chain,
            not_before=self.now + delay,
        )

    # -- the loop ------------------------------------------------------------------------------

    def execute(self) -> None:
        if not self.tasks:
            raise SimulationError(
                "the scenario registered no invocation: call world.invoke(handler, event) in it"
            )
        self.running = True
        try:
            while True:
                for task in self.tasks:
                    started = task.pending is not None and task.pending.kind != "start"
                    if started and not task.done and not task.killed and self.now >= task.deadline:
                        self._kill(task, "timeout")
                ready = [t for t in self.tasks if not t.done]
                if not ready:
                    return
                if not any(t.due(self.now) for t in ready):
                    # only redeliveries not yet due: virtual time runs on to the first of them
                    self.now = min(t.not_before for t in ready)
                ready = [t for t in ready if t.due(self.now)]
                options = self._options(ready)
                # Only real choices go into the line: a replay is asked only where there are
                # several options, so a forced step recorded there would shift every later one.
                choice = 0
                if len(options) > 1:
                    choice = self.scheduler.choose(options)
                    self.choices.append(choice)
                self.steps += 1
                self._take(options[choice])
                if self.stop is not None:
                    raise self.stop
        finally:
            for task in self.tasks:
                if task.stuck:
                    continue  # it never reached a step: nothing will wake it
                if not task.done and task.pending is not None and task.pending.kind != "start":
                    task.killed = task.killed or "crashed"
                    task.resume("run")

    def _options(self, ready: list[_Task]) -> list[Option]:
        last = self._last if self._last is not None and not self._last.done else None
        bound = self.scheduler.preemptions
        may_preempt = last is None or bound is None or self._preemptions < bound
        options: list[Option] = []
        if last is not None:
            options.append(Option(last.index, "run"))
        if may_preempt:
            options += [Option(t.index, "run", last is not None) for t in ready if t is not last]
        for t in ready:
            if t is not last and not may_preempt:
                continue
            pending = t.pending
            if pending is None:
                continue
            for kind in FAULTS:
                if kind != "ttl" and self.budget[kind] > 0 and pending.allows(kind):
                    options.append(Option(t.index, kind, last is not None and t is not last))
        expired = self._clients.expired(self.now) if self.budget["ttl"] > 0 else 0
        if expired:
            # every expired item at once (TTL's sweep), and when there are several, each alone
            # (DynamoDB deletes items on their own schedules)
            options.append(Option(-1, "ttl"))
            if expired > 1:
                options += [Option(-2 - i, "ttl") for i in range(expired)]
        return options

    def _take(self, option: Option) -> None:
        """Apply ``option``; a scheduler that reduces by independence (one with ``ran``) is then
        told what the step touched."""
        if self._ran is None:
            self._apply(option)
            return
        task = self.tasks[option.task] if option.task >= 0 else None
        pending = task.pending if task is not None else None
        tasks, now = len(self.tasks), self.now
        if task is not None:
            task.touched = set()
        self._apply(option)
        footprint: Footprint | None = None
        if (
            task is not None
            and pending is not None
            and option.action not in ("crash", "timeout", "duplicate", "pause")
            and pending.kind != "sleep"
            # a redelivery was added, or virtual time moved on by more than the request took
            and len(self.tasks) == tasks
            and self.now - now <= 1.5 * LATENCY
        ):
            base = pending.footprint if pending.kind == "request" else frozenset()
            if base is not None:
                footprint = base | frozenset(task.touched)
        self._ran(option.task, footprint, task is not None and task.done)

    def _apply(self, option: Option) -> None:
        if option.preempts:
            self._preemptions += 1
        if option.task < 0:
            self.budget["ttl"] -= 1
            self._clients.expire(self.now, None if option.task == -1 else -2 - option.task)
            which = (
                "every expired item" if option.task == -1 else f"expired item {-2 - option.task}"
            )
            self.trace.append(Step("world", "ttl", which, "", "ttl"))
            return
        task = self.tasks[option.task]
        action = option.action
        if action != "run":
            self.budget[action] -= 1
        if action == "pause":
            # Only this invocation stalls: the others may run meanwhile, and virtual time
            # reaches the end of the pause when it is next chosen (as for a sleep).
            task.paused_until = max(task.paused_until, self.now) + self.faults.pause_for
            self.trace.append(Step(task.name, "pause", "pause", "", "pause"))
            return
        if action == "duplicate":
            deliveries = sum(1 for t in self.tasks if t.chain == task.chain)
            self._again(task, attempt=deliveries + 1)
            self.trace.append(Step(task.name, "duplicate", "duplicate", "", "duplicate"))
            return
        if action == "timeout":
            self.now = max(self.now, task.deadline)
            self._kill(task, "timeout")
            return
        if action == "crash":
            self._kill(task, "crashed")
            return
        if task.paused_until > self.now:
            self.now = task.paused_until
            if self.now >= task.deadline:
                self._kill(task, "timeout")  # the pause outlived the invocation itself
                return
        pending = task.pending
        if pending is not None and pending.kind in ("sleep", "return"):
            self.trace.append(Step(task.name, pending.kind, pending.operation, "", action))
        self._last = task
        task.resume(action)
        if task.done:
            self._ended(task)

    def _kill(self, task: _Task, why: str) -> None:
        pending = task.pending
        operation = pending.operation if pending is not None else ""
        self.trace.append(Step(task.name, why, operation, "", why))
        task.killed = why
        task.resume("run")
        self._ended(task)

    def _ended(self, task: _Task) -> None:
        if task.outcome.status in ("crashed", "timeout", "error") and task.redeliver:
            chain = [t for t in self.tasks if t.chain == task.chain]
            if len(chain) <= self.faults.redeliveries:
                self._again(task, attempt=len(chain) + 1, delay=self.faults.redeliver_after)

    # -- requests ------------------------------------------------------------------------------

    def before_send(self, request: Any, event_name: str, **kwargs: Any) -> Any:
        _, service, operation = event_name.split(".", 2)
        task = _running_task()
        if task is None or task.run is not self:
            if threading.current_thread() is not self._home:
                self.stop = SimulationError(
                    f"{operation} was sent from a thread the simulation did not start: a step "
                    "can only be taken by an invocation's own thread (run the work in the "
                    "handler, or simulate each thread as an invocation of its own)"
                )
                raise self.stop
            return self._clients.send(self, request, event_name, service, operation)
        raw = body_bytes(request)
        footprint = None
        if self._ran is not None:
            headers = {
                k.lower(): v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
            footprint = request_footprint(
                service, operation, request.url, raw, headers, self._clients.hash_key
            )
        action = task.step(_Pending("request", service, operation, footprint=footprint))
        digest = hashlib.sha1(request.method.encode() + request.url.encode() + raw).hexdigest()
        self.trace.append(Step(task.name, "request", operation, digest[:16], action))
        if action == "throttle":
            return error_response(
                request.url, 400, "ProvisionedThroughputExceededException", "simulated"
            )
        if action == "conflict":
            return conflict_response(request.url, raw)
        response = self._clients.send(self, request, event_name, service, operation)
        self.now += LATENCY
        if action == "ambiguous":
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url=request.url)
        return response
