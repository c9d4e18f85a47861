"""Exhaustive search with ``reduce``: what a step touches, and that leaving out the schedules
that only reorder independent steps (or crash at a read) loses no state the full search reaches."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from stateless_state import clock
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


def test_a_client_request_token_is_a_resource_of_its_own() -> None:
    """DynamoDB remembers a token across items: two transactions on different items that
    share one depend on each other's order (the second is told IdempotentParameterMismatch)."""
    put = {"Put": {"TableName": "t", "Item": {"pk": S}}}
    other = {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}}}}
    first = ddb("TransactWriteItems", {"TransactItems": [put], "ClientRequestToken": "k"})
    second = ddb("TransactWriteItems", {"TransactItems": [other], "ClientRequestToken": "k"})
    untokened = ddb("TransactWriteItems", {"TransactItems": [other]})
    assert dependent(first, second) and not dependent(first, untokened)


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
    assert s3("HeadObject", "https://s3.us-east-1.amazonaws.com/sim-bucket/dir/k%201") == want
    # a bucket named s3-…, or holding dots, in the virtual-host style
    assert s3("GetObject", "https://s3-logs.s3.amazonaws.com/dir/k") == frozenset(
        {(("s3", "s3-logs", "dir/k"), False)}
    )
    assert s3("GetObject", "https://a.s3.b.s3.us-east-1.amazonaws.com/k") == frozenset(
        {(("s3", "a.s3.b", "k"), False)}
    )
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


# -- what the adversary broke (each: the reduced search must fail where the full one does) ------

FLAG = {"pk": {"S": "flag#a"}}


