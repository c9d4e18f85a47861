"""The first claim of an idempotency key is one conditional PutItem (issue 23, item 9), without
giving up the fence: takeovers still add to it, concurrent first claims still have one winner,
and a record that TTL deleted and a new claim recreated at fence 1 cannot be completed by a
zombie of the old record. Real threads on DynamoDB Local, interleavings forced by botocore
hooks on one side's own client."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from stateless_state import AlreadyInProgress, LeaseLost, Store, idempotent
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext

pytestmark = pytest.mark.race

WAIT = 30.0


def other_store(store: Store, engine: DynamoDBLocal) -> Store:
    """The same table through a client of its own, so hooks on it touch one side only."""
    return Store(store.table_name, client=engine.client())


def requests_by_operation(store: Store) -> dict[str, tuple[int, float]]:
    return {op: (m.calls, m.wcu) for op, m in store.metrics.by_operation.items() if m.calls}


def test_a_first_call_is_two_puts_of_one_wcu_each(ddb_store: Store) -> None:
    """The claim's conditional ``PutItem``, then the completion's: the whole record, written
    only while the claim's nonce holds it (DynamoDB Local serves a ``PutItem`` faster than an
    ``UpdateItem``; the fence is the same condition)."""

    @idempotent(ddb_store, key="id")
    def handler(event: dict[str, Any], context: Any) -> str:
        return "done"

    ctx = FakeLambdaContext(30_000)
    handler({"id": "warm"}, ctx)
    ddb_store.metrics.reset()
    assert handler({"id": "k"}, ctx) == "done"
    assert requests_by_operation(ddb_store) == {"PutItem": (2, 2.0)}
    record = ddb_store.idempotency(f"{__name__}.{handler.__qualname__}").record("k")
    assert record is not None and record["fence"] == 1 and record["status"] == "completed"
    ddb_store.metrics.reset()
    assert handler({"id": "k"}, ctx) == "done"
    total = ddb_store.metrics.total
    assert (total.requests, total.condition_failures) == (1, 1), "a replay is one failed put"


@pytest.mark.parametrize("taken_over", [False, True])
def test_a_completed_record_holds_what_the_claim_wrote(ddb_store: Store, taken_over: bool) -> None:
    """Written whole, the completed record keeps every attribute of the claim (key, namespace,
    payload hash, owner, fence, lease) beside the result: nothing a replay, a takeover or an
    operator reads is lost, after a first claim as after a takeover (fence 2)."""
    idem = ddb_store.idempotency("whole")
    first = idem.claim("k", payload={"a": 1})
    if taken_over:
        assert first.release()
        first = idem.claim("k", payload={"a": 1})
    claimed = idem.record("k")
    assert claimed is not None
    first.complete({"r": 1})
    done = idem.record("k")
    assert done is not None
    changed = {k for k in {*claimed, *done} if claimed.get(k) != done.get(k)}
    assert changed == {"status", "result", "ttl"}, changed
    assert (done["fence"], done["hash"], done["key"]) == (
        2 if taken_over else 1,
        claimed["hash"],
        "k",
    )
    replay = idem.claim("k", payload={"a": 1})
    assert replay.replay and replay.result == {"r": 1}


def test_takeovers_still_add_to_the_fence(ddb_store: Store) -> None:
    """Released, expired in progress, expired completed: each takeover is the failed put and
    one conditional update, and the fence goes 1, 2, 3, 4."""
    idem = ddb_store.idempotency("takeover", expires_after=1.0)
    first = idem.claim("k")
    assert first.fence == 1
    assert first.release()
    released = idem.claim("k", context=FakeLambdaContext(0))
    assert released.fence == 2
    ddb_store.metrics.reset()
    expired = idem.claim("k", context=FakeLambdaContext(30_000))
    assert expired.fence == 3
    assert requests_by_operation(ddb_store) == {"PutItem": (1, 0.0), "UpdateItem": (1, 1.0)}
    expired.complete("r")
    time.sleep(2.05)  # the completed record's ttl passes (DynamoDB Local may not delete it yet)
    again = idem.claim("k")
    assert not again.replay and again.fence == 4
    with pytest.raises(LeaseLost):
        expired.complete("stale")
    again.complete("fresh")
    assert idem.claim("k").result == "fresh"


def test_concurrent_first_claims_have_one_winner(
    ddb_store: Store, dynamodb_local: DynamoDBLocal
) -> None:
    """Eight first claims of one fresh key, their PutItems held until all eight are about to
    be sent: one owns the key at fence 1, seven see it in progress."""
    n = 8
    stores = [other_store(ddb_store, dynamodb_local) for _ in range(n)]
    gate = threading.Barrier(n, timeout=WAIT)

    def all_at_once(**_: Any) -> None:
        gate.wait()  # returning None lets the request go

    for store in stores:
        store.client.meta.events.register("before-send.dynamodb.PutItem", all_at_once)
    outcomes: list[Any] = [None] * n

    def claim(i: int) -> None:
        try:
            outcomes[i] = stores[i].idempotency("race").claim("k", context=FakeLambdaContext())
        except AlreadyInProgress as e:
            outcomes[i] = e

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    owners = [o for o in outcomes if not isinstance(o, AlreadyInProgress)]
    assert len(owners) == 1 and owners[0].fence == 1, outcomes
    record = ddb_store.idempotency("race").record("k")
    assert record is not None and record["owner"] == owners[0].owner_token


def hold_after(store: Store, operation: str) -> tuple[threading.Event, threading.Event]:
    """Pause ``store``'s next ``operation`` after its response arrived and before the caller
    sees it: (reached, resume)."""
    reached, resume = threading.Event(), threading.Event()

    def pause(**_: Any) -> None:
        if not reached.is_set():
            reached.set()
            assert resume.wait(WAIT)

    store.client.meta.events.register(f"after-call.dynamodb.{operation}", pause)
    return reached, resume


def test_a_takeover_decided_on_a_stale_read_fails_its_condition(
    ddb_store: Store, dynamodb_local: DynamoDBLocal
) -> None:
    """A's put fails on a released record (claimable, so A will take over); before A's
    update, B takes the key over. A's update carries the claimable condition itself: it
    fails, and A sees B's claim in progress instead of taking it from under B."""
    ddb_store.idempotency("stale").claim("k").release()
    a_store = other_store(ddb_store, dynamodb_local)
    reached, resume = hold_after(a_store, "PutItem")
    outcome: list[Any] = []

    def a() -> None:
        try:
            outcome.append(a_store.idempotency("stale").claim("k", context=FakeLambdaContext()))
        except AlreadyInProgress as e:
            outcome.append(e)

    thread = threading.Thread(target=a)
    thread.start()
    assert reached.wait(WAIT), "A's put was answered"
    b = ddb_store.idempotency("stale").claim("k", context=FakeLambdaContext(60_000))
    assert b.fence == 2
    resume.set()
    thread.join(WAIT)
    assert len(outcome) == 1 and isinstance(outcome[0], AlreadyInProgress), outcome
    record = ddb_store.idempotency("stale").record("k")
    assert record is not None and (record["owner"], record["fence"]) == (b.owner_token, 2)
    b.complete("B")
    assert a_store.idempotency("stale").claim("k").result == "B"


