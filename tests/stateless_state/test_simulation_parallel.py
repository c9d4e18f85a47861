"""Exploring on several processes (``explore(..., workers=n)``): the report is a serial run's (a
random walk's schedules, steps and failures exactly), each failure is replayed in the caller's
process, and what goes wrong in a worker (a raise, a death, a failure that depends on the
process) stops the exploration with an error that says so."""

from __future__ import annotations

import os
from typing import Any

import pytest

from stateless_state import InvalidArgument
from stateless_state.testing import simulation as sim
from tests.stateless_state.test_simulation import TABLE, lost_update, setup

PARENT = os.getpid()


def _summary(result: sim.Exploration) -> tuple[Any, ...]:
    return (
        result.schedules,
        result.steps,
        [(f.schedules, str(f.run.line), str(f.run.error)) for f in result.failures],
    )


@pytest.mark.parametrize("workers", [2, 3])
def test_a_random_walk_on_workers_is_the_serial_walk(workers: int) -> None:
    serial = sim.explore(lost_update, sim.RandomWalk(40, seed=5), setup=setup, max_failures=4)
    assert len(serial.failures) == 4 and serial.schedules < 40, str(serial)
    parallel = sim.explore(
        lost_update, sim.RandomWalk(40, seed=5), setup=setup, max_failures=4, workers=workers
    )
    assert _summary(parallel) == _summary(serial)
    # the failures were rebuilt here, by replaying their lines
    first = parallel.failures[0]
    assert first.run.requests == sim.replay(lost_update, str(first.run.line), setup=setup).requests


def test_with_nothing_to_find_every_schedule_runs_once() -> None:
    def counted(world: sim.World) -> None:
        client = world.client("dynamodb")
        key = {"pk": {"S": "n"}, "sk": {"S": "n"}}

        def handler(event: Any, context: Any) -> None:
            client.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

        world.invoke(handler, name="a")
        world.invoke(handler, name="b")

    serial = sim.explore(counted, sim.RandomWalk(25, seed=1), setup=setup)
    parallel = sim.explore(counted, sim.RandomWalk(25, seed=1), setup=setup, workers=2)
    assert parallel.schedules == serial.schedules == 25
    assert parallel.steps == serial.steps and not parallel.failures


def test_pct_on_workers_finds_the_bug_and_explores_the_same_way_every_run() -> None:
    runs = [
        sim.explore(
            lost_update, sim.PCT(30, depth=2, seed=2), setup=setup, max_failures=3, workers=2
        )
        for _ in range(2)
    ]
    assert runs[0].failures, str(runs[0])
    assert _summary(runs[0]) == _summary(runs[1])


def test_strategies_that_cannot_be_split_and_bad_worker_counts_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="workers=1"):
        sim.explore(lost_update, sim.Exhaustive(preemptions=1), setup=setup, workers=2)
    with pytest.raises(InvalidArgument, match="workers=1"):
        sim.explore(lost_update, sim.Hypothesis(max_examples=5), setup=setup, workers=2)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidArgument, match="workers must be"):
            sim.explore(lost_update, sim.RandomWalk(2), setup=setup, workers=bad)  # type: ignore[arg-type]


def test_a_worker_that_raises_stops_the_exploration_with_its_traceback() -> None:
    def broken(world: sim.World) -> None:
        raise RuntimeError("the scenario itself is broken")

    with pytest.raises(RuntimeError, match="broken"):
        sim.explore(broken, sim.RandomWalk(4), setup=setup)
    with pytest.raises(sim.SimulationError, match=r"worker \d failed:(.|\n)*itself is broken"):
        sim.explore(broken, sim.RandomWalk(4), setup=setup, workers=2)


def test_a_worker_that_dies_is_reported() -> None:
    def dies(world: sim.World) -> None:
        if os.getpid() != PARENT:
            os._exit(3)  # as a worker killed by the OOM killer ends: no report, no cleanup

    with pytest.raises(sim.SimulationError, match=r"ended without reporting.*exit code 3"):
        sim.explore(dies, sim.RandomWalk(4), setup=setup, workers=2)


def test_a_failure_only_a_worker_sees_is_not_reported_as_a_schedule() -> None:
    """A check that reads the process (here its pid; in real scenarios a file or a global)
    fails in the workers and holds in the replay: the run is not the schedule's."""

    def depends_on_the_process(world: sim.World) -> None:
        world.invoke(lambda event, context: None, name="a")

        @world.check
        def only_here() -> None:
            assert os.getpid() == PARENT, "ran in a worker"

    with pytest.raises(sim.SimulationError, match="replayed here without failing"):
        sim.explore(depends_on_the_process, sim.RandomWalk(4), setup=setup, workers=2)
