"""What moto leaves out and the simulation models, checked against DynamoDB Local.

``ClientRequestToken``: the same sequences of ``TransactWriteItems`` (a repeat, a mismatch, a
repeat after the items changed, a token after a cancelled transaction, ...) go to DynamoDB Local
and to the simulation's backend; the answers (success, or the error code with its cancellation
reasons) and the items left agree sequence by sequence, while plain moto's do not. DynamoDB
Local remembers a token across tables, so each sequence has its own tokens there.

TTL: under every schedule the simulation never deletes an item before its ``ttl`` and, in some
schedules, does after it (and in others never does: both are DynamoDB's promise).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stateless_state import clock
from stateless_state.testing import DynamoDBLocal, FaultInjector
from stateless_state.testing import simulation as sim

Items = list[dict[str, Any]]


@dataclass(frozen=True)
class Send:
    """One ``TransactWriteItems``: its actions (built for a table) and its token's label."""

    actions: Callable[[str], Items]
    token: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


def put_new(pk: str, **attributes: str) -> Callable[[str], Items]:
    """A Put conditional on the item not existing."""

    def build(table: str) -> Items:
        item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attributes.items()}}
        return [
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]

    return build


def add(n: int, pk: str = "n") -> Callable[[str], Items]:
    """An unconditional ``ADD x :n``: applied twice, it shows."""

    def build(table: str) -> Items:
        return [
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": pk}},
                    "UpdateExpression": "ADD x :n",
                    "ExpressionAttributeValues": {":n": {"N": str(n)}},
                }
            }
        ]

    return build


def delete(pk: str) -> Callable[[str], Items]:
    def build(table: str) -> Items:
        return [{"Delete": {"TableName": table, "Key": {"pk": {"S": pk}}}}]

    return build


def reordered(table: str) -> Items:
    """``put_new("a", v="1", w="2")`` with its members written in another order."""
    item = {"w": {"S": "2"}, "v": {"S": "1"}, "pk": {"S": "a"}}
    return [
        {
            "Put": {
                "ConditionExpression": "attribute_not_exists(pk)",
                "Item": item,
                "TableName": table,
            }
        }
    ]


def both(*parts: Callable[[str], Items]) -> Callable[[str], Items]:
    return lambda table: [action for part in parts for action in part(table)]


SEQUENCES: dict[str, list[Send]] = {
    "a repeat succeeds without applying again": [
        Send(put_new("a"), "A"),
        Send(put_new("a"), "A"),
    ],
    "a repeat is not applied twice": [
        Send(add(1), "A"),
        Send(add(1), "A"),
        Send(add(1), "A"),
    ],
    "the same token with other parameters is a mismatch": [
        Send(put_new("a"), "A"),
        Send(put_new("b"), "A"),
        Send(add(2), "A"),
    ],
    "a repeat after success still succeeds when its condition no longer holds": [
        Send(put_new("a", v="1"), "A"),
        Send(delete("a"), "B"),
        Send(put_new("a", v="1"), "A"),
        Send(put_new("a", v="1"), "A"),
    ],
    "a cancelled transaction does not bind its token": [
        Send(put_new("a"), "A"),
        Send(put_new("a"), "B"),
        Send(put_new("a"), "B"),
        Send(put_new("c"), "B"),
        Send(put_new("a"), "B"),
        Send(put_new("c"), "B"),
    ],
    "actions in another order are other parameters": [
        Send(both(add(1, "p"), add(1, "q")), "A"),
        Send(both(add(1, "q"), add(1, "p")), "A"),
        Send(both(add(1, "p"), add(1, "q")), "A"),
    ],
    "the same request with its members in another order is a repeat": [
        Send(put_new("a", v="1", w="2"), "A"),
        Send(reordered, "A"),
    ],
    "asking for the consumed capacity is not another request": [
        Send(add(1), "A", (("ReturnConsumedCapacity", "TOTAL"),)),
        Send(add(1), "A"),
        Send(add(1), "A", (("ReturnConsumedCapacity", "INDEXES"),)),
        Send(add(1), "A", (("ReturnItemCollectionMetrics", "SIZE"),)),
    ],
    "without a token every transaction is new": [
        Send(put_new("a")),
        Send(put_new("a")),
        Send(add(1)),
        Send(add(1)),
    ],
}


