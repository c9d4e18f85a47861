"""The ``simulation`` fixture as a user meets it: a correct idempotent handler holds in every
schedule of two deliveries with a crash and an ambiguous write; a racy one (it reads the order,
then writes without a condition on what it read) is found, and the ``simulation.replay(...)``
call its failure ends with, pasted as it is, reproduces the same request trace."""

from __future__ import annotations

from typing import Any

import pytest

from stateless_state import InvalidArgument, Store, commit_with_completion, idempotent
from stateless_state.testing import Simulation, SimulationFailed
from stateless_state.testing.simulate import DEFAULT_FAULTS
from stateless_state.testing.simulation import Exhaustive, Faults, RandomWalk, ReplayLine, World

TABLE = "shop"
EVENT = {"order_id": "o-1", "amount": 5}


def tables(world: World) -> None:
    Store(TABLE, client=world.client("dynamodb")).create_table()


def charge_once(world: World) -> Any:
    """Charged with the order id as the counter's token: once per token, whatever repeats."""
    revenue = Store(TABLE, client=world.client("dynamodb")).counter("revenue")

    def handler(event: dict[str, Any], context: Any) -> int:
        return revenue.add(event["amount"], token=event["order_id"], context=context).value

    return handler


def charge_with_completion(world: World) -> Any:
    """``@idempotent``, the charge committed in the completion's transaction."""
    store = Store(TABLE, client=world.client("dynamodb"))

    @idempotent(store, key="order_id")
    def handler(event: dict[str, Any], context: Any) -> dict[str, bool]:
        commit_with_completion(
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "revenue"}, "sk": {"S": "total"}},
                    "UpdateExpression": "ADD v :n",
                    "ExpressionAttributeValues": {":n": {"N": str(event["amount"])}},
                }
            }
        )
        return {"charged": True}

    return handler


def completed_once(world: World) -> None:
    """Charged exactly once, and every delivery that returned was told so."""
    client = world.client("dynamodb")
    key = {"pk": {"S": "revenue"}, "sk": {"S": "total"}}
    item = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")
    revenue = int(item["v"]["N"]) if item else 0
    assert revenue == EVENT["amount"], (revenue, world.outcomes)
    assert all(o.result == {"charged": True} for o in world.outcomes if o.status == "ok")


def charge_racy(world: World) -> Any:
    """Reads whether the order was charged, then charges and marks it: no condition."""
    client = world.client("dynamodb")
    revenue = Store(TABLE, client=client).counter("revenue")

    def handler(event: dict[str, Any], context: Any) -> None:
        key = {"pk": {"S": f"order#{event['order_id']}"}, "sk": {"S": "charged"}}
        if "Item" not in client.get_item(TableName=TABLE, Key=key, ConsistentRead=True):
            revenue.add(event["amount"])
            client.put_item(TableName=TABLE, Item=key)

    return handler


def charged_once(world: World) -> None:
    revenue = Store(TABLE, client=world.client("dynamodb")).counter("revenue").get()
    assert revenue == EVENT["amount"], f"charged {revenue}, not {EVENT['amount']}"


def test_the_fixture_is_a_simulation(simulation: Simulation) -> None:
    assert isinstance(simulation, Simulation)


def test_a_correct_handler_holds_over_the_whole_space(simulation: Simulation) -> None:
    result = simulation.run(charge_once, EVENT, setup=tables, check=charged_once)
    assert result.finished, str(result)
    assert result.failures == []
    # two deliveries, each a claim, a transaction and a completion, with the crash and the
    # ambiguous write at every step: far more than the handful of sequential orders
    assert result.schedules > 100, str(result)


@pytest.mark.parametrize(
    "faults",
    [Faults(crash=1, redeliver_after=30.0), Faults(ambiguous=1)],
    ids=["crash", "ambiguous"],
)
def test_an_idempotent_handler_with_its_write_in_the_completion_holds_too(
    simulation: Simulation, faults: Faults
) -> None:
    """One fault kind at a time keeps it to a few seconds (both at once, the default, the whole
    space holds too: 390 schedules, about 13 s). A crashed delivery's claim lives until its
    lease ends; its event, delivered again after that (SQS's visibility timeout), takes the
    claim over."""
    result = simulation.run(
        charge_with_completion, EVENT, setup=tables, check=completed_once, faults=faults
    )
    assert result.finished and result.schedules > 50, str(result)


