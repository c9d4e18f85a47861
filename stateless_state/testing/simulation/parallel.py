"""Exploring on several processes: each worker a fork of this one, running its share of a seeded
strategy's schedules (schedule ``i`` on worker ``i mod n``) against its own in-process AWS and
memo, and reporting each schedule it ran.

The report is the one a serial run would give: the failing schedules kept are the first
``max_failures`` *by index*, and a worker stops once its next schedule comes after the last of
them, so that every schedule up to it ran and none after it counts. Workers are forks (not
fresh interpreters) so that a scenario may be a closure, as tests' scenarios are; whatever a
scenario keeps outside AWS (a file, a module's global) is each worker's own copy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ...errors import InvalidArgument
from .world import SimulationError

__all__ = ["Ran", "Work", "explore_on"]

_ALL = 2**62
"""The bound while fewer failures than wanted are known: every schedule is wanted."""


@dataclass(frozen=True)
class Ran:
    """One schedule a worker ran: its index in the strategy's order, its steps, whether a
    reducing search stopped it as a repeat, and, when a check failed, its replay line and the
    failed check's exception (its type and message)."""

    index: int
    steps: int
    pruned: bool = False
    line: str | None = None
    error: str | None = None


Work = Callable[[int, Callable[[int], bool], Callable[[Ran], None]], None]
"""``work(worker, wanted, report)``: run worker ``worker``'s share of the schedules, in order,
asking ``wanted(index)`` before each and stopping at the first that is not, and ``report`` each."""


def explore_on(
    workers: int, work: Work, max_failures: int, seen: Callable[[Ran], None]
) -> list[Ran]:
    """Run ``work`` on ``workers`` forked processes; every schedule up to the bound, by index.

    ``seen`` is called in this process as each report arrives (for the caller's clock). A worker
    runs its schedules in order, so the parent knows which one each is running: one that raises,
    or dies, at schedule ``i`` is what a serial run would meet at ``i``, unless ``max_failures``
    failures come before it. Then it is ignored; otherwise it stops the others and is raised
    here: :class:`KeyboardInterrupt` and :class:`SystemExit` as themselves, anything else as
    :class:`SimulationError` naming the schedule. Workers still running a schedule past the
    bound (or stuck in one) are stopped, not waited for.
    """
    context = _fork_context()
    bound = context.RawValue("q", _ALL)
    reading: dict[Connection, int] = {}
    processes: list[Any] = []
    try:
        for worker in range(workers):
            _start(context, work, worker, bound, reading, processes)
        ran: list[Ran] = []
        failing: list[int] = []
        stopped: tuple[int, BaseException] | None = None
        # the schedule each worker runs now: its first, then each report's index + workers
        running = list(range(workers))
        while any(running[w] <= bound.value for w in reading.values()):
            for conn in wait(list(reading)):
                assert isinstance(conn, Connection)
                worker = reading[conn]
                try:
                    kind, body = conn.recv()
                except EOFError:
                    processes[worker].join(5)
                    kind, body = "died", processes[worker].exitcode
                if kind == "ran":
                    ran.append(body)
                    seen(body)
                    running[worker] = body.index + workers
                    if body.line is not None:
                        failing = sorted([*failing, body.index])
                        if len(failing) >= max_failures:
                            bound.value = min(bound.value, failing[max_failures - 1])
                    continue
                del reading[conn]
                conn.close()
                index, running[worker] = running[worker], _ALL
                if kind != "done" and index <= bound.value:
                    bound.value = index
                    stopped = (index, _raised(worker, index, kind, body))
        if stopped is not None and stopped[0] <= bound.value:
            raise stopped[1]
        return sorted((r for r in ran if r.index <= bound.value), key=lambda r: r.index)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
        for conn in reading:
            conn.close()


def _fork_context() -> Any:
    """The fork start method, or why workers cannot start here."""
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        raise InvalidArgument(
            "workers > 1 runs each worker as a fork of this process, and this platform has no "
            "fork: explore with workers=1"
        ) from None
    if multiprocessing.current_process().daemon:
        raise InvalidArgument(
            "this is a daemonic process (a multiprocessing.Pool worker, say), which may not start "
            "processes of its own: explore with workers=1 here"
        )
    return context


def _start(
    context: Any,
    work: Work,
    worker: int,
    bound: Any,
    reading: dict[Connection, int],
    processes: list[Any],
) -> None:
    """Fork worker ``worker``, keeping the reading end of its pipe in ``reading``."""
    mine, theirs = context.Pipe(duplex=False)
    process = context.Process(
        target=_worker,
        args=(work, worker, theirs, bound, [*reading, mine]),
        name=f"simulation worker {worker}",
        daemon=True,
    )
    process.start()
    theirs.close()
    reading[mine] = worker
    processes.append(process)


def _raised(worker: int, index: int, kind: str, body: Any) -> BaseException:
    """What serial exploration would have raised at schedule ``index``."""
    if kind == "died":
        return SimulationError(
            f"simulation worker {worker} died in schedule {index} without reporting it (exit "
            f"code {body}): explore with workers=1 to meet it in this process"
        )
    name, text, code = body
    if name == "KeyboardInterrupt":
        return KeyboardInterrupt()
    if name == "SystemExit":
        return SystemExit(code)
    return SimulationError(f"simulation worker {worker} failed in schedule {index}:\n{text}")


def _worker(
    work: Work, worker: int, conn: Connection, bound: Any, parents: list[Connection]
) -> None:
    """A worker's whole life (in the fork): its share, each schedule reported, then its end or
    the exception that stopped it (as text: what a scenario raises need not pickle). It first
    closes the reading ends it inherited, so that once the parent is gone a report fails (a
    broken pipe) and the worker ends, instead of running on and blocking on a full pipe."""
    for inherited in parents:
        inherited.close()
    try:
        work(worker, lambda index: index <= bound.value, lambda ran: conn.send(("ran", ran)))
        conn.send(("done", None))
    except BaseException as e:
        code = e.code if isinstance(e, SystemExit) else None
        with contextlib.suppress(OSError):
            conn.send(("error", (type(e).__name__, "".join(traceback.format_exception(e)), code)))
    finally:
        conn.close()
