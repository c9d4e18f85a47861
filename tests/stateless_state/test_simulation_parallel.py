"""Exploring on several processes (``explore(..., workers=n)``): the report is a serial run's (a
random walk's schedules, steps and failures exactly), each failure is replayed in the caller's
process, and what goes wrong in a worker (a raise, a death, a failure that depends on the
process) stops the exploration with an error that says so."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from stateless_state import InvalidArgument
from stateless_state.testing import simulation as sim
from tests.stateless_state.test_simulation import TABLE, lost_update, setup

PARENT = os.getpid()
ROOT = Path(__file__).parents[2]


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
    with pytest.raises(
        sim.SimulationError, match=r"worker 0 failed in schedule 0:(.|\n)*itself is broken"
    ):
        sim.explore(broken, sim.RandomWalk(4), setup=setup, workers=2)


def test_a_worker_that_dies_is_reported() -> None:
    def dies(world: sim.World) -> None:
        if os.getpid() != PARENT:
            os._exit(3)  # as a worker killed by the OOM killer ends: no report, no cleanup

    with pytest.raises(sim.SimulationError, match=r"died in schedule \d without reporting.*code 3"):
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


def _fails_at_1_then(trouble: str) -> sim.Scenario:
    """Schedule 1's check fails, slowly (a second of real time, so that worker 0 is into
    schedule 2 before the parent knows); schedule 2, which a serial run with
    ``max_failures=1`` never reaches, raises, exits or hangs."""

    def scenario(world: sim.World) -> None:
        index = world.seed  # a RandomWalk of seed 0: schedule i's seed is i
        if index == 2 and trouble == "raise":
            raise RuntimeError("schedule 2's scenario is broken")
        world.invoke(lambda event, context: None, name="a")

        @world.check
        def check() -> None:
            if index == 1:
                time.sleep(1.0)
                raise AssertionError("schedule 1 fails")
            if index == 2 and trouble == "hang":
                while True:
                    time.sleep(1)
            if index == 2 and trouble == "exit":
                raise SystemExit(3)

    return scenario


@pytest.mark.parametrize("trouble", ["raise", "exit", "hang"])
def test_trouble_past_the_last_failure_wanted_is_not_met(trouble: str) -> None:
    """What goes wrong in a schedule after the ``max_failures``-th failure is what a serial run
    never meets: the report is the serial one, and a worker stuck there is stopped."""
    scenario = _fails_at_1_then(trouble)
    parallel = sim.explore(scenario, sim.RandomWalk(10), setup=setup, workers=2)
    assert [f.schedules for f in parallel.failures] == [2] and parallel.schedules == 2
    if trouble != "hang":
        assert _summary(parallel) == _summary(
            sim.explore(scenario, sim.RandomWalk(10), setup=setup)
        )


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_or_exit_in_a_worker_is_raised_as_itself(raised: type[BaseException]) -> None:
    def scenario(world: sim.World) -> None:
        world.invoke(lambda event, context: None, name="a")

        @world.check
        def check() -> None:
            raise raised()

    with pytest.raises(raised):
        sim.explore(scenario, sim.RandomWalk(4), setup=setup)
    with pytest.raises(raised):
        sim.explore(scenario, sim.RandomWalk(4), setup=setup, workers=2)


def test_a_replay_that_fails_with_another_message_is_an_error() -> None:
    """The worker's failure and the replay's must be the same exception with the same message:
    one that names the process (as a count of what this process ran would) is not the same
    failure here, and the report would show another than the one found."""

    def scenario(world: sim.World) -> None:
        world.invoke(lambda event, context: None, name="a")

        @world.check
        def check() -> None:
            raise AssertionError(f"failed in process {os.getpid()}")

    with pytest.raises(sim.SimulationError, match="replayed here with AssertionError: failed in"):
        sim.explore(scenario, sim.RandomWalk(4), setup=setup, workers=2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True])
def test_max_failures_is_a_whole_number_of_at_least_one(bad: Any) -> None:
    for workers in (1, 2):
        with pytest.raises(InvalidArgument, match="max_failures must be a whole number >= 1"):
            sim.explore(
                lost_update, sim.RandomWalk(4), setup=setup, max_failures=bad, workers=workers
            )


def test_workers_are_at_most_sixty_four_and_no_more_than_the_schedules() -> None:
    with pytest.raises(InvalidArgument, match="at most 64"):
        sim.explore(lost_update, sim.RandomWalk(2), setup=setup, workers=1_000_000)
    serial = sim.explore(lost_update, sim.RandomWalk(2, seed=1), setup=setup, max_failures=2)
    parallel = sim.explore(
        lost_update, sim.RandomWalk(2, seed=1), setup=setup, max_failures=2, workers=8
    )
    assert _summary(parallel) == _summary(serial)


def test_a_killed_parents_workers_end_instead_of_running_on() -> None:
    """A worker whose parent is SIGKILLed (a CI timeout) finds the pipe broken at its next
    report and ends; before, it ran on and blocked forever on the full pipe."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from stateless_state.testing import simulation as sim
        from tests.stateless_state.test_simulation import lost_update, setup
        sim.explore(lost_update, sim.RandomWalk(100_000), setup=setup, workers=2,
                    max_failures=100_000)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 120
        while len(_children(parent.pid)) < 2:
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
        workers = _children(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their parent"
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
