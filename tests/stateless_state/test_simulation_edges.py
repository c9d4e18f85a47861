"""The simulation at its edges, as an adversary tried it: code it cannot see (a client it did not
make, a thread of the handler's own), bodies that are streams, real instants leaking in (S3's
``LastModified``, a lease owner's host and PID), pauses and deadlines, TTL item by item, and
hostile use that must end in an error naming the fix, never a hang or a silent pass."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from stateless_state import Store, clock
from stateless_state.lease import default_owner
from stateless_state.testing import simulation as sim

TABLE = "edges"
KEY = {"pk": {"S": "k"}, "sk": {"S": "k"}}
BUCKET = "edges"


def setup(world: sim.World) -> None:
    Store(TABLE, client=world.client("dynamodb")).create_table()
    world.client("s3").create_bucket(Bucket=BUCKET)


def _read(client: Any, key: dict[str, Any] = KEY) -> dict[str, Any] | None:
    item: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key=key, ConsistentRead=True
    ).get("Item")
    return item


def _writer(client: Any) -> Any:
    return lambda event, context: client.put_item(TableName=TABLE, Item={**KEY, "n": {"N": "1"}})


# -- code the simulation cannot see --------------------------------------------------------------


@pytest.mark.parametrize("memoize", [True, False])
def test_a_client_the_world_did_not_make_is_refused_naming_world_client(memoize: bool) -> None:
    def scenario(world: sim.World) -> None:
        plain = boto3.client("dynamodb", region_name="us-east-1")

        def reader(event: Any, context: Any) -> None:
            # a handler that swallows the error must not hide it from the exploration
            with contextlib.suppress(Exception):
                _read(plain)

        world.invoke(reader, name="r")

    with pytest.raises(sim.SimulationError, match=r"world\.client"):
        sim.explore(scenario, sim.Exhaustive(), setup=setup, memoize=memoize)


def test_a_request_from_a_thread_of_the_handlers_own_is_refused() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def handler(event: Any, context: Any) -> None:
            worker = threading.Thread(target=lambda: _writer(client)(None, None))
            worker.start()
            worker.join()

        world.invoke(handler, name="t")

    with pytest.raises(sim.SimulationError, match="thread the simulation did not start"):
        sim.explore(scenario, sim.Exhaustive(), setup=setup)


@pytest.mark.parametrize("memoize", [True, False])
def test_streamed_bodies_are_told_apart_by_the_memo_and_the_trace(memoize: bool) -> None:
    def scenario(world: sim.World) -> None:
        s3 = world.client("s3")

        def handler(event: Any, context: Any) -> bytes:
            s3.put_object(Bucket=BUCKET, Key="k", Body=io.BytesIO(event))
            body: bytes = s3.get_object(Bucket=BUCKET, Key="k")["Body"].read()
            return body

        world.invoke(handler, b"A" * 8, name="a")
        world.invoke(handler, b"B" * 8, name="b")

        @world.check
        def each_reads_what_it_wrote() -> None:
            for outcome in world.outcomes:
                assert outcome.result == outcome.event, (outcome.name, outcome.result)

    found = sim.explore(scenario, sim.Exhaustive(preemptions=0), setup=setup, memoize=memoize)
    found.check()
    assert found.finished and found.schedules == 2
    run = sim.replay(scenario, "sim1:0:0:-:", setup=setup)
    puts = [digest for _, operation, digest in run.requests if operation == "PutObject"]
    assert len(puts) == 2 and puts[0] != puts[1]


def test_s3_stamps_last_modified_with_virtual_time() -> None:
    def scenario(world: sim.World) -> None:
        s3 = world.client("s3")

        def handler(event: Any, context: Any) -> float:
            clock.sleep(600)
            s3.put_object(Bucket=BUCKET, Key="late", Body=b"x")
            stamp: float = s3.head_object(Bucket=BUCKET, Key="late")["LastModified"].timestamp()
            return stamp

        world.invoke(handler, name="h")

        @world.check
        def stamped_in_the_schedules_time() -> None:
            assert abs(world.outcomes[0].result - (sim.EPOCH + 600)) < 2, world.outcomes[0]

    sim.explore(scenario, sim.Exhaustive(), setup=setup).check()


def test_a_lease_owner_under_the_simulation_names_the_invocation_not_the_host() -> None:
    def scenario(world: sim.World) -> None:
        world.invoke(lambda event, context: default_owner(), name="worker")

        @world.check
        def named() -> None:
            owner = world.outcomes[0].result
            assert owner.startswith("sim:worker:"), owner

    sim.explore(scenario, sim.Exhaustive(), setup=setup).check()
    assert not default_owner().startswith("sim:")


_DETERMINISM = """
import hashlib, json, sys
from stateless_state import Store
from stateless_state.testing import simulation as sim

