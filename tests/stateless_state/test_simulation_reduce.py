"""Exhaustive search with ``reduce``: what a step touches, and that leaving out the schedules
that only reorder independent steps (or crash at a read) loses no state the full search reaches."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stateless_state.testing import simulation as sim
from stateless_state.testing.simulation.footprint import ANY, dependent, request_footprint

DDB = "https://dynamodb.us-east-1.amazonaws.com/"


def keys(table: str) -> str | None:
    return {"t": "pk"}.get(table)


def ddb(operation: str, body: dict[str, Any]) -> Any:
    return request_footprint("dynamodb", operation, DDB, json.dumps(body).encode(), {}, keys)


def s3(operation: str, url: str, **headers: str) -> Any:
    return request_footprint("s3", operation, url, b"", headers, keys)


S = {"S": "a"}


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        ("GetItem", {"TableName": "t", "Key": {"pk": S}}, {(("t", '{"S": "a"}'), False)}),
        ("PutItem", {"TableName": "t", "Item": {"pk": S, "x": S}}, {(("t", '{"S": "a"}'), True)}),
        ("DeleteItem", {"TableName": "t", "Key": {"pk": S}}, {(("t", '{"S": "a"}'), True)}),
        # a table the backend does not know: the whole table stands in
        ("PutItem", {"TableName": "u", "Item": {"pk": S}}, {(("u", ANY), True)}),
        ("Scan", {"TableName": "t"}, {(("t", ANY), False)}),
        (
            "Query",
            {
                "TableName": "t",
                "KeyConditionExpression": "#n0 = :v0 AND begins_with(sk, :v1)",
                "ExpressionAttributeNames": {"#n0": "pk"},
                "ExpressionAttributeValues": {":v0": S, ":v1": {"S": "x"}},
            },
            {(("t", '{"S": "a"}'), False)},
        ),
        (
            "Query",
            {
                "TableName": "t",
                "IndexName": "by-state",
                "KeyConditionExpression": "pk = :v0",
                "ExpressionAttributeValues": {":v0": S},
            },
            {(("t", ANY), False)},
        ),
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "t", "Item": {"pk": S}}},
                    {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "b"}}}},
                ]
            },
            {(("t", '{"S": "a"}'), True), (("t", '{"S": "b"}'), True)},
        ),
        (
            "BatchWriteItem",
            {
                "RequestItems": {
                    "t": [
                        {"PutRequest": {"Item": {"pk": S}}},
                        {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}},
                    ]
                }
            },
            {(("t", '{"S": "a"}'), True), (("t", '{"S": "b"}'), True)},
        ),
        (
            "BatchGetItem",
            {"RequestItems": {"t": {"Keys": [{"pk": S}]}}},
            {(("t", '{"S": "a"}'), False)},
        ),
        # ItemCount moves with every write
        ("DescribeTable", {"TableName": "t"}, {(("t", ANY), False)}),
        # a number key by its value, a table by its ARN
        (
            "GetItem",
            {"TableName": "t", "Key": {"pk": {"N": "1.0"}}},
            {(("t", '{"N": "1"}'), False)},
        ),
        (
            "DeleteItem",
            {
                "TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
                "Key": {"pk": {"N": "10"}},
            },
            {(("t", '{"N": "1E+1"}'), True)},
        ),
    ],
)
def test_dynamodb_footprints(operation: str, body: dict[str, Any], expected: set[Any]) -> None:
    got = ddb(operation, body)
    assert got == frozenset((("dynamodb", *res), w) for res, w in expected)


def test_control_plane_and_unreadable_requests_are_dependent_on_everything() -> None:
    assert ddb("CreateTable", {"TableName": "t"}) is None
    assert request_footprint("dynamodb", "GetItem", DDB, b"not json", {}, keys) is None
    assert s3("CreateBucket", "https://sim-bucket.s3.amazonaws.com/") is None
    # other services see DynamoDB's and S3's effects (streams, notifications) and one another's
    assert request_footprint("sqs", "ReceiveMessage", "https://sqs/", b"{}", {}, keys) is None
    assert dependent(None, frozenset())


def test_s3_footprints_in_both_addressing_styles() -> None:
    want = frozenset({(("s3", "sim-bucket", "dir/k 1"), False)})
    assert s3("GetObject", "https://sim-bucket.s3.amazonaws.com/dir/k%201") == want
    assert s3("HeadObject", "https://s3.amazonaws.com/sim-bucket/dir/k%201") == want
    assert s3("ListObjectsV2", "https://sim-bucket.s3.amazonaws.com/?list-type=2") == frozenset(
        {(("s3", "sim-bucket", ANY), False)}
    )
    copy = s3(
        "CopyObject",
        "https://sim-bucket.s3.amazonaws.com/to",
        **{"x-amz-copy-source": "/c/fr%20om"},
    )
    assert copy == frozenset({(("s3", "sim-bucket", "to"), True), (("s3", "c", "fr om"), False)})
    assert s3("DeleteObjects", "https://sim-bucket.s3.amazonaws.com/?delete") == frozenset(
        {(("s3", "sim-bucket", ANY), True)}
    )


def test_dependence() -> None:
    read_a = frozenset({(("dynamodb", "t", "a"), False)})
    write_a = frozenset({(("dynamodb", "t", "a"), True)})
    write_b = frozenset({(("dynamodb", "t", "b"), True)})
    scan = frozenset({(("dynamodb", "t", ANY), False)})
    other_table = frozenset({(("dynamodb", "u", "a"), True)})
    assert not dependent(read_a, read_a)
    assert dependent(read_a, write_a) and dependent(write_a, read_a)
    assert not dependent(write_a, write_b)
    assert dependent(scan, write_b) and not dependent(scan, read_a)
    assert not dependent(write_a, other_table)


# -- the reduction loses nothing ---------------------------------------------------------------


def setup(world: sim.World) -> None:
    client = world.client("dynamodb")
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    world.client("s3").create_bucket(Bucket="sim-bucket")


def scenario_for(ends: set[Any], *, touch: bool = True) -> sim.Scenario:
    """Two invocations: each writes an item and an object of its own (independent of the
    other's), reads a shared counter, sets it conditionally on what it read, reads the other's
    object, and appends its name to a Python list the two share (marked with ``touch``). Every
    end state reached goes into ``ends``."""

    def scenario(world: sim.World) -> None:
        client, bucket = world.client("dynamodb"), world.client("s3")
        order: list[str] = []

        def handler(name: str, other: str) -> Any:
            def run(event: Any, context: Any) -> None:
                client.put_item(TableName="t", Item={"pk": {"S": f"own#{name}"}})
                found = client.get_item(
                    TableName="t", Key={"pk": {"S": "shared"}}, ConsistentRead=True
                ).get("Item")
                n = int(found["n"]["N"]) if found else 0
                # when the other set it first this add is lost, as the check records
                with contextlib.suppress(ClientError):
                    client.put_item(
                        TableName="t",
                        Item={"pk": {"S": "shared"}, "n": {"N": str(n + 1)}, "by": {"S": name}},
                        ConditionExpression="attribute_not_exists(pk) OR n = :n",
                        ExpressionAttributeValues={":n": {"N": str(n)}},
                    )
                bucket.put_object(Bucket="sim-bucket", Key=name, Body=name.encode())
                try:
                    bucket.head_object(Bucket="sim-bucket", Key=other)
                    saw = "saw"
                except ClientError:
                    saw = "missed"
                if touch:
                    world.touch("order")
                order.append(f"{name}:{saw}")

            return run

        world.invoke(handler("a", "b"), name="a")
        world.invoke(handler("b", "a"), name="b")

        @world.check
        def record() -> None:
            items = client.scan(TableName="t")["Items"]
            table = sorted(json.dumps(i, sort_keys=True) for i in items)
            listed = bucket.list_objects_v2(Bucket="sim-bucket").get("Contents", [])
            statuses = sorted((o.name, o.status) for o in world.outcomes)
            ends.add((tuple(table), tuple(o["Key"] for o in listed), tuple(order), tuple(statuses)))

    return scenario


@pytest.mark.parametrize(
    ("preemptions", "faults"),
    [(2, sim.Faults()), (1, sim.Faults(crash=1, redeliveries=0))],
    ids=["2-preemptions", "1-preemption-1-crash"],
)
def test_reduced_search_reaches_every_end_state_the_full_one_does(
    preemptions: int, faults: sim.Faults
) -> None:
    """Measured: 62 schedules against 24 (2 preemptions), 152 against 120 (1 and a crash)."""
    full: set[Any] = set()
    reduced: set[Any] = set()
    everything = sim.explore(
        scenario_for(full), sim.Exhaustive(preemptions=preemptions), faults=faults, setup=setup
    )
    fewer = sim.explore(
        scenario_for(reduced),
        sim.Exhaustive(preemptions=preemptions, reduce=True),
        faults=faults,
        setup=setup,
    )
    assert everything.finished and fewer.finished
    assert reduced == full
    assert len(full) > 3  # the lost update, both orders of the list, what each saw
    assert fewer.schedules < everything.schedules


def appends(*, touch: bool) -> sim.Scenario:
    """Two invocations, each noting that it started, writing an item of its own and then
    appending its name to a list they share outside AWS; the check refuses ``b`` appending
    first after ``a`` started first (a schedule that needs ``b`` to preempt ``a``)."""

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        started: list[str] = []
        order: list[str] = []

        def handler(name: str) -> Any:
            def run(event: Any, context: Any) -> None:
                started.append(name)
                client.put_item(TableName="t", Item={"pk": {"S": f"own#{name}"}})
                if touch:
                    world.touch("order")
                order.append(name)

            return run

        world.invoke(handler("a"), name="a")
        world.invoke(handler("b"), name="b")

        @world.check
        def overtaken() -> None:
            assert not (started[0] == "a" and order[0] == "b"), (started, order)

    return scenario


def test_state_shared_outside_aws_is_reordered_only_when_marked() -> None:
    """The two writes are independent, so the reduced search runs one order of them; what the
    invocations do after them to a Python list they share is invisible to it unless marked
    with ``world.touch``. Marked, the schedule where ``b`` appends first is run (and replays);
    unmarked, it is taken for a repeat: the assumption ``reduce`` states."""
    marked = sim.explore(
        appends(touch=True), sim.Exhaustive(preemptions=1, reduce=True), setup=setup
    )
    assert marked.failures
    assert sim.replay(appends(touch=True), marked.failures[0].run.line, setup=setup).error
    unreduced = sim.explore(appends(touch=False), sim.Exhaustive(preemptions=1), setup=setup)
    assert unreduced.failures
    unmarked = sim.explore(
        appends(touch=False), sim.Exhaustive(preemptions=1, reduce=True), setup=setup
    )
    assert unmarked.finished and not unmarked.failures


def test_an_unreduced_search_is_unchanged() -> None:
    """``reduce`` off (the default) stops no schedule and counts none as a repeat."""
    found = sim.explore(
        scenario_for(set()),
        sim.Exhaustive(preemptions=0),
        faults=sim.Faults(crash=1, redeliveries=0),
        setup=setup,
    )
    assert found.finished and found.pruned == 0
