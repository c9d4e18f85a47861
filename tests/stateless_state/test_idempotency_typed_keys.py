"""Typed idempotency keys (issue 23, item 5): a key that is not a string never shares a record
with a string key or with a key of another value; a string key keeps the record it always had;
a multi-select whose every field is missing is a missing key, never one shared record."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateless_state import InvalidArgument, Store, idempotent, keys
from stateless_state.idempotency import canonical_key, from_powertools, payload_hash
from stateless_state.testing import FakeLambdaContext
from stateless_state.testing.strategies import hostile_names
from tests.support.handlers import counting_handler

MOTO = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Small pools, so that drawn pairs are often equal values of different types (1, 1.0, True...).
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from([10**23, 99999999999999991611392, 2**53 + 1])
    | st.sampled_from([0.0, -0.0, 1.0, 2.0, 0.5, 0.1, 1e23, 1e-7, float(2**53)])
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "1", "1.0", "true", "null", "[1]", '{"a":1}', "a"])
    | hostile_names(max_size=6)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "1"]) | hostile_names(max_size=3), inner)
    ),
    max_leaves=6,
)
key_values = json_values.filter(lambda v: v is not None and v != "")


def same(a: Any, b: Any) -> bool:
    """The documented equality of keys, written independently of the implementation: strings
    by text, bools by value, numbers by the decimal value their repr writes, lists by their
    members in order, objects by their members whatever the order, no equality across kinds."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return Fraction(repr(a)) == Fraction(repr(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return False


@MOTO
@given(a=key_values, b=key_values)
def test_two_keys_share_a_record_exactly_when_they_are_the_same_value(
    moto_store: Store, a: Any, b: Any
) -> None:
    idem = moto_store.idempotency("typed")
    assert (idem._key(a) == idem._key(b)) == same(a, b), (a, b)


@MOTO
@given(key=hostile_names(max_size=40), namespace=hostile_names(max_size=20))
def test_a_string_key_keeps_the_record_it_had_before_typed_keys(
    moto_store: Store, key: str, namespace: str
) -> None:
    digest = hashlib.sha256(keys.join(namespace, key).encode()).hexdigest()
    assert moto_store.idempotency(namespace)._key(key) == keys.idempotency(digest).item()


def test_the_string_layout_is_pinned(moto_store: Store) -> None:
    """Computed by the release before typed keys: an upgrade keeps string-keyed records."""
    assert moto_store.idempotency("orders")._key("o#1/%é") == {
        "pk": "idem#9be67a541d4e43f14fa9bcb00c505108e7e37cbf8fb08d380baa2fa6196d9ece",
        "sk": "idem",
    }


@MOTO
@given(value=key_values.filter(lambda v: not isinstance(v, str)))
def test_no_string_collides_with_a_typed_key(moto_store: Store, value: Any) -> None:
    """Not its canonical JSON, not the hex of the hash that structured keys had before, not the
    repr that numbers had before."""
    idem = moto_store.idempotency("typed")
    for text in (canonical_key(value), json.dumps(value), payload_hash(value), repr(value)):
        assert idem._key(value) != idem._key(text), (value, text)


