"""The deterministic simulation: exhaustive search finds a planted lost update, replays a failure
to the same request trace, and runs virtual time for free. (The primitives' protocols, the
counter with tokens among them, are scenarios of ``tests/support/sim_primitives.py``, run by
``test_simulated_primitives.py``.)"""

from __future__ import annotations

import time
from typing import Any

from stateless_state import LeaseUnavailable, Store, clock
from stateless_state.testing import simulation as sim
from stateless_state.testing.simulation.schedule import decode, encode

TABLE = "state"


def setup(world: sim.World) -> None:
    Store(TABLE, client=world.client("dynamodb")).create_table()


def lost_update(world: sim.World) -> None:
    """A planted bug: read, add, write back, with no condition on what was read."""
    client = world.client("dynamodb")
    key = {"pk": {"S": "planted"}, "sk": {"S": "n"}}

    def handler(event: Any, context: Any) -> None:
        item = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")
        n = int(item["n"]["N"]) if item else 0
        client.put_item(TableName=TABLE, Item={**key, "n": {"N": str(n + 1)}})

    world.invoke(handler, name="a")
    world.invoke(handler, name="b")

    @world.check
    def both_counted() -> None:
        item = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        assert item["n"]["N"] == "2", f"lost update: n = {item['n']['N']}"


def test_exhaustive_search_finds_a_lost_update_and_its_line_replays_the_same_requests() -> None:
    result = sim.explore(lost_update, sim.Exhaustive(preemptions=1), setup=setup)
    assert result.failures, str(result)
    failure = result.failures[0]
    assert "lost update" in str(failure.run.error)
    again = sim.replay(lost_update, str(failure.run.line), setup=setup)
    assert again.requests == failure.run.requests
    assert [(s.invocation, s.operation, s.action) for s in again.trace] == [
        (s.invocation, s.operation, s.action) for s in failure.run.trace
    ]
    assert str(again.error) == str(failure.run.error)
    assert "sim1:" in str(failure) and "replay" in str(failure)


def test_random_walks_and_pct_find_it_and_hypothesis_shrinks_it() -> None:
    for strategy in (sim.RandomWalk(50, seed=3), sim.PCT(50, depth=2, seed=3)):
        assert sim.explore(lost_update, strategy, setup=setup).failures, strategy
    shrunk = sim.explore(lost_update, sim.Hypothesis(max_examples=50), setup=setup)
    assert shrunk.failures
    # shrunk to at most two departures from the sequential run: who starts, and the one
    # preemption between a read and its write
    assert sum(1 for c in shrunk.failures[0].run.line.choices if c) <= 2


def test_a_zombie_pause_lets_a_lease_expire_without_wall_time() -> None:
    def scenario(world: sim.World) -> None:
        lease = Store(TABLE, client=world.client("dynamodb")).lease("job", duration=30)
        taken: list[int] = []

        def hold(event: Any, context: Any) -> None:
            try:
                held = lease.acquire()
            except LeaseUnavailable:
                return
            taken.append(held.fence)
            held.release()

        world.invoke(hold, name="first")
        world.invoke(hold, name="second")
        world.check(lambda: None)

    started = time.perf_counter()
    result = sim.explore(
        scenario,
        sim.Exhaustive(preemptions=1),
        faults=sim.Faults(pause=1, pause_for=45),
        setup=setup,
    )
    result.check()
    assert result.finished
    assert time.perf_counter() - started < 60  # hundreds of 45 s pauses, virtual


def test_schedules_encode_compactly_and_round_trip() -> None:
    for choices in ([], [0] * 40, [0, 1, 35, 36, 200, 0, 0, 0, 0, 0, 2]):
        assert decode(encode(choices)) == choices
    line = sim.ReplayLine(7, (0, 0, 3), 2, sim.Faults(crash=1, pause_for=12.5, redeliver_after=30))
    assert sim.ReplayLine.parse(str(line)) == line


def memo_setup(world: sim.World) -> None:
    setup(world)
    world.client("s3").create_bucket(Bucket="sim-bucket")
    world.client("dynamodb").put_item(
        TableName=TABLE,
        Item={"pk": {"S": "old"}, "sk": {"S": "x"}, "ttl": {"N": str(int(sim.EPOCH) - 1)}},
    )


def memo_probe(seen: list[Any]) -> Any:
    """Transactions with botocore's idempotency tokens, S3 bodies, an expired item: what the
    memo must answer exactly as moto would."""

    def scenario(world: sim.World) -> None:
        s3 = world.client("s3")
        ddb = world.client("dynamodb")
        counter = Store(TABLE, client=ddb).counter("hits")

        def handler(event: Any, context: Any) -> bytes:
            counter.add(1, token=event)
            s3.put_object(Bucket="sim-bucket", Key=event, Body=f"body of {event}".encode())
            body: bytes = s3.get_object(Bucket="sim-bucket", Key=event)["Body"].read()
            return body

        world.invoke(handler, "e1", name="a")
        world.invoke(handler, "e2", name="b")

        @world.check
        def record() -> None:
            old = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "old"}, "sk": {"S": "x"}})
            seen.append(
                (
                    [(s.invocation, s.operation, s.digest, s.action) for s in world.trace],
                    [(o.name, o.status, o.result) for o in world.outcomes],
                    counter.get(),
                    "Item" in old,
                )
            )

    return scenario