def setup_edges(world: sim.World) -> None:
    setup(world)
    client = world.client("dynamodb")
    client.create_table(
        TableName="n",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    world.client("s3").create_bucket(Bucket="s3-logs")
    world.client("s3").put_object(Bucket="sim-bucket", Key="src", Body=b"v1")


def overtaken(then_a: Any, then_b: Any, bad: Any, observe: Any = None) -> sim.Scenario:
    """``a`` writes a flag, then ``then_a``; ``b`` reads the flag, then ``then_b``. Only the
    schedule where ``b`` preempts ``a`` between its two steps has ``b`` see the flag and its
    second step come first: ``bad(saw, a_result, b_result, observed)`` is the failure only that
    schedule shows (``observed``: ``observe(world)`` after the schedule), unless the two second
    steps are (wrongly) taken for independent."""

    def scenario(world: sim.World) -> None:
        client = world.client("dynamodb")
        seen: dict[str, Any] = {}

        def a(event: Any, context: Any) -> None:
            client.put_item(TableName="t", Item=FLAG)
            seen["a"] = then_a(world)

        def b(event: Any, context: Any) -> None:
            seen["saw"] = "Item" in client.get_item(TableName="t", Key=FLAG, ConsistentRead=True)
            seen["b"] = then_b(world)

        world.invoke(a, name="a")
        world.invoke(b, name="b")

        @world.check
        def in_order() -> None:
            observed = observe(world) if observe is not None else None
            _refuse(bad(seen.get("saw"), seen.get("a"), seen.get("b"), observed))

    return scenario


def _refuse(failed: bool) -> None:
    assert not failed, "b saw a's flag, yet b's step came first"


def _put_number(text: str, value: str) -> Any:
    def step(world: sim.World) -> None:
        world.client("dynamodb").put_item(
            TableName="n", Item={"id": {"N": text}, "v": {"S": value}}
        )

    return step


def _read_number(world: sim.World) -> str:
    item = world.client("dynamodb").get_item(
        TableName="n", Key={"id": {"N": "1"}}, ConsistentRead=True
    )
    return str(item["Item"]["v"]["S"])


def _copy(world: sim.World) -> str:
    s3 = world.client("s3")
    source = {"Bucket": "sim-bucket", "Key": "src"}
    s3.copy_object(Bucket="sim-bucket", Key="dst", CopySource=source)
    return str(s3.get_object(Bucket="sim-bucket", Key="dst")["Body"].read().decode())


def _overwrite_source(world: sim.World) -> None:
    world.client("s3").put_object(Bucket="sim-bucket", Key="src", Body=b"v2")


def _transaction(item: str) -> Any:
    def step(world: sim.World) -> str:
        try:
            world.client("dynamodb").transact_write_items(
                TransactItems=[{"Put": {"TableName": "t", "Item": {"pk": {"S": item}}}}],
                ClientRequestToken="one-token-for-both",
            )
        except ClientError as e:
            return str(e.response["Error"]["Code"])
        return "ok"

    return step


def _put_by_arn(world: sim.World) -> None:
    world.client("dynamodb").put_item(
        TableName="arn:aws:dynamodb:us-east-1:123456789012:table/t",
        Item={"pk": {"S": "shared"}, "by": {"S": "a"}},
    )


def _put_by_name(world: sim.World) -> None:
    world.client("dynamodb").put_item(TableName="t", Item={"pk": {"S": "shared"}, "by": {"S": "b"}})


def _shared_by(world: sim.World) -> str:
    item = world.client("dynamodb").get_item(
        TableName="t", Key={"pk": {"S": "shared"}}, ConsistentRead=True
    )
    return str(item["Item"]["by"]["S"])


def _logs_put(world: sim.World) -> None:  # virtual-host style for a bucket named s3-...
    world.client("s3").put_object(Bucket="s3-logs", Key="dir/k", Body=b"a")


def _logs_head(world: sim.World) -> bool:
    path_style = world.client("s3", config=Config(s3={"addressing_style": "path"}))
    try:
        path_style.head_object(Bucket="s3-logs", Key="dir/k")
    except ClientError:
        return False
    return True


EDGES = {
    # one item, written as 1 by a and as 1.0 by b
    "number-key": overtaken(
        _put_number("1", "a"),
        _put_number("1.0", "b"),
        lambda saw, a, b, last: saw and last == "a",
        _read_number,
    ),
    # a table named by its ARN by a, by its name by b
    "table-arn": overtaken(
        _put_by_arn, _put_by_name, lambda saw, a, b, last: saw and last == "a", _shared_by
    ),
    # a CopyObject's source header reaches before-send as bytes
    "copy-source": overtaken(_copy, _overwrite_source, lambda saw, a, b, _: saw and a == "v2"),
    # one ClientRequestToken on two transactions of different items
    "request-token": overtaken(
        _transaction("x"), _transaction("y"), lambda saw, a, b, _: saw and b == "ok" and a != "ok"
    ),
    # a bucket whose name begins with s3-, written virtual-host style and read path style
    "s3-dash-bucket": overtaken(_logs_put, _logs_head, lambda saw, a, b, _: saw and not b),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_the_reduced_search_fails_wherever_the_full_one_does(name: str) -> None:
    """Each of these fails under one interleaving only: the full search finds it, so the
    reduced one must too."""
    full = sim.explore(EDGES[name], sim.Exhaustive(preemptions=1), setup=setup_edges)
    reduced = sim.explore(
        EDGES[name], sim.Exhaustive(preemptions=1, reduce=True), setup=setup_edges
    )
    assert full.failures, "the scenario's premise: one schedule fails"
    assert reduced.failures, (str(full), str(reduced))


def test_a_crash_in_a_sleep_moves_no_clock() -> None:
    """A crash at a read is left out for the crash at the next step; when that step is a
    sleep, the crash must not let the sleep's time pass (the redelivery would start later):
    both searches reach the same end states, and a crash before the write finishes at 100 s."""

    def scenario_for(ends: set[Any]) -> sim.Scenario:
        def scenario(world: sim.World) -> None:
            client = world.client("dynamodb")

            def handler(event: Any, context: Any) -> None:
                client.get_item(TableName="t", Key={"pk": {"S": "config"}})
                clock.sleep(100)
                at = str(int(clock.now() - sim.EPOCH))
                client.put_item(TableName="t", Item={"pk": {"S": "done"}, "at": {"N": at}})

            world.invoke(handler, name="a")

            @world.check
            def record() -> None:
                item = client.get_item(TableName="t", Key={"pk": {"S": "done"}})["Item"]
                crashed_at = next((s.operation for s in world.trace if s.kind == "crashed"), None)
                statuses = tuple(o.status for o in world.outcomes)
                ends.add((statuses, item["at"]["N"]))
                where[crashed_at] = item["at"]["N"]

        return scenario

    faults = sim.Faults(crash=1, redeliveries=1)
    full: set[Any] = set()
    reduced: set[Any] = set()
    where: dict[str | None, str] = {}
    for ends, reduce in ((full, False), (reduced, True)):
        found = sim.explore(
            scenario_for(ends),
            sim.Exhaustive(preemptions=0, reduce=reduce),
            faults=faults,
            setup=setup,
        )
        assert found.finished and not found.failures, str(found)
    assert full == reduced
    assert where["sleep"] == where["GetItem"] == "100"  # killed in its sleep: no time passed
    assert where["PutItem"] == "200"  # crashed after its sleep: the redelivery sleeps again
