"""16 concurrent invocations per idempotency key whose side effect is a PynamoDB model save
committed with the completion: exactly one save per key, on DynamoDB Local, with leases short
enough that slow bodies are taken over (zombies), and with ambiguous writes and transaction
conflicts injected."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError

from stateless_state import (
    AlreadyInProgress,
    LeaseLost,
    Store,
    TransactionCanceled,
    commit_with_completion,
    idempotent,
)
from stateless_state import pynamodb as ss_pynamodb
from stateless_state.testing import DynamoDBLocal, FaultInjector
from tests.support.pynamodb_models import effect_model

pytestmark = pytest.mark.race

REQUESTS = ["order#1", "order#1/", "%23 🚀", "order"]  # separators, escapes, prefixes
INVOCATIONS = 16


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "ambiguous+conflicts"])
def test_one_save_per_key_whatever_the_interleaving(
    ddb_store: Store, dynamodb_local: DynamoDBLocal, faults: bool
) -> None:
    Effect = effect_model(dynamodb_local)
    salt = uuid.uuid4().hex[:6]
    bodies: Counter[str] = Counter()
    firsts: dict[str, str] = {}
    outcomes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    lock = threading.Lock()

    # No Lambda context: each claim's lease is in_progress_timeout, shorter than the slowest
    # bodies, so some invocations outlive their claim while another takes the key over.
    namespace = f"race-{salt}"
    records = ddb_store.idempotency(namespace)

    @idempotent(
        ddb_store, key="requestContext.requestId", in_progress_timeout=0.15, namespace=namespace
    )
    def handler(event: dict[str, Any], context: Any) -> str:
        request = event["requestContext"]["requestId"]
        with lock:
            bodies[request] += 1
            first = bodies[request] == 1
            # One id per body run: a redelivered event runs the body again under the same
            # invocation id.
            run = f"{event['invocation']}/{bodies[request]}"
            if first:
                firsts[request] = run
        if first:
            # The first body of each key (claim 1) outlives its claim for sure: it goes on
            # until another invocation has taken the key over (a fixed sleep is not enough
            # when injected faults slow the others' claims down).
            # Taken over means another owner token, not a higher fence: an ambiguous claim
            # that botocore retries after the lease ended applies twice (fence 2, same owner).
            # (If a late claim response let another take over before this first read, that
            # other's completion ends the wait: completed by anyone but this body is a takeover.)
            mine = (records.record(request) or {}).get("owner")
            deadline = time.monotonic() + 30
            while True:
                now = records.record(request) or {}
                if now.get("owner") != mine or now.get("status") == "completed":
                    break
                assert time.monotonic() < deadline, f"{request}: never taken over"
                time.sleep(0.02)
        else:
            time.sleep(random.uniform(0.0, 0.3))
        commit_with_completion(ss_pynamodb.save(Effect(request, run, result=run)))
        return run

    def invoke(request: str, n: int) -> None:
        event = {"requestContext": {"requestId": request}, "invocation": f"{n}-{uuid.uuid4()}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                result = handler(event, None)
            except AlreadyInProgress:
                time.sleep(random.uniform(0.01, 0.05))
                continue
            except (LeaseLost, TransactionCanceled, BotoCoreError) as e:
                # Taken over (a zombie), conflicts outlasted the retries (claim released), or
                # botocore's retry quota ran dry under the injected timeouts: like Lambda, the
                # event source delivers the event again.
                with lock:
                    outcomes[request].append((type(e).__name__, None))
                continue
            with lock:
                outcomes[request].append(("result", result))
            return
        raise AssertionError(f"{request}: no result within 60 s")

    injector = FaultInjector(ddb_store.client, seed=7)
    if faults:
        injector.add("ambiguous", rate=0.15)
        # Conflicts hit transactions only (a handful per key): at half of them, a run without
        # one is a 1-in-250 event at worst.
        injector.add("conflict", rate=0.5)
    requests = [f"{r}{salt}" for r in REQUESTS]
    with injector, ThreadPoolExecutor(INVOCATIONS * len(requests)) as pool:
        for future in [
            pool.submit(invoke, request, n) for request in requests for n in range(INVOCATIONS)
        ]:
            future.result()

    for request in requests:
        saved = list(Effect.query(request, consistent_read=True))
        assert len(saved) == 1, f"{request}: {len(saved)} saves committed"
        results = {value for kind, value in outcomes[request] if kind == "result"}
        assert results == {saved[0].invocation}, "every caller got the one committed result"
        assert sum(kind == "result" for kind, _ in outcomes[request]) == INVOCATIONS
        # The first body outlived its claim (it waited for the takeover): its completion, and
        # the save with it, failed (LeaseLost, or conflicts past its lease: either way an
        # error, so its event is delivered again and replays the winner's result).
        assert saved[0].invocation != firsts[request], "the zombie's save was committed"
        assert bodies[request] >= 2
    if faults:
        assert injector.injected["ambiguous"] > 0 and injector.injected["conflict"] > 0
