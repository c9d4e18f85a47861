"""The engine's watchdog (``world.WATCHDOG``) and what keeps a long exploration from tripping it.

An invocation that never reaches its next step is either blocked (a lock another invocation holds
across a step, a real sleep: next to no CPU) or busy (a loop that neither sends a request nor
sleeps on the clock: all CPU); either is refused naming which, where the thread is and the replay
line of the schedule so far. A step that is only slow (a loaded machine: some CPU in every
period) is waited for. And moto's record of every model object it ever made is emptied between
schedules, so that a long exploration's heap, and the garbage collector's pauses with it, do not
grow with the schedules run (issue 25: ``batcher.pipeline`` under its full bounds died after 74
minutes on the watchdog, in a full collection walking millions of deep copies)."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import pytest

from stateless_state import Store, clock
from stateless_state.testing import simulation as sim
from stateless_state.testing.simulation import world as engine

TABLE = "watchdog"


def setup(world: sim.World) -> None:
    Store(TABLE, client=world.client("dynamodb")).create_table()


def _put(client: Any, n: int) -> None:
    client.put_item(TableName=TABLE, Item={"pk": {"S": "k"}, "sk": {"S": "k"}, "n": {"N": str(n)}})


def _write(client: Any, n: int, event: Any, context: Any) -> None:
    _put(client, n)


@pytest.fixture
def short_watchdog(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(engine, "WATCHDOG", 0.25)
    monkeypatch.setattr(engine, "WATCHDOG_WALL", 5.0)
    return 0.25


def test_an_invocation_blocked_on_a_lock_held_across_a_step_is_named_with_where_and_its_line(
    short_watchdog: float,
) -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        lock = threading.Lock()  # the schedule's own: a stuck one's threads keep theirs

        def holder(event: Any, context: Any) -> None:
            with lock:
                _put(client, 1)  # a step while holding the lock: another may run here

        def waiter(event: Any, context: Any) -> None:
            with lock:
                _put(client, 2)

        world.invoke(holder, name="holder")
        world.invoke(waiter, name="waiter")

    with pytest.raises(sim.SimulationError) as raised:
        sim.explore(scenario, sim.Exhaustive(preemptions=1), setup=setup)
    message = str(raised.value)
    assert "invocation 'waiter' is blocked" in message, message
    assert "with lock:" in message, message  # where it is stuck
    line = next(w for w in message.split() if w.startswith("sim1:"))
    # the line reaches the same point again
    with pytest.raises(sim.SimulationError, match="invocation 'waiter' is blocked"):
        sim.replay(scenario, line, setup=setup)


def test_an_invocation_busy_on_the_virtual_clock_without_a_step_is_named_busy(
    short_watchdog: float,
) -> None:
    stop = threading.Event()

    def scenario(world: sim.World) -> None:
        def spin(event: Any, context: Any) -> None:
            until = clock.monotonic() + 1.0  # virtual time moves only at steps: never
            while clock.monotonic() < until and not stop.is_set():
                pass

        world.invoke(spin, name="spin")

    try:
        with pytest.raises(sim.SimulationError) as raised:
            sim.explore(scenario, sim.Exhaustive(), setup=setup)
    finally:
        stop.set()
    message = str(raised.value)
    assert "invocation 'spin' is busy" in message, message
    assert "neither sends a request nor sleeps" in message, message


def test_a_step_slow_for_lack_of_cpu_is_waited_for(short_watchdog: float) -> None:
    """A thread that gets a tenth of a core (a loaded machine) takes four watchdog periods of
    wall time to its next step, using CPU in each: not stuck."""

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def starved(event: Any, context: Any) -> None:
            ends = time.monotonic() + 4 * short_watchdog
            while time.monotonic() < ends:
                burst = time.thread_time() + 0.002
                while time.thread_time() < burst:
                    pass
                time.sleep(0.018)
            _put(client, 1)

        world.invoke(starved, name="starved")

    assert sim.explore(scenario, sim.Exhaustive(), setup=setup).check().schedules == 1


@pytest.mark.parametrize("memoize", [True, False])
def test_moto_keeps_no_model_object_of_an_earlier_schedule(memoize: bool) -> None:
    from moto.dynamodb.models.table import Table

    tracked: list[int] = []

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        for n in range(2):
            world.invoke(partial(_write, client, n), name=f"w{n}")
        world.check(lambda: tracked.append(len(Table.instances_tracked)))  # type: ignore[attr-defined]

    result = sim.explore(scenario, sim.Exhaustive(preemptions=2), setup=setup, memoize=memoize)
    assert result.check().schedules >= 4 and len(tracked) == result.schedules
    # each schedule's own copies, not every earlier schedule's too
    assert max(tracked) <= tracked[0] + 2, tracked
