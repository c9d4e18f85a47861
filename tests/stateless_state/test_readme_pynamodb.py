"""The PynamoDB example of docs/idempotency.md ("Your writes in the same transaction"), run as
written against
DynamoDB Local, configured the way a deployed function is: by the environment."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stateless_state import TransactionCanceled
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name

PAGE = Path(__file__).parents[2] / "docs" / "idempotency.md"


def example() -> dict[str, Any]:
    section = PAGE.read_text().split("## Your writes in the same transaction", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the section has its example"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/idempotency.md", "exec"), namespace)
    return namespace


def test_the_example_saves_each_order_once(
    dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = fresh_table_name()
    for name, value in {
        "STATELESS_STATE_TABLE": table,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }.items():
        monkeypatch.setenv(name, value)
    ns = example()
    ns["store"].create_table()
    order_cls, stock_cls = ns["Order"], ns["Stock"]
    for model in (order_cls, stock_cls):
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    stock_cls("sku#1", left=1).save()

    def event(order_id: str) -> dict[str, Any]:
        return {"body": json.dumps({"order_id": order_id, "total": 12, "sku": "sku#1"})}

    ctx = FakeLambdaContext(30_000)
    assert ns["handler"](event("o#1"), ctx) == {"statusCode": 201}
    assert ns["handler"](event("o#1"), ctx) == {"statusCode": 201}, "a duplicate delivery"
    assert stock_cls.get("sku#1", consistent_read=True).left == 0, "decremented once"
    assert order_cls.get("o#1", consistent_read=True).total == 12
    with pytest.raises(TransactionCanceled):
        ns["handler"](event("o#2"), ctx)  # out of stock: nothing written
    assert not list(order_cls.query("o#2", consistent_read=True))
    assert stock_cls.get("sku#1", consistent_read=True).left == 0
