"""Idempotency keys on moto: states, replay, payload checks, fencing. Races are elsewhere."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from stateless_state import (
    AlreadyInProgress,
    InvalidArgument,
    ItemTooLarge,
    LeaseLost,
    NotSerializable,
    PayloadMismatch,
    Store,
    idempotent,
)
from stateless_state.testing import FakeLambdaContext


@pytest.mark.parametrize("falsy", [0, [], {}, False, None, ""])
def test_falsy_results_are_replayed_not_rerun(moto_store: Store, falsy: Any) -> None:
    runs = []

    @idempotent(moto_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> Any:
        runs.append(event)
        return falsy

    ctx = FakeLambdaContext(10_000)
    assert handler({"id": "a"}, ctx) == falsy
    assert handler({"id": "a"}, ctx) == falsy
    assert len(runs) == 1


def test_plain_function_keyed_by_its_arguments(moto_store: Store) -> None:
    runs = []

    @idempotent(moto_store)
    def charge(customer: str, cents: int) -> dict[str, Any]:
        runs.append((customer, cents))
        return {"charged": cents}

    assert charge("c1", 100) == {"charged": 100}
    assert charge("c1", 100) == {"charged": 100}
    assert charge("c1", 200) == {"charged": 200}
    assert runs == [("c1", 100), ("c1", 200)]


def test_key_callable_and_namespaces(moto_store: Store) -> None:
    @idempotent(moto_store, key=lambda order: order["id"])
    def ship(order: dict[str, Any]) -> str:
        return f"shipped {order['id']}"

    @idempotent(moto_store, key=lambda order: order["id"])
    def bill(order: dict[str, Any]) -> str:
        return f"billed {order['id']}"

    assert ship({"id": 1}) == "shipped 1"
    assert bill({"id": 1}) == "billed 1", "different functions do not share keys"


def test_payload_mismatch(moto_store: Store) -> None:
    @idempotent(moto_store, key="id", validate="amount")
    def handler(event: dict[str, Any], context: Any) -> int:
        return int(event["amount"])

    ctx = FakeLambdaContext()
    assert handler({"id": "x", "amount": 5, "noise": 1}, ctx) == 5
    assert handler({"id": "x", "amount": 5, "noise": 2}, ctx) == 5
    with pytest.raises(PayloadMismatch, match="different payload"):
        handler({"id": "x", "amount": 6}, ctx)


def test_body_raising_releases_the_claim(moto_store: Store) -> None:
    attempts = []

    @idempotent(moto_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return "ok"

    with pytest.raises(RuntimeError):
        handler({"id": "k"}, FakeLambdaContext())
    assert handler({"id": "k"}, FakeLambdaContext()) == "ok"
    assert len(attempts) == 2


def test_concurrent_duplicate_is_in_progress(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns")
    first = keys.claim("k", context=FakeLambdaContext(60_000))
    with pytest.raises(AlreadyInProgress, match="being processed"):
        keys.claim("k", context=FakeLambdaContext(60_000))
    first.complete({"n": 1})
    again = keys.claim("k")
    assert again.replay and again.result == {"n": 1}


def test_zero_remaining_time_is_a_lease_that_already_ended(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns")
    keys.claim("k", context=FakeLambdaContext(0))
    taken = keys.claim("k", context=FakeLambdaContext(60_000))
    assert not taken.replay and taken.fence == 2


def test_zombie_cannot_overwrite_or_delete_newer_owner(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns")
    zombie = keys.claim("k", context=FakeLambdaContext(50))
    time.sleep(0.1)  # the first invocation outlives its lease
    newer = keys.claim("k", context=FakeLambdaContext(60_000))
    assert newer.fence > zombie.fence
    with pytest.raises(LeaseLost, match="another took the key over"):
        zombie.complete("stale")
    assert zombie.release() is False
    with pytest.raises(AlreadyInProgress):
        keys.claim("k", context=FakeLambdaContext(60_000))
    newer.complete("fresh")
    assert keys.claim("k").result == "fresh"
    with pytest.raises(LeaseLost):
        zombie.complete("stale")
    assert keys.claim("k").result == "fresh"


def test_unserializable_result_stores_nothing_and_releases(moto_store: Store) -> None:
    runs = []

    @idempotent(moto_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> Any:
        runs.append(1)
        return {"when": object()} if len(runs) == 1 else {"when": "now"}

    with pytest.raises(NotSerializable, match="cannot be stored as JSON"):
        handler({"id": "a"}, FakeLambdaContext())
    assert handler({"id": "a"}, FakeLambdaContext()) == {"when": "now"}


def test_oversized_result_is_a_clear_error(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns")
    claim = keys.claim("big")
    with pytest.raises(ItemTooLarge, match="Store it in S3"):
        claim.complete("x" * 400_000)
    assert not keys.claim("big").replay, "the claim was released"


def test_expired_completed_record_runs_again(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns", expires_after=timedelta(seconds=1))
    keys.claim("k").complete(1)
    assert keys.claim("k").replay
    time.sleep(2.05)  # expiry is rounded up to a whole second: at most 2 s here
    assert not keys.claim("k").replay, "TTL passed: treated as absent even before deletion"


def test_cache_answers_replays_without_requests(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns", cache_size=10)
    keys.claim("k").complete([1, 2])
    before = moto_store.metrics.total.requests
    assert keys.claim("k").result == [1, 2]
    assert moto_store.metrics.total.requests == before


def test_happy_path_and_replay_cost(moto_store: Store) -> None:
    keys = moto_store.idempotency("ns")
    claim = keys.claim("k", payload={"a": 1})
    claim.complete("r")
    by = moto_store.metrics.by_operation
    assert by["PutItem"].calls == 2, "a PutItem claim, completed by a PutItem of the record"
    assert moto_store.metrics.total.requests == 2
    keys.claim("k", payload={"a": 1})
    assert moto_store.metrics.total.requests == 3, "a replay is one request"


def test_bad_arguments(moto_store: Store) -> None:
    with pytest.raises(InvalidArgument):
        moto_store.idempotency("")
    with pytest.raises(InvalidArgument):
        moto_store.idempotency("ns").claim("")
    with pytest.raises(InvalidArgument, match="selects no idempotency key"):

        @idempotent(moto_store, key="missing.path")
        def handler(event: dict[str, Any], context: Any) -> None:
            return None

        handler({"id": 1}, FakeLambdaContext())
    with pytest.raises(InvalidArgument, match=r"needs a stateless_state\.Store"):
        idempotent(object())(lambda: None)


def test_a_completion_dynamodb_refuses_releases_the_claim(ddb_store: Store) -> None:
    """A 120 KB key with a 300 KB result passes the result check but not DynamoDB's 400 KB
    item limit: the claim must be released, or every retry would meet AlreadyInProgress."""
    keys = ddb_store.idempotency("big")
    key = "k" * 120_000
    claim = keys.claim(key)
    with pytest.raises(ItemTooLarge):
        claim.complete("r" * 300_000)
    retry = keys.claim(key)
    assert not retry.replay and retry.fence == claim.fence + 1
    retry.complete("small")
    assert keys.claim(key).result == "small"


def test_a_cache_hit_still_checks_the_payload(moto_store: Store) -> None:
    runs = []

    @idempotent(moto_store, key="id", validate="amount", cache_size=10)
    def handler(event: dict[str, Any], context: Any) -> Any:
        runs.append(event)
        return event["amount"]

    ctx = FakeLambdaContext(10_000)
    assert handler({"id": "a", "amount": 1}, ctx) == 1
    assert handler({"id": "a", "amount": 1}, ctx) == 1
    requests = moto_store.metrics.total.requests
    with pytest.raises(PayloadMismatch):
        handler({"id": "a", "amount": 999}, ctx)
    assert moto_store.metrics.total.requests == requests, "answered from the cache"
    assert len(runs) == 1


@pytest.mark.parametrize("event", [{"id": None}, {"id": ""}, {"id": []}, {"other": 1}])
def test_a_missing_or_null_key_never_becomes_a_shared_record(
    moto_store: Store, event: dict[str, Any]
) -> None:
    runs = []

    @idempotent(moto_store, key="id")
    def strict(event: dict[str, Any], context: Any) -> int:
        runs.append(event)
        return len(runs)

    @idempotent(moto_store, key="id", raise_on_missing_key=False)
    def lenient(event: dict[str, Any], context: Any) -> int:
        runs.append(event)
        return len(runs)

    ctx = FakeLambdaContext(10_000)
    with pytest.raises(InvalidArgument, match="selects no idempotency key"):
        strict(event, ctx)
    assert runs == []
    assert lenient(event, ctx) == 1
    assert lenient(event, ctx) == 2, "without a key the body runs every time, as configured"
    items = moto_store.client.scan(TableName=moto_store.table_name)["Items"]
    assert items == [], "no record was written for a missing key"


def test_keys_of_other_types_are_distinct(moto_store: Store) -> None:
    @idempotent(moto_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> Any:
        return event["id"]

    ctx = FakeLambdaContext(10_000)
    values = (1, "1", True, "true", {"a": 1}, '{"a":1}', [1], "[1]", 1.5, "1.5")
    assert [handler({"id": v}, ctx) for v in values] == list(values), (
        "a number, a bool, an object or a list never shares a record with a string (as in "
        "Powertools: there 1 and '1' are two keys too)"
    )
    assert handler({"id": 1.0}, ctx) == 1, "1.0 is the number 1: the same key"


def test_a_record_is_never_expired_before_expires_after(moto_store: Store) -> None:
    keys = moto_store.idempotency("ttl", expires_after=1.0)
    claim = keys.claim("k")
    done_at = time.time()
    claim.complete("r")
    [item] = moto_store.client.scan(TableName=moto_store.table_name)["Items"]
    assert int(item["ttl"]["N"]) >= done_at + 1.0, "ttl rounds up, never down"
