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
    failed check's exception type."""

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
    that raises, or dies without reporting its end, stops the others and raises
    :class:`SimulationError` with what happened.
    """
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:
        raise InvalidArgument(
            "workers > 1 runs each worker as a fork of this process, and this platform has no "
            "fork: explore with workers=1"
        ) from None
    bound = context.RawValue("q", _ALL)
    reading: dict[Connection, int] = {}
    processes: list[Any] = []
    try:
        for worker in range(workers):
            mine, theirs = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(work, worker, theirs, bound),
                name=f"simulation worker {worker}",
                daemon=True,
            )
            process.start()
            theirs.close()
            reading[mine] = worker
            processes.append(process)
        ran: list[Ran] = []
        failing: list[int] = []
        while reading:
            for conn in wait(list(reading)):
                assert isinstance(conn, Connection)
                worker = reading[conn]
                try:
                    kind, body = conn.recv()
                except EOFError:
                    processes[worker].join(5)
                    raise SimulationError(
                        f"simulation worker {worker} ended without reporting its end (exit code "
                        f"{processes[worker].exitcode})"
                    ) from None
                if kind == "done":
                    del reading[conn]
                    conn.close()
                elif kind == "ran":
                    ran.append(body)
                    seen(body)
                    if body.line is not None:
                        failing = sorted([*failing, body.index])
                        if len(failing) >= max_failures:
                            bound.value = failing[max_failures - 1]
                else:
                    raise SimulationError(f"simulation worker {worker} failed:\n{body}")
        return sorted((r for r in ran if r.index <= bound.value), key=lambda r: r.index)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
        for conn in reading:
            conn.close()


def _worker(work: Work, worker: int, conn: Connection, bound: Any) -> None:
    """A worker's whole life (in the fork): its share, each schedule reported, then its end or
    the exception that stopped it (as text: what a scenario raises need not pickle)."""
    try:
        work(worker, lambda index: index <= bound.value, lambda ran: conn.send(("ran", ran)))
        conn.send(("done", None))
    except BaseException as e:
        conn.send(("error", "".join(traceback.format_exception(e))))
    finally:
        conn.close()