@pytest.mark.parametrize("zombie_fails", [False, True])
def test_a_zombie_cannot_end_a_record_that_ttl_deleted_and_a_new_claim_recreated(
    ddb_store: Store, dynamodb_local: DynamoDBLocal, zombie_fails: bool
) -> None:
    """Z claims at fence 1 and stalls past its lease; the record is deleted (as TTL does once
    it expires); B's first claim puts it again at fence 1 and is still running when Z
    finishes. Same fence, different nonce: Z's completion (or, if Z's body raises, its
    release) changes nothing, and B completes."""
    namespace = f"ttl-{zombie_fails}"
    z_store = other_store(ddb_store, dynamodb_local)
    in_body, finish = threading.Event(), threading.Event()
    z_outcome: list[Any] = []

    def body(event: dict[str, Any], context: Any) -> str:
        in_body.set()
        assert finish.wait(WAIT)
        if zombie_fails:
            raise RuntimeError("Z failed")
        return f"{event['who']} ran"

    z_handler = idempotent(z_store, key="id", namespace=namespace)(body)
    b_handler = idempotent(ddb_store, key="id", namespace=namespace)(body)

    def zombie() -> None:
        try:
            z_outcome.append(z_handler({"id": "k", "who": "Z"}, FakeLambdaContext(200)))
        except (LeaseLost, RuntimeError) as e:
            z_outcome.append(e)

    idem = ddb_store.idempotency(namespace)
    thread = threading.Thread(target=zombie)
    thread.start()
    assert in_body.wait(WAIT)
    z_record = idem.record("k")
    assert z_record is not None and z_record["fence"] == 1
    time.sleep(0.3)  # Z's lease (200 ms) has ended
    ddb_store.client.delete_item(
        TableName=ddb_store.table_name, Key={k: {"S": v} for k, v in idem._key("k").items()}
    )
    b = idem.claim("k", context=FakeLambdaContext(60_000))
    assert b.fence == 1 and b.owner_token != z_record["owner"], "recreated at fence 1"
    in_body.clear()
    finish.set()
    thread.join(WAIT)
    assert len(z_outcome) == 1
    expected: type[Exception] = RuntimeError if zombie_fails else LeaseLost
    assert isinstance(z_outcome[0], expected), z_outcome
    record = idem.record("k")
    assert record is not None
    assert (record["owner"], record["status"], record["fence"]) == (
        b.owner_token,
        "in_progress",
        1,
    ), "Z changed nothing of B's claim"
    b.complete("B ran")
    assert b_handler({"id": "k", "who": "C"}, FakeLambdaContext()) == "B ran"
    assert not in_body.is_set(), "C was a replay"


def test_a_first_completion_never_imports_tenacity(
    ddb_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tenacity is for a completion's second attempt; the common call never loads it."""
    monkeypatch.delitem(sys.modules, "tenacity", raising=False)
    idem = ddb_store.idempotency("cold")
    steps: list[Callable[[], Any]] = [
        lambda: idem.claim("plain").complete("r"),
        lambda: idem.claim("also").complete("r", also=[idem.claim("other").condition_check()]),
        lambda: idem.claim("plain"),
    ]
    for step in steps:
        step()
        assert "tenacity" not in sys.modules