def answer(client: Any, request: dict[str, Any]) -> str:
    """``ok``, or the error code (with a cancellation's reasons)."""
    try:
        client.transact_write_items(**request)
    except ClientError as e:
        code = str(e.response["Error"]["Code"])
        reasons = [r.get("Code", "") for r in e.response.get("CancellationReasons", [])]
        return f"{code}{reasons}" if reasons else code
    return "ok"


def play(client: Any, table: str, sequence: list[Send], tokens: str) -> tuple[list[str], Items]:
    """Send ``sequence`` to ``table`` (tokens prefixed ``tokens``); the answers and the items
    left, sorted."""
    answers: list[str] = []
    for send in sequence:
        kwargs: dict[str, Any] = {"TransactItems": send.actions(table), **dict(send.extra)}
        if send.token is not None:
            kwargs["ClientRequestToken"] = f"{tokens}-{send.token}"
        answers.append(answer(client, kwargs))
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return answers, sorted(items, key=lambda i: str(i["pk"]["S"]))


def create(client: Any, table: str) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def on_dynamodb_local(engine: DynamoDBLocal, sequence: list[Send]) -> tuple[list[str], Items]:
    client = engine.client()
    fresh = uuid.uuid4().hex[:12]  # DynamoDB Local remembers tokens across tables and tests
    table = f"tokens-{fresh}"
    create(client, table)
    try:
        return play(client, table, sequence, fresh)
    finally:
        client.delete_table(TableName=table)


def on_the_simulation(sequence: list[Send]) -> tuple[list[str], Items]:
    """Sent by one simulated invocation (so each request is a step, through the backend's token
    model), one schedule, no faults."""
    seen: list[tuple[list[str], Items]] = []

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        create(client, "tokens")
        world.invoke(lambda event, context: seen.append(play(client, "tokens", sequence, "t")))

    result = sim.explore(scenario, sim.Exhaustive(preemptions=0))
    assert result.finished and result.schedules == 1, str(result)
    return seen[0]


def on_moto(sequence: list[Send]) -> tuple[list[str], Items]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.session.Session(
            aws_access_key_id="moto", aws_secret_access_key="moto", region_name="us-east-1"
        ).client("dynamodb")
        create(client, "tokens")
        return play(client, "tokens", sequence, "t")


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_the_simulation_answers_tokens_as_dynamodb_local_does(
    dynamodb_local: DynamoDBLocal, name: str
) -> None:
    sequence = SEQUENCES[name]
    assert on_the_simulation(sequence) == on_dynamodb_local(dynamodb_local, sequence)


def test_plain_moto_ignores_the_token_so_the_agreement_has_teeth(
    dynamodb_local: DynamoDBLocal,
) -> None:
    differ = {
        name
        for name, sequence in SEQUENCES.items()
        if on_moto(sequence) != on_dynamodb_local(dynamodb_local, sequence)
    }
    # only where no token is sent do moto and DynamoDB agree
    assert differ == set(SEQUENCES) - {"without a token every transaction is new"}


def test_an_ambiguous_transaction_retried_by_botocore_applies_once(
    dynamodb_local: DynamoDBLocal,
) -> None:
    """The case the model is for: botocore fills ``ClientRequestToken`` itself and reuses it on
    its retries, so a transaction whose answer was lost is not applied again, on DynamoDB Local
    and in the simulation alike (plain moto would apply each attempt)."""
    client = dynamodb_local.client()
    table = f"tokens-{uuid.uuid4().hex[:12]}"
    create(client, table)
    try:
        with FaultInjector(client, seed=1) as faults:
            # every attempt but botocore's last is applied and its answer lost
            faults.add("ambiguous", rate=1.0, operations=["TransactWriteItems"])
            client.transact_write_items(TransactItems=add(1)(table))
        assert faults.injected["ambiguous"] >= 1
        on_local = client.get_item(TableName=table, Key={"pk": {"S": "n"}})["Item"]["x"]["N"]
    finally:
        client.delete_table(TableName=table)
    assert on_local == "1"

    seen: set[tuple[str, int]] = set()

    def scenario(world: sim.World) -> None:
        ddb = world.client("dynamodb")
        create(ddb, "tokens")
        world.invoke(
            lambda event, context: ddb.transact_write_items(TransactItems=add(1)("tokens"))
        )

        @world.check
        def applied_once() -> None:
            x = ddb.get_item(TableName="tokens", Key={"pk": {"S": "n"}})["Item"]["x"]["N"]
            sent = sum(1 for s in world.trace if s.operation == "TransactWriteItems")
            seen.add((x, sent))

    sim.explore(scenario, sim.Exhaustive(preemptions=0), faults=sim.Faults(ambiguous=1)).check()
    assert seen == {(on_local, 1), (on_local, 2)}  # sent once, or lost and sent again: applied once