def test_a_redelivery_sooner_than_the_crashed_claims_lease_only_meets_it(
    simulation: Simulation,
) -> None:
    """Why the fixture redelivers 30 s later: delivered again at once, the event meets the
    crashed delivery's claim (``AlreadyInProgress``) until its redeliveries run out."""
    with pytest.raises(SimulationFailed) as found:
        simulation.run(
            charge_with_completion,
            EVENT,
            setup=tables,
            check=completed_once,
            faults=Faults(crash=1, redeliver_after=0.0),
        )
    run = found.value.run
    assert run is not None
    assert "crashed" in {o.status for o in run.outcomes}
    assert all(o.status != "ok" for o in run.outcomes)
    assert any("being processed by another invocation" in str(o.error) for o in run.outcomes)


def test_a_racy_handler_is_found_and_its_pasted_replay_reproduces_it(
    simulation: Simulation,
) -> None:
    with pytest.raises(SimulationFailed) as found:
        simulation.run(charge_racy, EVENT, setup=tables, check=charged_once)
    message = str(found.value)
    assert message.startswith("AssertionError: charged 10, not 5"), message
    last = message.splitlines()[-1].strip()
    assert last.startswith("simulation.replay(charge_racy, {'order_id': 'o-1', 'amount': 5}, ")
    assert last.endswith(", setup=tables, check=charged_once)"), last
    failed = found.value.run
    assert failed is not None and failed.requests

    # pasted as printed: the same requests, in the same order, and the same check failing
    with pytest.raises(SimulationFailed) as again:
        eval(last, {"simulation": simulation, **globals()})
    replayed = again.value.run
    assert replayed is not None
    assert replayed.requests == failed.requests
    assert str(replayed.error) == str(failed.error)


def test_on_two_workers_the_racy_handler_is_found_at_the_same_schedule(
    simulation: Simulation,
) -> None:
    found = []
    for workers in (1, 2):
        with pytest.raises(SimulationFailed) as failed:
            simulation.run(
                charge_racy,
                EVENT,
                setup=tables,
                check=charged_once,
                strategy=RandomWalk(60, seed=3),
                workers=workers,
            )
        assert failed.value.run is not None
        found.append((failed.value.run.line, failed.value.run.requests))
    assert found[0] == found[1]


def test_workers_without_a_strategy_say_to_name_one(simulation: Simulation) -> None:
    """The default strategy is exhaustive, which cannot be split: the error names the fix
    rather than an Exhaustive the caller never wrote; a bad count is refused as such."""
    with pytest.raises(InvalidArgument, match=r"default strategy is exhaustive: pass strategy="):
        simulation.run(charge_racy, EVENT, setup=tables, check=charged_once, workers=2)
    with pytest.raises(InvalidArgument, match="workers must be a whole number >= 1, got 0"):
        simulation.run(charge_racy, EVENT, setup=tables, check=charged_once, workers=0)


def test_a_replay_of_a_schedule_that_holds_returns_it(simulation: Simulation) -> None:
    """The line of a racy schedule, replayed against the correct handler's scenario, is one
    sequential schedule there too: it holds, so replay returns the run instead of raising."""
    line = ReplayLine(0, (), 1, DEFAULT_FAULTS)  # all zeros: one delivery, then the other
    run = simulation.replay(charge_once, EVENT, line, setup=tables, check=charged_once)
    assert run.error is None
    assert [o.status for o in run.outcomes] == ["ok", "ok"]


def test_a_preemption_bound_of_zero_misses_the_race_but_not_the_crash(
    simulation: Simulation,
) -> None:
    """Without preemptions the two reads never interleave; the crash between the charge and
    its mark still charges twice (the redelivery reads no mark)."""
    with pytest.raises(SimulationFailed) as found:
        simulation.run(
            charge_racy,
            EVENT,
            setup=tables,
            check=charged_once,
            faults=Faults(crash=1),
            strategy=Exhaustive(0),
        )
    assert found.value.run is not None
    assert any(s.action == "crashed" for s in found.value.run.trace)
