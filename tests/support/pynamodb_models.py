"""A user's own PynamoDB models, bound to DynamoDB Local, for the tests of writes that commit
with the library's state."""

from __future__ import annotations

import uuid
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.connection import Connection
from pynamodb.models import Model

from stateless_state.testing import DynamoDBLocal


def _meta(engine: DynamoDBLocal, table: str) -> Any:
    # DynamoDB Local keeps one database per access key and region: the same as the store's.
    return type(
        "Meta",
        (),
        {
            "table_name": table,
            "host": engine.endpoint_url,
            "region": "us-east-1",
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        },
    )


def local_connection(engine: DynamoDBLocal) -> Connection:
    """A PynamoDB ``Connection`` to ``engine`` under the store's access key and region (so it
    sees the store's tables). Opens nothing until its first request."""
    return Connection(
        region="us-east-1",
        host=engine.endpoint_url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def order_model(engine: DynamoDBLocal) -> Any:
    """``Order(order_id, total=..., note=...)`` with a version attribute, in a fresh table."""

    class Order(Model):
        Meta = _meta(engine, f"orders-{uuid.uuid4().hex[:10]}")
        order_id = UnicodeAttribute(hash_key=True)
        total = NumberAttribute(default=0)
        note = UnicodeAttribute(null=True)
        version = VersionAttribute()

    Order.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    return Order


def effect_model(engine: DynamoDBLocal) -> Any:
    """``Effect(request, invocation)``: one item per side effect an invocation committed."""

    class Effect(Model):
        Meta = _meta(engine, f"effects-{uuid.uuid4().hex[:10]}")
        request = UnicodeAttribute(hash_key=True)
        invocation = UnicodeAttribute(range_key=True)
        result = UnicodeAttribute(null=True)

    Effect.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    return Effect
