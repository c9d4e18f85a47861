"""Idempotency keys and payload checks as JMESPath, on the event shapes Lambda really gets (API
Gateway REST and HTTP APIs, SQS, EventBridge), checked against Powertools' own evaluation of the
same expressions, and a Powertools ``IdempotencyConfig`` mapped onto ``idempotent``."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.jmespath_utils import query as powertools_query
from hypothesis import HealthCheck, given, settings

from stateless_state import InvalidArgument, PayloadMismatch, Store, idempotent
from stateless_state.idempotency import from_powertools, selector
from stateless_state.testing import FakeLambdaContext
from stateless_state.testing.strategies import hostile_names
from tests.support.handlers import counting_handler


def api_gateway_rest(order_id: str, key: str) -> dict[str, Any]:
    return {
        "resource": "/orders",
        "path": "/orders",
        "httpMethod": "POST",
        "headers": {"Idempotency-Key": key, "Content-Type": "application/json"},
        "requestContext": {"requestId": f"req-{key}", "stage": "prod"},
        "body": json.dumps({"order_id": order_id, "total": 12}),
        "isBase64Encoded": False,
    }


def api_gateway_http(order_id: str, key: str) -> dict[str, Any]:
    body = json.dumps({"order_id": order_id, "total": 12}).encode()
    return {
        "version": "2.0",
        "routeKey": "POST /orders",
        "rawPath": "/orders",
        "headers": {"idempotency-key": key},
        "requestContext": {"requestId": f"req-{key}", "http": {"method": "POST"}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def sqs(order_id: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": key,
                "receiptHandle": "rh",
                "body": json.dumps({"order_id": order_id}),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
            }
        ]
    }


def eventbridge(order_id: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": key,
        "detail-type": "OrderPlaced",
        "source": "shop.orders",
        "time": "2026-12-01T10:00:00Z",
        "detail": {"order_id": order_id, "lines": [{"sku": "a"}]},
    }


# (event builder, expression, what it must select from builder(order_id, key))
SHAPES = [
    (api_gateway_rest, "requestContext.requestId", lambda o, k: f"req-{k}"),
    (api_gateway_rest, 'headers."Idempotency-Key"', lambda o, k: k),
    (api_gateway_rest, "powertools_json(body).order_id", lambda o, k: o),
    (api_gateway_rest, "[requestContext.requestId, powertools_json(body).order_id]", None),
    (api_gateway_http, 'headers."idempotency-key"', lambda o, k: k),
    (api_gateway_http, "powertools_json(powertools_base64(body)).order_id", lambda o, k: o),
    (sqs, "Records[0].messageId", lambda o, k: k),
    (sqs, "powertools_json(Records[0].body).order_id", lambda o, k: o),
    (eventbridge, "id", lambda o, k: k),
    (eventbridge, "detail.order_id", lambda o, k: o),
    (eventbridge, '"detail-type"', None),
]


@pytest.mark.parametrize(("build", "expression", "expected"), SHAPES)
@settings(max_examples=25, deadline=None)
@given(order_id=hostile_names(max_size=40), key=hostile_names(max_size=40))
def test_expressions_select_what_powertools_selects(
    build: Any, expression: str, expected: Any, order_id: str, key: str
) -> None:
    event = build(order_id, key)
    ours = selector(expression)(event)
    assert ours == powertools_query(data=event, envelope=expression)
    if expected is not None:
        assert ours == expected(order_id, key)


def test_the_dotted_paths_of_earlier_versions_keep_working() -> None:
    event = {"Records": [{"messageId": "m#1"}], "headers": {"x-request-id": "r/1"}}
    assert selector("Records.0.messageId")(event) == "m#1"
    assert selector("Records[0].messageId")(event) == "m#1"
    assert selector("headers.x-request-id")(event) == "r/1"
    assert selector('headers."x-request-id"')(event) == "r/1"
    assert selector("Records.5.messageId")(event) is None
    for bad in ("Records[", "a..b", "", "[0"):
        with pytest.raises(InvalidArgument):
            selector(bad)


@pytest.mark.parametrize(("build", "expression"), [(b, e) for b, e, x in SHAPES if x is not None])
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(order_id=hostile_names(max_size=20), key=hostile_names(max_size=20))
def test_the_decorator_keys_each_shape_by_its_expression(
    moto_store: Store, build: Any, expression: str, order_id: str, key: str
) -> None:
    handler, runs = counting_handler(
        moto_store, key=expression, namespace=f"{expression}{order_id}{key}"
    )

    ctx = FakeLambdaContext(30_000)
    event = build(order_id, key)
    assert handler(event, ctx) == 1
    assert handler(build(order_id, key), ctx) == 1, "the same request, replayed"
    other = build(order_id + "·", key + "·")
    assert handler(other, ctx) == 2, "another request, another key"
    assert len(runs) == 2


def test_validate_by_expression(moto_store: Store) -> None:
    @idempotent(moto_store, key="id", validate="detail.total")
    def handler(event: dict[str, Any], context: Any) -> str:
        return "done"

    ctx = FakeLambdaContext(30_000)
    assert handler({"id": "a", "detail": {"total": 1, "note": "x"}}, ctx) == "done"
    assert handler({"id": "a", "detail": {"total": 1, "note": "y"}}, ctx) == "done"
    with pytest.raises(PayloadMismatch):
        handler({"id": "a", "detail": {"total": 2}}, ctx)
    # Selecting nothing compares as null: a missing total is not "any total".
    assert handler({"id": "b", "detail": {}}, ctx) == "done"
    assert handler({"id": "b", "detail": {"total": None}}, ctx) == "done"
    with pytest.raises(PayloadMismatch, match="'b'"):
        handler({"id": "b", "detail": {"total": 0}}, ctx)
    with pytest.raises(InvalidArgument, match="validate"):
        idempotent(moto_store, key="id", validate="detail[")(lambda e, c: None)


def test_a_powertools_config_means_the_same_here(
    moto_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = IdempotencyConfig(
        event_key_jmespath="powertools_json(body).order_id",
        payload_validation_jmespath="powertools_json(body).total",
        expires_after_seconds=120,
        use_local_cache=True,
        local_cache_max_items=64,
    )
    options = from_powertools(config)
    assert options == {
        "key": "powertools_json(body).order_id",
        "validate": "powertools_json(body).total",
        "raise_on_missing_key": False,
        "expires_after": 120.0,
        "cache_size": 64,
    }
    handler, _ = counting_handler(moto_store, **options)

    ctx = FakeLambdaContext(30_000)
    assert handler(api_gateway_rest("o#1", "k"), ctx) == 1
    assert handler(api_gateway_rest("o#1", "other"), ctx) == 1, "keyed by the order, not header"
    with caplog.at_level(logging.WARNING):
        assert handler({"body": "{}"}, ctx) == 2, "no key: run without idempotency (Powertools)"
        assert handler({"body": "{}"}, ctx) == 3
    assert "selects no idempotency key" in caplog.text
    whole = from_powertools(IdempotencyConfig())
    assert whole["key"] is None and whole["validate"] is None and whole["cache_size"] == 0
    with pytest.raises(InvalidArgument, match="response_hook"):
        from_powertools(IdempotencyConfig(response_hook=lambda response, record: response))
    with pytest.raises(InvalidArgument, match="jmespath_options"):
        from_powertools(IdempotencyConfig(jmespath_options={"custom_functions": object()}))
    with pytest.raises(InvalidArgument, match="IdempotencyConfig"):
        from_powertools(object())