def test_typed_keys_end_to_end(moto_store: Store) -> None:
    runs: list[Any] = []

    @idempotent(moto_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> Any:
        runs.append(event["id"])
        return len(runs)

    ctx = FakeLambdaContext(10_000)
    old_hash = payload_hash({"a": 1})  # what {"a": 1} was keyed by before
    for value in ({"a": 1}, old_hash, 1, "1", True, 1.5, "1.5", [1], "[1]", ["1"]):
        handler({"id": value}, ctx)
    assert len(runs) == 10, "each its own record: every body ran"
    assert handler({"id": {"a": 1.0}}, ctx) == 1, "the same object, replayed"
    assert handler({"id": 1.0}, ctx) == 3 and handler({"id": 1}, ctx) == 3
    assert handler({"id": True}, ctx) == 5, "True is not 1"
    assert len(runs) == 10


def test_numbers_are_their_value() -> None:
    assert canonical_key(1) == canonical_key(1.0) == canonical_key(Decimal("1.00")) == "1"
    assert canonical_key(0.1) == canonical_key(Decimal("0.1")) == "0.1"
    assert canonical_key(-0.0) == canonical_key(0) == canonical_key(Decimal("-0E+3")) == "0"
    assert canonical_key(1e23) == canonical_key(10**23) == "1" + "0" * 23
    assert canonical_key(True) == "true" and canonical_key(1) != canonical_key(True)
    assert canonical_key({"b": [1.50, None], "a": "é"}) == '{"a":"\\u00e9","b":[1.5,null]}'
    assert canonical_key((1, 2)) == canonical_key([1, 2])


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def looped() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "NaN and infinities"),
        ([1, float("-inf")], "infinities"),
        (Decimal("NaN"), "NaN"),
        (Decimal("Infinity"), "infinities"),
        ({1: "a"}, "not all strings"),
        ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, "cannot contain a datetime"),
        (b"bytes", "cannot contain a bytes"),
        (10**5000, "4300 digits"),
        (Decimal("1E+999999"), "4300 digits"),
        (nested(100), "deeper than 64"),
        (looped(), "contains itself"),
        (None, "not None"),
    ],
    # A 5,000-digit int has no str() (Python's limit): name the cases by type and message.
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_hostile_keys_are_refused(moto_store: Store, value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        moto_store.idempotency("typed").claim(value)
    assert moto_store.client.scan(TableName=moto_store.table_name)["Items"] == []


def test_a_nan_in_an_event_body_is_refused(moto_store: Store) -> None:
    """Python's json reads NaN: an event can carry one."""

    @idempotent(moto_store, key="powertools_json(body).id")
    def handler(event: dict[str, Any], context: Any) -> str:
        return "ran"

    with pytest.raises(InvalidArgument, match="NaN"):
        handler({"body": '{"id": NaN}'}, FakeLambdaContext(10_000))


def test_the_cache_tells_typed_keys_apart(moto_store: Store) -> None:
    """1, 1.0 and True are one dict key in Python: the cache must not be keyed by the value."""
    idem = moto_store.idempotency("cached", cache_size=10)
    idem.claim(1).complete("int")
    requests = moto_store.metrics.total.requests
    assert idem.claim(1.0).result == "int"
    assert moto_store.metrics.total.requests == requests, "1.0 is 1: a cache hit"
    claim = idem.claim(True)
    assert not claim.replay, "True is another key"
    claim.complete("bool")
    assert idem.claim(True).result == "bool" and idem.claim(1).result == "int"
    assert not idem.claim([1]).replay, "a list (unhashable) goes through the cache too"


MISSING = [
    ("[order_id, customer]", {"other": 1}),
    ("{o: order_id, c: customer}", {"other": 1}),
    ("powertools_json(body).[order_id, customer]", {"body": "{}"}),
    ("powertools_json(body).{o: order_id, c: customer}", {"body": '{"x": 2}'}),
    ("[order_id, customer]", {"order_id": None, "customer": None}),
]


@pytest.mark.parametrize(("expression", "event"), MISSING)
def test_an_all_null_multi_select_is_a_missing_key(
    moto_store: Store, expression: str, event: dict[str, Any]
) -> None:
    runs: list[Any] = []

    @idempotent(moto_store, key=expression, namespace="strict")
    def strict(event: dict[str, Any], context: Any) -> int:
        runs.append(event)
        return len(runs)

    @idempotent(moto_store, key=expression, namespace="lenient", raise_on_missing_key=False)
    def lenient(event: dict[str, Any], context: Any) -> int:
        runs.append(event)
        return len(runs)

    ctx = FakeLambdaContext(10_000)
    with pytest.raises(InvalidArgument, match=re.escape(f"key {expression!r}") + ".*multi-select"):
        strict(event, ctx)
    assert runs == []
    assert [lenient(event, ctx), lenient({**event, "n": 2}, ctx)] == [1, 2], "unguarded, each"
    assert moto_store.client.scan(TableName=moto_store.table_name)["Items"] == []


def test_from_powertools_runs_an_all_null_multi_select_unguarded(
    moto_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    options = from_powertools(
        IdempotencyConfig(
            event_key_jmespath="powertools_json(body).[order_id, customer]",
            raise_on_no_idempotency_key=False,
        )
    )
    handler, _ = counting_handler(moto_store, **options)

    ctx = FakeLambdaContext(10_000)
    with caplog.at_level(logging.WARNING):
        assert [handler({"body": "{}"}, ctx) for _ in range(3)] == [1, 2, 3]
    assert "selects no idempotency key" in caplog.text
    assert moto_store.client.scan(TableName=moto_store.table_name)["Items"] == []
    assert handler({"body": '{"order_id": "o1"}'}, ctx) == 4
    assert handler({"body": '{"order_id": "o1"}'}, ctx) == 4, "partly null: a key, replayed"
    assert handler({"body": '{"customer": "o1"}'}, ctx) == 5, "[null, o1] is not [o1, null]"


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_missing_means_what_powertools_means(value: Any) -> None:
    from stateless_state.idempotency.request_keys import selected_key

    missing = BasePersistenceLayer.is_missing_idempotency_key(value)
    assert (selected_key(value) is None) == missing, value
