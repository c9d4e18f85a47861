"""Your writes and our state in one transaction (``also=``), on DynamoDB Local, with PynamoDB
models written for real: an idempotency completion, a counter add with a token, a session add
and a lease holder's fenced write, and the library's conditions inside a PynamoDB
``TransactWrite``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from stateless_state import (
    InvalidArgument,
    LeaseLost,
    Store,
    TransactionCanceled,
    commit_with_completion,
    domain,
    idempotent,
)
from stateless_state import pynamodb as ss_pynamodb
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext
from stateless_state.testing.strategies import hostile_names, instants
from stateless_state.transaction import MAX_ACTIONS
from tests.support.pynamodb_models import effect_model, local_connection, order_model


@pytest.fixture(scope="module")
def Order(dynamodb_local: DynamoDBLocal) -> Any:
    return order_model(dynamodb_local)


@pytest.fixture(scope="module")
def Effect(dynamodb_local: DynamoDBLocal) -> Any:
    return effect_model(dynamodb_local)


@pytest.fixture
def connection(dynamodb_local: DynamoDBLocal) -> Iterator[Connection]:
    yield local_connection(dynamodb_local)


def _exists(model: Any, *key: Any) -> bool:
    try:
        model.get(*key, consistent_read=True)
    except model.DoesNotExist:
        return False
    return True


def test_a_completion_commits_the_models_saved_with_it(ddb_store: Store, Order: Any) -> None:
    claims = ddb_store.idempotency("orders#v1")
    claim = claims.claim("order#1/é")
    order = Order("o-" + uuid.uuid4().hex, total=12, note="#%/")
    claim.complete({"ok": True}, also=[ss_pynamodb.save(order)])
    stored = Order.get(order.order_id, consistent_read=True)
    assert (stored.total, stored.note, stored.version) == (12, "#%/", 1)
    replay = claims.claim("order#1/é")
    assert replay.replay and replay.result == {"ok": True}


def test_a_zombie_completion_writes_neither_its_result_nor_its_models(
    ddb_store: Store, Order: Any
) -> None:
    claims = ddb_store.idempotency("zombies")
    zombie = claims.claim("k", context=FakeLambdaContext(50))
    time.sleep(0.1)
    newer = claims.claim("k", context=FakeLambdaContext(60_000))
    late = Order("zombie-" + uuid.uuid4().hex, total=1)
    with pytest.raises(LeaseLost):
        zombie.complete("zombie", also=[ss_pynamodb.save(late)])
    assert not _exists(Order, late.order_id)
    newer.complete("newer")
    assert claims.claim("k").result == "newer"


def test_a_failed_user_condition_writes_nothing_and_frees_the_key(
    ddb_store: Store, Order: Any
) -> None:
    claims = ddb_store.idempotency("conditions")
    existing = Order("taken-" + uuid.uuid4().hex, total=5)
    existing.save()
    claim = claims.claim("k")
    clash = Order(existing.order_id, total=99)
    with pytest.raises(TransactionCanceled) as raised:
        claim.complete(
            "r", also=[ss_pynamodb.save(clash, condition=Order.order_id.does_not_exist())]
        )
    assert raised.value.codes == ["None", "ConditionalCheckFailed"]
    assert Order.get(existing.order_id, consistent_read=True).total == 5
    again = claims.claim("k")
    assert not again.replay, "the claim was released, so a retry can run the body"
    again.complete("second")


def test_the_decorator_commits_what_the_body_hands_it(ddb_store: Store, Effect: Any) -> None:
    runs = []

    @idempotent(ddb_store, key="requestContext.requestId")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runs.append(event)
        commit_with_completion(
            ss_pynamodb.save(Effect(event["requestContext"]["requestId"], "one"))
        )
        return {"statusCode": 200}

    event = {"requestContext": {"requestId": "req#" + uuid.uuid4().hex}}
    ctx = FakeLambdaContext(30_000)
    assert handler(event, ctx) == handler(event, ctx) == {"statusCode": 200}
    assert len(runs) == 1
    saved = list(Effect.query(event["requestContext"]["requestId"], consistent_read=True))
    assert [e.invocation for e in saved] == ["one"]
    with pytest.raises(InvalidArgument, match="inside its body"):
        commit_with_completion(ss_pynamodb.save(Effect("x", "y")))


def test_a_body_that_raises_drops_its_writes(ddb_store: Store, Effect: Any) -> None:
    request = "boom-" + uuid.uuid4().hex

    @idempotent(ddb_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> None:
        commit_with_completion(ss_pynamodb.save(Effect(request, "x")))
        raise RuntimeError("failed after handing over its writes")

    with pytest.raises(RuntimeError):
        handler({"id": request}, FakeLambdaContext(30_000))
    assert list(Effect.query(request, consistent_read=True)) == []


def test_a_body_without_a_key_still_commits_its_writes(ddb_store: Store, Effect: Any) -> None:
    request = "unkeyed-" + uuid.uuid4().hex

    @idempotent(ddb_store, key="id", raise_on_missing_key=False)
    def handler(event: dict[str, Any], context: Any) -> str:
        commit_with_completion(ss_pynamodb.save(Effect(request, event["n"])))
        return str(event["n"])

    assert handler({"n": "1"}, FakeLambdaContext(30_000)) == "1"
    assert handler({"n": "2"}, FakeLambdaContext(30_000)) == "2", "no key: not idempotent"
    assert [e.invocation for e in Effect.query(request, consistent_read=True)] == ["1", "2"]


def test_counter_writes_commit_once_per_token(ddb_store: Store, Order: Any) -> None:
    counter = ddb_store.counter("stock#a/b")
    order = Order("stock-" + uuid.uuid4().hex, total=0)
    order.save()
    bump = ss_pynamodb.update(order, [Order.total.add(7)])
    first = counter.add(3, token="evt#1", also=[bump])
    again = counter.add(3, token="evt#1", also=[bump])
    assert first.applied and not again.applied
    assert counter.get() == 3
    assert Order.get(order.order_id, consistent_read=True).total == 7
    with pytest.raises(InvalidArgument, match="needs a token"):
        counter.add(1, also=[bump])


def test_session_writes_commit_only_with_an_applied_event(ddb_store: Store, Effect: Any) -> None:
    sessions = ddb_store.sessions("clicks#", gap=60, max_duration=3600, allowed_lateness=0)
    request = "s-" + uuid.uuid4().hex
    t0 = 1_500_000_000.0
    added = sessions.add("user/1", t0, token="e1", also=[ss_pynamodb.save(Effect(request, "e1"))])
    duplicate = sessions.add(
        "user/1", t0, token="e1", also=[ss_pynamodb.save(Effect(request, "dup"))]
    )
    assert added.session is not None and duplicate.duplicate
    assert sessions.close_due(now=t0 + 1000)
    late = sessions.add(
        "user/1", t0 + 10, token="e2", also=[ss_pynamodb.save(Effect(request, "late"))]
    )
    assert late.late
    assert [e.invocation for e in Effect.query(request, consistent_read=True)] == ["e1"]
    with pytest.raises(InvalidArgument, match="needs a token"):
        sessions.add("user/2", t0, also=[ss_pynamodb.save(Effect(request, "no token"))])


def test_a_stale_lease_holder_writes_nothing_in_either_direction(
    ddb_store: Store, Order: Any, connection: Connection
) -> None:
    lease = ddb_store.lease("flush#orders", duration=0.05)
    stale = lease.acquire()
    time.sleep(0.1)
    current = lease.acquire()
    by_stale = Order("stale-" + uuid.uuid4().hex, total=1)
    with pytest.raises(LeaseLost):
        stale.write(ss_pynamodb.save(by_stale))
    with pytest.raises(TransactWriteError), TransactWrite(connection=connection) as tw:
        ss_pynamodb.fence_check(tw, stale)
        tw.save(by_stale)
    assert not _exists(Order, by_stale.order_id)
    by_current = Order("current-" + uuid.uuid4().hex, total=2)
    with TransactWrite(connection=connection) as tw:
        ss_pynamodb.fence_check(tw, current)
        tw.save(by_current)
    assert Order.get(by_current.order_id, consistent_read=True).total == 2


def test_a_claim_check_in_your_transact_write(
    ddb_store: Store, Order: Any, connection: Connection
) -> None:
    claims = ddb_store.idempotency("checks")
    zombie = claims.claim("k", context=FakeLambdaContext(50))
    time.sleep(0.1)
    owner = claims.claim("k", context=FakeLambdaContext(60_000))
    by_zombie = Order("z-" + uuid.uuid4().hex)
    with pytest.raises(TransactWriteError), TransactWrite(connection=connection) as tw:
        ss_pynamodb.claim_check(tw, zombie)
        tw.save(by_zombie)
    assert not _exists(Order, by_zombie.order_id)
    with TransactWrite(connection=connection) as tw:
        ss_pynamodb.claim_check(tw, owner)
        tw.save(Order("o-" + uuid.uuid4().hex))
    owner.complete(1)
    with pytest.raises(InvalidArgument):
        ss_pynamodb.claim_check(tw, claims.claim("k"))


def test_bad_extra_writes_are_refused_before_any_request(ddb_store: Store, Order: Any) -> None:
    claims = ddb_store.idempotency("shapes")
    claim = claims.claim("k")
    bad_shapes: list[Any] = [
        {"Put": {"Item": {}}},
        {"Put": {"TableName": "t", "Item": {}}, "Delete": {}},
        {"Upsert": {"TableName": "t", "Key": {}}},
        ["Put"],
    ]
    for bad in bad_shapes:
        with pytest.raises(InvalidArgument, match="extra action 0"):
            claim.complete("r", also=[bad])
        claim = claims.claim("k")
    too_many = [ss_pynamodb.save(Order(f"many-{i}")) for i in range(MAX_ACTIONS)]
    before = ddb_store.metrics.snapshot()
    with pytest.raises(InvalidArgument, match="100 actions"):
        claim.complete("r", also=too_many)
    spent = ddb_store.metrics.snapshot() - before
    assert "TransactWriteItems" not in spent.by_operation
    assert not _exists(Order, "many-0")
    with pytest.raises(InvalidArgument, match="extra action"):
        ddb_store.counter("c").add(1, token="t", also=[{"Put": {}}])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=hostile_names(),
    key=hostile_names(max_size=30),
    amount=st.one_of(
        st.integers(-(10**6), 10**6),
        st.sampled_from([domain.MAX_INTEGER, domain.MAX_INTEGER + 1, -(10**39)]),
    ),
    at=instants(),
    good=st.booleans(),
)
def test_hostile_input_commits_all_or_nothing(
    ddb_store: Store,
    Effect: Any,
    name: str,
    key: str,
    amount: int,
    at: float,
    good: bool,
) -> None:
    """Hostile names, tokens and item keys, numbers past DynamoDB's range, times from decades
    ago, and a good or a refused user write: our state and the user's write land together or
    not at all."""
    request = f"{key}#{uuid.uuid4().hex}"
    write = ss_pynamodb.save(Effect(request, name))
    refused = ss_pynamodb.save(Effect(request, name), condition=Effect.request.exists())
    action = write if good else refused
    counter = ddb_store.counter(name + uuid.uuid4().hex)
    try:
        count = counter.add(amount, token=key, also=[action])
    except InvalidArgument:
        assert abs(amount) > domain.MAX_INTEGER
        assert counter.get() == 0 and not _exists(Effect, request, name)
        return
    except TransactionCanceled as e:
        assert not good and e.codes[-1] == "ConditionalCheckFailed"
        assert counter.get() == 0 and not _exists(Effect, request, name)
    else:
        assert good and count.applied and counter.get() == amount
        assert _exists(Effect, request, name)
    # Hypothesis reuses the table across examples: a fresh name, so no token is seen before.
    sessions = ddb_store.sessions(name + uuid.uuid4().hex, gap=30, max_duration=300)
    session_request = request + "#s"
    try:
        update = sessions.add(
            key,
            at,
            token=key,
            also=[
                ss_pynamodb.save(Effect(session_request, "s"))
                if good
                else ss_pynamodb.save(
                    Effect(session_request, "s"), condition=Effect.request.exists()
                )
            ],
        )
    except TransactionCanceled:
        assert not good
        assert sessions.sessions(key) == []
    else:
        assert good and update.session is not None
        assert len(sessions.sessions(key)) == 1
    assert _exists(Effect, session_request, "s") == good
