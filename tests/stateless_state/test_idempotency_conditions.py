"""The idempotency record's status conditions, each with a test that fails without it.

I3: a release is conditional on the record being ``in_progress`` or ``released`` (besides the
owner's nonce). A completion can land with every response lost; ``complete`` then gives up and
releases, and only the status term keeps that release from undoing the stored completion and
letting the body run a second time.
I4 / I5: ``pynamodb.claim_check`` and ``Claim.condition_check`` hold only while the record is
``in_progress`` under this claim's owner token. After the claim was released (the body raised,
a retry may run it again) or completed, the owner token is still on the record: the status
term is what refuses writes made under such a claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from stateless_state import Claim, Store
from stateless_state import pynamodb as ss_pynamodb
from stateless_state.testing import DynamoDBLocal
from tests.support.pynamodb_models import local_connection, order_model


def test_a_completion_that_landed_unseen_is_never_released(moto_store: Store) -> None:
    claims = moto_store.idempotency("orders")
    claim = claims.claim("order-1")
    lost: list[str] = []

    def mark_completion(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        values = [*params.get("ExpressionAttributeValues", {}).values(), params.get("Item", {})]
        written = [v.get("status") for v in values if isinstance(v, dict)]
        context["lose_response"] = {"S": "completed"} in values or {"S": "completed"} in written

    def lose_response(context: dict[str, Any], **_: Any) -> None:
        # Applied, then the answer never arrives: every attempt, botocore's and complete's own.
        if context.get("lose_response"):
            lost.append("completion")
            raise ReadTimeoutError(endpoint_url="https://dynamodb.local")

    events = moto_store.client.meta.events
    events.register("before-parameter-build.dynamodb", mark_completion)
    events.register("after-call.dynamodb", lose_response)
    try:
        with pytest.raises(ReadTimeoutError):
            claim.complete({"charged": 12})
    finally:
        events.unregister("before-parameter-build.dynamodb", mark_completion)
        events.unregister("after-call.dynamodb", lose_response)
    assert len(lost) > 1, "complete retried the completion before giving up"

    record = claims.record("order-1")
    assert record is not None and record["status"] == "completed"
    again = claims.claim("order-1")
    assert again.replay and again.result == {"charged": 12}, "the body must not run again"


@pytest.fixture
def connection(dynamodb_local: DynamoDBLocal) -> Iterator[Connection]:
    yield local_connection(dynamodb_local)


def _ended(claims: Any, how: str) -> Claim:
    claim: Claim = claims.claim(f"k-{how}")
    if how == "released":
        assert claim.release()
    else:
        claim.complete("done")
    return claim


@pytest.mark.parametrize("how", ["released", "completed"])
def test_a_pynamodb_claim_check_refuses_a_claim_that_ended(
    ddb_store: Store, dynamodb_local: DynamoDBLocal, connection: Connection, how: str
) -> None:
    Order = order_model(dynamodb_local)
    claim = _ended(ddb_store.idempotency("checks"), how)
    late = Order("late-" + uuid.uuid4().hex)
    with pytest.raises(TransactWriteError), TransactWrite(connection=connection) as tw:
        ss_pynamodb.claim_check(tw, claim)
        tw.save(late)
    with pytest.raises(Order.DoesNotExist):
        Order.get(late.order_id, consistent_read=True)


@pytest.mark.parametrize("how", ["released", "completed"])
def test_a_condition_check_refuses_a_claim_that_ended(ddb_store: Store, how: str) -> None:
    claim = _ended(ddb_store.idempotency("checks"), how)
    effect = {"pk": {"S": "effect#" + uuid.uuid4().hex}, "sk": {"S": "effect"}}
    put = {"Put": {"TableName": ddb_store.table_name, "Item": effect}}
    client = ddb_store.client
    with pytest.raises(client.exceptions.TransactionCanceledException):
        client.transact_write_items(TransactItems=[claim.condition_check(), put])
    got = ddb_store.client.get_item(TableName=ddb_store.table_name, Key=effect, ConsistentRead=True)
    assert "Item" not in got