def setup(world):
    Store("det", client=world.client("dynamodb")).create_table()

def scenario(world):
    store = Store("det", client=world.client("dynamodb"))
    lease = store.lease("job", duration=10)
    def holder(event, context):
        with lease.hold() as held:
            store.versioned("log").update(lambda v: (v or []) + [held.fence])
    for i in range(2):
        world.invoke(holder, name=f"h{i}")

found = sim.explore(scenario, sim.RandomWalk(15, seed=4), faults=sim.Faults.all(1), setup=setup,
                    max_failures=10**6)
print(found.schedules, found.steps)
"""


def test_two_fresh_processes_with_other_hash_seeds_explore_the_same_schedules(
    tmp_path: Path,
) -> None:
    script = tmp_path / "determinism.py"
    script.write_text(_DETERMINISM)
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path.cwd())}
        done = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and outputs[0].strip(), outputs


# -- pauses, deadlines, TTL ----------------------------------------------------------------------


def test_a_paused_invocation_carries_on_as_a_zombie_with_the_defaults() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def handler(event: Any, context: Any) -> None:
            _writer(client)(event, context)
            _writer(client)(event, context)

        world.invoke(handler, name="a")

        @world.check
        def no_request_after_a_pause() -> None:
            paused = [i for i, s in enumerate(world.trace) if s.action == "pause"]
            later = (
                [s for s in world.trace[paused[0] + 1 :] if s.kind == "request"] if paused else []
            )
            assert not later, "a zombie carried on"

    found = sim.explore(scenario, sim.Exhaustive(None), faults=sim.Faults(pause=1), setup=setup)
    assert found.failures, f"no schedule lets the paused invocation carry on: {found}"


def test_others_run_while_one_invocation_is_paused() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def handler(event: Any, context: Any) -> None:
            _read(client)
            _writer(client)(event, context)

        world.invoke(handler, name="a", redeliver=False)
        world.invoke(handler, name="b", timeout=30.0, redeliver=False)

        @world.check
        def b_never_finishes_while_a_is_paused() -> None:
            steps = [(s.invocation, s.action) for s in world.trace]
            if ("a", "pause") in steps:
                after = steps[steps.index(("a", "pause")) + 1 :]
                a_next = next((i for i, (who, _) in enumerate(after) if who == "a"), len(after))
                assert not any(who == "b" for who, _ in after[:a_next]), "b ran during a's pause"

    found = sim.explore(scenario, sim.Exhaustive(2), faults=sim.Faults(pause=1), setup=setup)
    assert found.failures, str(found)


def test_an_invocation_past_its_deadline_timed_out_whatever_it_did() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def overran(event: Any, context: Any) -> str:
            clock.sleep(60)
            return "returned"

        def swallowed(event: Any, context: Any) -> str:
            try:
                clock.sleep(60)
                client.list_tables()
            except BaseException:
                return "carried on"
            return "returned"

        world.invoke(overran, name="overran", timeout=30.0, redeliver=False)
        world.invoke(swallowed, name="swallowed", timeout=30.0, redeliver=False)

        @world.check
        def ended_by_lambda() -> None:
            for o in world.outcomes:
                assert o.status in ("timeout", "crashed") and o.result is None, o

    for faults in (sim.Faults(), sim.Faults(crash=1)):
        sim.explore(scenario, sim.Exhaustive(), faults=faults, setup=setup).check()


def test_ttl_may_delete_one_expired_item_and_keep_another() -> None:
    def ttl_setup(world: sim.World) -> None:
        setup(world)
        client = world.client("dynamodb")
        for name in "ab":
            item = {"pk": {"S": name}, "sk": {"S": "x"}, "ttl": {"N": str(int(sim.EPOCH) + 1)}}
            client.put_item(TableName=TABLE, Item=item)

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def handler(event: Any, context: Any) -> None:
            clock.sleep(5)
            _read(client)

        world.invoke(handler, name="h")

        @world.check
        def both_or_neither() -> None:
            kept = [_read(client, {"pk": {"S": n}, "sk": {"S": "x"}}) is not None for n in "ab"]
            assert kept[0] == kept[1], f"one deleted, one kept: {kept}"

    found = sim.explore(scenario, sim.Exhaustive(None), faults=sim.Faults(ttl=1), setup=ttl_setup)
    assert found.failures, str(found)
    again = sim.replay(scenario, str(found.failures[0].run.line), setup=ttl_setup)
    assert again.error is not None


def test_a_replay_line_keeps_every_digit_of_a_pause() -> None:
    faults = sim.Faults(pause=1, pause_for=1234.5678)
    line = sim.ReplayLine(0, (1, 2), 1, faults)
    assert sim.ReplayLine.parse(str(line)).faults.pause_for == 1234.5678


def test_duplicates_of_one_delivery_each_get_their_own_name() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def handler(event: Any, context: Any) -> None:
            for _ in range(3):
                _read(client)

        world.invoke(handler, name="h", redeliver=False)

        @world.check
        def distinct() -> None:
            names = [o.name for o in world.outcomes]
            assert len(names) == len(set(names)), names

    sim.explore(
        scenario,
        sim.RandomWalk(40, seed=1, fault_rate=0.5),
        faults=sim.Faults(duplicate=3),
        setup=setup,
    ).check()


def test_pct_hits_a_depth_two_bug_at_least_as_often_as_its_bound() -> None:
    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def reader(event: Any, context: Any) -> None:
            for _ in range(6):
                _read(client)

        world.invoke(reader, name="a")
        world.invoke(_writer(client), name="b")

        @world.check
        def not_between_the_third_and_fourth_read() -> None:
            reads = 0
            for s in world.trace:
                reads += s.invocation == "a" and s.kind == "request"
                assert not (s.invocation == "b" and s.kind == "request" and reads == 3)

    pct = sim.PCT(300, depth=2, seed=5)
    found = sim.explore(scenario, pct, setup=setup, max_failures=10**6)
    k = max(1, round(found.steps / found.schedules))
    assert len(found.failures) / found.schedules >= pct.bound(2, k), (len(found.failures), k)


# -- hostile use ---------------------------------------------------------------------------------


def test_hostile_use_ends_in_an_error_naming_the_fix() -> None:
    def never_ending(world: sim.World) -> None:
        client = world.client("dynamodb")
        world.invoke(lambda event, context: [_read(client) for _ in range(20)], name="h")

    with pytest.raises(sim.SimulationError, match="deliveries in one schedule"):
        sim.explore(
            never_ending,
            sim.RandomWalk(1, fault_rate=0.5),
            faults=sim.Faults(duplicate=10**9),
            setup=setup,
        )

    def invoke_in_a_check(world: sim.World) -> None:
        world.invoke(lambda event, context: None, name="x")
        world.check(lambda: world.invoke(lambda event, context: None, name="late"))

    with pytest.raises(sim.SimulationError, match="in the scenario itself"):
        sim.explore(invoke_in_a_check, sim.Exhaustive(), setup=setup)

    with pytest.raises(sim.SimulationError, match="registered no invocation"):
        sim.explore(lambda world: None, sim.Exhaustive(), setup=setup)

    async def coroutine(event: Any, context: Any) -> None:
        return None

    def one_argument(event: Any) -> None:
        return None

    bad: Any
    for bad in (coroutine, one_argument):

        def scenario(world: sim.World, handler: Any = bad) -> None:
            world.invoke(handler)

        with pytest.raises(sim.SimulationError, match="handler"):
            sim.explore(scenario, sim.Exhaustive(), setup=setup)

    strategy = sim.Exhaustive()
    sim.explore(lambda world: world.invoke(lambda e, c: None), strategy, setup=setup)
    with pytest.raises(sim.SimulationError, match="give each explore a new one"):
        sim.explore(lambda world: world.invoke(lambda e, c: None), strategy, setup=setup)


def test_a_check_failing_through_pytest_fail_still_gets_its_replay_line() -> None:
    def scenario(world: sim.World) -> None:
        world.invoke(lambda event, context: None, name="x")
        world.check(lambda: pytest.fail("the check failed"))

    found = sim.explore(scenario, sim.Exhaustive(), setup=setup)
    assert found.failures and "sim1:" in str(found.failures[0])


def test_keyboard_interrupt_in_a_handler_stops_the_exploration() -> None:
    def scenario(world: sim.World) -> None:
        def handler(event: Any, context: Any) -> None:
            raise KeyboardInterrupt

        world.invoke(handler, name="k")

    with pytest.raises(KeyboardInterrupt):
        sim.explore(scenario, sim.Exhaustive(), setup=setup)
