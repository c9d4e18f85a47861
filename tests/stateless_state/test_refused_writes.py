"""Writes DynamoDB refuses as a whole (issue 23, item 4): a library error naming the entry,
checked before the request where the rule is knowable, and the claim freed so that a retry runs
the body instead of meeting AlreadyInProgress until the lease ends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stateless_state import Store
from stateless_state import pynamodb as ss_pynamodb
from stateless_state.errors import OtherTableNotFound, WriteRefused
from stateless_state.testing import DynamoDBLocal
from tests.support.pynamodb_models import order_model


@pytest.fixture(scope="module")
def Order(dynamodb_local: DynamoDBLocal) -> Any:
    return order_model(dynamodb_local)


def _put(table: str, key: str) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": {"order_id": {"S": key}}}}


def test_a_missing_table_in_also_names_that_table_and_frees_the_claim(ddb_store: Store) -> None:
    claims = ddb_store.idempotency("missing #/ 🙂")
    key = "order #1/ 🙂"
    claim = claims.claim(key)
    missing = f"no-such-table-{uuid.uuid4().hex[:8]}"
    with pytest.raises(OtherTableNotFound, match=missing) as e:
        claim.complete("r", also=[_put(missing, "a #/ 🙂")])
    assert e.value.table_name == missing and e.value.entries == ("extra action 0",)
    retry = claims.claim(key)
    assert not retry.replay, "the claim was freed: the retry runs the body"


def test_actions_on_our_own_record_or_off_the_state_schema_are_refused_before_any_request(
    ddb_store: Store,
) -> None:
    claims = ddb_store.idempotency("own items #/ 🙂")
    claim = claims.claim("k #/ 🙂")
    pk = {"S": claim.record_key["pk"]}
    own = {
        "Update": {
            "TableName": ddb_store.table_name,
            "Key": {"pk": pk, "sk": {"S": "idem"}},
            "UpdateExpression": "SET x = :x",
            "ExpressionAttributeValues": {":x": {"S": "1"}},
        }
    }
    no_sort_key = {"Put": {"TableName": ddb_store.table_name, "Item": {"pk": {"S": "mine #/"}}}}
    for bad, why in ((own, "same item"), (no_sort_key, "does not match its schema")):
        before = ddb_store.metrics.snapshot()
        with pytest.raises(WriteRefused, match=why):
            claim.complete("r", also=[bad])
        spent = ddb_store.metrics.snapshot() - before
        assert "TransactWriteItems" not in spent.by_operation
        claim = claims.claim("k #/ 🙂")
        assert not claim.replay, "the claim was freed: the retry runs the body"


def test_two_actions_on_one_item_are_refused_naming_both(ddb_store: Store, Order: Any) -> None:
    claims = ddb_store.idempotency("dupes")
    claim = claims.claim("k")
    order = Order("o #/ 🙂 " + uuid.uuid4().hex, total=1)
    table = Order.Meta.table_name
    touch = {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"order_id": {"S": order.order_id}},
            "ConditionExpression": "attribute_not_exists(order_id)",
        }
    }
    before = ddb_store.metrics.snapshot()
    with pytest.raises(WriteRefused, match="extra action 0 and extra action 1") as e:
        claim.complete("r", also=[ss_pynamodb.save(order), touch])
    assert e.value.entries == ("extra action 0", "extra action 1")
    spent = ddb_store.metrics.snapshot() - before
    assert "TransactWriteItems" not in spent.by_operation
    assert not claims.claim("k").replay, "the claim was freed"