def test_a_token_is_forgotten_after_ten_minutes() -> None:
    """DynamoDB's window (not something DynamoDB Local can show in a test's time): a token is
    bound for 10 minutes after its first success; after that it is a new request."""
    seen: list[list[str]] = []

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        create(client, "tokens")

        def handler(event: Any, context: Any) -> None:
            answers = []
            for wait, send in (
                (0.0, Send(add(1), "A")),
                (599.0, Send(add(2), "A")),  # within the window: a mismatch
                (0.0, Send(add(1), "A")),  # a repeat: not applied
                (2.0, Send(add(2), "A")),  # past it: new, applied, and bound again
                (0.0, Send(add(1), "A")),
            ):
                clock.sleep(wait)
                answers.append(play(client, "tokens", [send], "t")[0][0])
            x = client.get_item(TableName="tokens", Key={"pk": {"S": "n"}})["Item"]["x"]["N"]
            seen.append([*answers, x])

        world.invoke(handler, timeout=900.0)  # Lambda's longest: the sleeps fit in it

    sim.explore(scenario, sim.Exhaustive(preemptions=0)).check()
    assert seen == [
        [
            "ok",
            "IdempotentParameterMismatchException",
            "ok",
            "ok",
            "IdempotentParameterMismatchException",
            "3",
        ]
    ]


EXPIRES = sim.EPOCH + 60.0


def ttl_setup(world: sim.World) -> None:
    client = world.client("dynamodb")
    create(client, "ttl")
    client.update_time_to_live(
        TableName="ttl", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )
    for pk, ttl in (
        ("soon", {"N": str(int(EXPIRES))}),
        ("later", {"N": str(int(EXPIRES) + 10**5)}),
    ):
        client.put_item(TableName="ttl", Item={"pk": {"S": pk}, "ttl": ttl})
    client.put_item(TableName="ttl", Item={"pk": {"S": "none"}})
    client.put_item(TableName="ttl", Item={"pk": {"S": "text"}, "ttl": {"S": "0"}})  # not a number


def test_ttl_deletes_an_item_only_after_its_ttl_and_maybe_never() -> None:
    observed: list[tuple[float, frozenset[str]]] = []
    ends: list[frozenset[str]] = []

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")

        def present() -> frozenset[str]:
            items = client.scan(TableName="ttl", ConsistentRead=True)["Items"]
            return frozenset(str(i["pk"]["S"]) for i in items)

        def handler(event: Any, context: Any) -> None:
            for wait in (0.0, 30.0, 29.0, 2.0, 30.0):  # reads at 0, 30, 59, 61 and 91 s
                clock.sleep(wait)
                observed.append((clock.now(), present()))

        world.invoke(handler, timeout=900.0)
        world.check(lambda: ends.append(present()))

    result = sim.explore(
        scenario, sim.Exhaustive(preemptions=0), faults=sim.Faults(ttl=1), setup=ttl_setup
    )
    result.check()
    assert result.finished
    everything = frozenset({"soon", "later", "none", "text"})
    gone = everything - {"soon"}
    by_time: dict[float, set[frozenset[str]]] = {}
    for at, seen in observed:
        by_time.setdefault(round(at - sim.EPOCH), set()).add(seen)
    assert sorted(by_time) == [0, 30, 59, 61, 91]
    for at in (0, 30, 59):  # never before the ttl, in any schedule
        assert by_time[at] == {everything}, at
    for at in (61, 91):  # after it: already deleted in some schedules, not yet in others
        assert by_time[at] == {everything, gone}, at
    assert set(ends) == {everything, gone}  # and in one, never at all
    # never, or at one of the steps after the expiry: the read at 61 s, the sleep after it,
    # the read at 91 s
    assert result.schedules == 4, str(result)
