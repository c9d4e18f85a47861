"""Your own handler under the deterministic simulation: the ``simulation`` pytest fixture.

``simulation.run(build, event)`` delivers ``event`` to the handler ``build(world)`` returns,
``deliveries`` times at once, and runs every schedule :mod:`stateless_state.testing.simulation`
can make of them: each interleaving at the handler's AWS requests and sleeps (up to one
preemption by default), with a crash and an ambiguous write at every step they apply to, and a
crashed delivery's event delivered again (30 virtual seconds on). After each schedule
``check(world)`` reads what was stored and fails by raising. A failure raises
:class:`~stateless_state.testing.simulation.SimulationFailed` whose message ends with the
``simulation.replay(...)`` call that runs that one schedule again: the same requests in the
same order.

::

    def test_charged_once(simulation):
        simulation.run(build_handler, {"order_id": "o-1"}, setup=tables, check=charged_once)

``build(world)`` makes the handler from clients of ``world.client(...)``: every AWS client the
handler uses must come from there (a client made elsewhere bypasses the simulation: its requests
are no steps, so no interleaving or fault reaches them). ``setup(world)``, run once, creates
tables, buckets and objects every schedule starts from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from .simulation import (
    Exhaustive,
    Exploration,
    Faults,
    Hypothesis,
    ReplayLine,
    Run,
    Scheduler,
    SimulationFailed,
    World,
    explore,
    replay,
)

__all__ = ["DEFAULT_FAULTS", "LAMBDA_TIMEOUT", "Simulation"]

Handler = Callable[[Any, Any], Any]
Build = Callable[[World], Handler]
Check = Callable[[World], Any]

DEFAULT_FAULTS = Faults(crash=1, ambiguous=1, redeliver_after=30.0)
"""The faults :meth:`Simulation.run` injects unless told otherwise: one crash (the delivery dies
at that step and its event is delivered again 30 virtual seconds later, as SQS's default
visibility timeout would: after the crashed delivery's claims and leases have ended) and one
ambiguous write (applied, its response lost, retried by botocore), each at every step it
applies to."""

LAMBDA_TIMEOUT = 30.0
"""Each delivery's Lambda timeout (virtual seconds): what its context's remaining time starts
from, so an ``@idempotent`` claim lasts at most this long and a redelivery
:data:`DEFAULT_FAULTS` sends 30 s after a crash finds the claim ended."""

_TAIL = 25  # steps of a failing schedule a message shows


def _scenario(build: Build, event: Any, deliveries: int, check: Check | None) -> Any:
    def scenario(world: World) -> None:
        handler = build(world)
        for i in range(deliveries):
            world.invoke(handler, event, name=f"delivery{i + 1}", timeout=LAMBDA_TIMEOUT)
        if check is not None:
            world.check(lambda: check(world))

    return scenario


def _name(fn: Callable[..., Any]) -> str:
    # the plain name: what a test module's own scope calls the function
    return str(getattr(fn, "__name__", repr(fn)))


def _steps(run: Run) -> str:
    shown = run.trace[-_TAIL:]
    head = f" (last {_TAIL} of {len(run.trace)})" if len(run.trace) > _TAIL else ""
    return f"  the schedule's steps{head}:\n" + "".join(f"    {s}\n" for s in shown)


class Simulation:
    """Runs a handler under every schedule of its concurrent deliveries; what the ``simulation``
    fixture gives a test. Holds no state between calls: each :meth:`run` starts from nothing
    (or from ``setup``)."""

    def run(
        self,
        build: Build,
        event: Any,
        deliveries: int = 2,
        setup: Callable[[World], Any] | None = None,
        check: Check | None = None,
        faults: Faults | None = None,
        strategy: Scheduler | Hypothesis | None = None,
        workers: int = 1,
    ) -> Exploration:
        """Deliver ``event`` ``deliveries`` times to ``build(world)``'s handler under the schedules
        of ``strategy`` (default: every schedule with at most one preemption,
        ``Exhaustive(preemptions=1)``) and ``faults`` (default :data:`DEFAULT_FAULTS`), running
        ``check(world)`` after each (without one, only the simulation's own errors fail: a
        handler that raises is an outcome, ``world.outcomes``, not a failure). ``workers`` > 1
        runs a ``RandomWalk`` or ``PCT`` on that many forked processes (see
        :func:`~stateless_state.testing.simulation.explore`).

        Returns what was explored when ``check`` held in every schedule (``finished``: the
        whole space under the bounds). Raises
        :class:`~stateless_state.testing.simulation.SimulationFailed` at the first schedule
        where it did not (or where an exception escaped ``check``), the message ending with the
        ``simulation.replay(...)`` call to paste; the exception's ``run`` is that schedule."""
        if deliveries < 1:
            raise InvalidArgument(f"deliveries must be >= 1, got {deliveries}")
        if strategy is None and isinstance(workers, int) and workers > 1:
            raise InvalidArgument(
                f"workers={workers!r} splits a RandomWalk or PCT between processes, and the "
                "default strategy is exhaustive: pass strategy=RandomWalk(...) or PCT(...)"
            )
        scenario = _scenario(build, event, deliveries, check)
        result = explore(
            scenario,
            strategy if strategy is not None else Exhaustive(preemptions=1),
            faults=faults if faults is not None else DEFAULT_FAULTS,
            setup=setup,
            workers=workers,
        )
        if not result.failures:
            return result
        failure = result.failures[0]
        call = self._call(build, event, failure.run.line, deliveries, setup, check)
        raise SimulationFailed(
            f"{type(failure.run.error).__name__}: {failure.run.error}\n"
            f"  {deliveries} deliveries of {event!r}, schedule {failure.schedules} of "
            f"{result.strategy} ({failure.elapsed:.1f} s)\n"
            f"{_steps(failure.run)}"
            f"  replay it (the same requests in the same order):\n"
            f"    {call}",
            failure.run,
        )

    def replay(
        self,
        build: Build,
        event: Any,
        line: str | ReplayLine,
        deliveries: int = 2,
        setup: Callable[[World], Any] | None = None,
        check: Check | None = None,
    ) -> Run:
        """Run the one schedule ``line`` names (as a failure of :meth:`run` printed it, with the
        same ``build``, ``event``, ``deliveries``, ``setup`` and ``check``): the same requests in
        the same order, so a debugger or a print in the handler sees the failing schedule.
        Raises :class:`~stateless_state.testing.simulation.SimulationFailed` (its ``run`` the
        schedule) when ``check`` fails again; returns the run when it holds. Against changed
        code the schedule may no longer exist: then it raises ``RuntimeError`` saying where it
        diverged."""
        run = replay(_scenario(build, event, deliveries, check), line, setup=setup)
        if run.error is not None:
            raise SimulationFailed(
                f"{type(run.error).__name__}: {run.error}\n  replayed {run.line}\n{_steps(run)}",
                run,
            )
        return run

    @staticmethod
    def _call(
        build: Build,
        event: Any,
        line: ReplayLine,
        deliveries: int,
        setup: Callable[[World], Any] | None,
        check: Check | None,
    ) -> str:
        args = [_name(build), repr(event), repr(str(line))]
        if deliveries != 2:
            args.append(f"deliveries={deliveries}")
        if setup is not None:
            args.append(f"setup={_name(setup)}")
        if check is not None:
            args.append(f"check={_name(check)}")
        return f"simulation.replay({', '.join(args)})"