def test_answers_from_memory_are_what_moto_answers_and_replays_send_the_same_bytes() -> None:
    runs: dict[bool, list[Any]] = {True: [], False: []}
    for memoize in (True, False):
        result = sim.explore(
            memo_probe(runs[memoize]),
            sim.Exhaustive(preemptions=1, max_schedules=250),
            faults=sim.Faults(crash=1, ambiguous=1, ttl=1),
            setup=memo_setup,
            memoize=memoize,
        )
        result.check()
    assert len(runs[True]) == 250
    assert runs[True] == runs[False]
    # two explorations sent the same bytes, transactions included: their ClientRequestToken
    # comes from the invocation's clock, not botocore's uuid4
    assert any(op == "TransactWriteItems" for trace, *_ in runs[True] for _, op, _, _ in trace)
    assert {o for _, outcomes, _, _ in runs[True] for _, o, _ in outcomes} >= {"ok", "crashed"}
    assert {kept for *_, kept in runs[True]} == {True, False}  # TTL deleted it, or never


def _replays(scenario: sim.Scenario, result: sim.Exploration, setup_: sim.Scenario) -> None:
    assert result.failures, str(result)
    failure = result.failures[0]
    again = sim.replay(scenario, str(failure.run.line), setup=setup_)
    assert again.error is not None, f"{failure.run.line} did not reproduce the failure"
    assert again.requests == failure.run.requests
    assert [s.action for s in again.trace] == [s.action for s in failure.run.trace]


def appended_in_order(world: sim.World) -> None:
    """Three read-then-append invocations with no preemption: each runs alone to its end, so
    every step but the choice of who starts next is forced."""
    client = world.client("dynamodb")
    key = {"pk": {"S": "planted"}, "sk": {"S": "order"}}

    def handler(event: Any, context: Any) -> None:
        item = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")
        seen = item["order"]["S"] if item else ""
        client.put_item(TableName=TABLE, Item={**key, "order": {"S": seen + event}})

    for name in "abc":
        world.invoke(handler, name, name=name)

    @world.check
    def not_cba() -> None:
        item = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        assert item["order"]["S"] != "cba", item


def test_a_line_replays_when_forced_steps_come_before_a_choice() -> None:
    _replays(
        appended_in_order, sim.explore(appended_in_order, sim.Exhaustive(0), setup=setup), setup
    )
    shrunk = sim.explore(appended_in_order, sim.Hypothesis(200, preemptions=0), setup=setup)
    _replays(appended_in_order, shrunk, setup)


def expiring(world: sim.World) -> None:
    """One invocation: every step before its item expires is forced; the first after it may
    be TTL's deletion."""
    client = world.client("dynamodb")
    key = {"pk": {"S": "planted"}, "sk": {"S": "ttl"}}

    def handler(event: Any, context: Any) -> None:
        ttl = str(int(clock.now()) + 1)
        client.put_item(TableName=TABLE, Item={**key, "ttl": {"N": ttl}})
        clock.sleep(5)
        client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)

    world.invoke(handler, name="h")

    @world.check
    def kept() -> None:
        assert "Item" in client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)


def test_a_ttl_deletion_replays() -> None:
    result = sim.explore(expiring, sim.Exhaustive(None), faults=sim.Faults(ttl=1), setup=setup)
    _replays(expiring, result, setup)


def test_a_line_replays_a_fault_chosen_after_a_step_that_had_no_choice() -> None:
    """Under a preemption bound of 0 a read has one option (no fault applies to it) and the
    write after it two (run, or the ambiguous write): the line must say which step each choice
    was made at, or its replay takes the ambiguous write's choice for the read's."""

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        key = {"pk": {"S": "forced"}, "sk": {"S": "x"}}

        def handler(event: Any, context: Any) -> None:
            client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
            client.put_item(TableName=TABLE, Item=key)

        world.invoke(handler, name="a")

        @world.check
        def never_ambiguous() -> None:
            assert "ambiguous" not in [s.action for s in world.trace], "an ambiguous write"

    result = sim.explore(
        scenario, sim.Exhaustive(preemptions=0), faults=sim.Faults(ambiguous=1), setup=setup
    )
    assert result.failures, str(result)
    failure = result.failures[0].run
    again = sim.replay(scenario, str(failure.line), setup=setup)
    assert [(s.operation, s.action) for s in again.trace] == [
        (s.operation, s.action) for s in failure.trace
    ]
    assert str(again.error) == str(failure.error)
