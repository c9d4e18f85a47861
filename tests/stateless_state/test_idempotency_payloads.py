"""Payloads compared by their canonical JSON, the cache replaying what is stored, validation
that selects nothing, a takeover by another payload, factory-made handlers: each found by the
third wave's adversary."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal
from typing import Any

import pytest

from stateless_state import InvalidArgument, PayloadMismatch, Store, clock, idempotent
from stateless_state.idempotency import payload_hash
from tests.support.clocks import ManualClock


def test_payloads_of_distinct_json_are_a_mismatch_and_non_json_ones_are_refused(
    moto_store: Store,
) -> None:
    """Hashed by their canonical JSON: a Decimal is its number (never the string of its
    repr); member names that are not strings, sets and other non-JSON values have no one
    spelling and are refused, where a repr made {1: x} the twin of {"1": x}."""
    idem = moto_store.idempotency("pay")
    idem.claim("k", payload={"a": Decimal("1")}).complete("first")
    with pytest.raises(PayloadMismatch):
        idem.claim("k", payload={"a": "Decimal('1')"})
    assert idem.claim("k", payload={"a": 1.0}).replay, "1, 1.0 and Decimal('1') are one value"
    for payload in ({1: "x"}, {True: "x"}, {"tags": {0, 8}}, {"at": time}):
        with pytest.raises(InvalidArgument, match="cannot be compared"):
            payload_hash(payload)
    assert payload_hash(("a", 1)) == payload_hash(["a", 1])


def test_a_whole_payload_key_refuses_what_it_cannot_spell_once(moto_store: Store) -> None:
    runs: list[Any] = []

    @idempotent(moto_store, namespace="whole")
    def f(order: Any) -> int:
        runs.append(order)
        return len(runs)

    with pytest.raises(InvalidArgument, match="give key="):
        f({1: "x"})
    with pytest.raises(InvalidArgument, match="give key="):
        f({0, 8})
    assert f({"1": "x"}) == 1 and f({"1": "x"}) == 1 and runs == [{"1": "x"}]


def test_a_cached_replay_is_the_stored_result(moto_store: Store) -> None:
    """A cache hit decodes what the record stores: not the live object the first caller got
    (and changed), nor types the store does not keep (a tuple is a list)."""

    @idempotent(moto_store, key="id", namespace="cached", cache_size=10)
    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return {"charged": True, "tags": ("a", "b")}

    first = handler({"id": "o-1"})
    first["charged"] = False
    before = moto_store.metrics.total.requests
    replay = handler({"id": "o-1"})
    assert moto_store.metrics.total.requests == before, "from the cache"
    assert replay == {"charged": True, "tags": ["a", "b"]} and replay is not first
    replay["tags"].append("c")
    assert handler({"id": "o-1"}) == {"charged": True, "tags": ["a", "b"]}


def test_a_validation_that_selects_nothing_is_no_json_value(moto_store: Store) -> None:
    """Nothing selected compares as nothing selected: never equal to a string an event
    carries (the marker was one), and a validate callable returning None is that too, not
    validation switched off."""

    @idempotent(moto_store, key="id", validate="amount", namespace="nothing")
    def handler(event: dict[str, Any], context: Any = None) -> str:
        return f"charged {event.get('amount')!r}"

    assert handler({"id": "o-1"}) == "charged None"
    with pytest.raises(PayloadMismatch):
        handler(json.loads('{"id": "o-1", "amount": "\\u0000nothing selected"}'))
    assert handler({"id": "o-1", "amount": None}) == "charged None", "null is nothing too"

    @idempotent(moto_store, key="id", validate=lambda e: e.get("amount"), namespace="cb")
    def by_callable(event: dict[str, Any], context: Any = None) -> str:
        return f"charged {event.get('amount')!r}"

    assert by_callable({"id": "o-1", "amount": 10}) == "charged 10"
    with pytest.raises(PayloadMismatch):
        by_callable({"id": "o-1"})


def test_a_crashed_claim_is_never_taken_over_by_another_payload(moto_store: Store) -> None:
    """While the lease runs and after it ended: the key is the first payload's until the
    record expires; the same payload takes it over, and an expired record is a new life."""
    now = ManualClock(time.time())
    with clock.using(now):
        idem = moto_store.idempotency("tk", in_progress_timeout=10, expires_after=60)
        first = idem.claim("order-1", payload={"amount": 10})
        assert not first.replay
        with pytest.raises(PayloadMismatch):
            idem.claim("order-1", payload={"amount": 20})
        now.advance(11)  # the first invocation crashed mid-body
        with pytest.raises(PayloadMismatch):
            idem.claim("order-1", payload={"amount": 20})
        again = idem.claim("order-1", payload={"amount": 10})
        assert (again.replay, again.fence) == (False, 2)
        again.release()
        with pytest.raises(PayloadMismatch):
            idem.claim("order-1", payload={"amount": 20})
        now.advance(120)
        assert not idem.claim("order-1", payload={"amount": 20}).replay, "expired: a new life"


def test_a_factory_made_handler_is_warned_about_its_shared_default_namespace(
    moto_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Every function made inside one factory has one qualified name: two different ones
    would share records, so each decoration says so, asking for namespace=."""

    def make(kind: str, namespace: str | None = None) -> Any:
        @idempotent(moto_store, key="id", namespace=namespace)
        def handler(event: dict[str, Any], context: Any = None) -> str:
            return f"{kind} {event['id']}"

        return handler

    with caplog.at_level(logging.WARNING, logger="stateless_state"):
        make("charge")
    assert any("give each namespace=" in r.getMessage() for r in caplog.records)
    charge, refund = make("charge", "charge"), make("refund", "refund")
    assert (charge({"id": "o-1"}), refund({"id": "o-1"})) == ("charge o-1", "refund o-1")
