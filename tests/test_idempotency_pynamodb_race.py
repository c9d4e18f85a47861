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
from tests.pynamodb_models import effect_model

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
    outcomes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    lock = threading.Lock()

    # No Lambda context: each claim's lease is in_progress_timeout, shorter than the slowest
    # bodies, so some invocations outlive their claim while another takes the key over.
    @idempotent(ddb_store, key="requestContext.requestId", in_progress_timeout=0.15)
    def handler(event: dict[str, Any], context: Any) -> str:
        request = event["requestContext"]["requestId"]
        invocation = event["invocation"]
        with lock:
            bodies[request] += 1
            first = bodies[request] == 1
        # The first body of each key outlives its claim for sure; the others may.
        time.sleep(0.35 if first else random.uniform(0.0, 0.3))
        commit_with_completion(ss_pynamodb.save(Effect(request, invocation, result=invocation)))
        return str(invocation)

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
        injector.add("conflict", rate=0.1)
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
        assert outcomes[request].count(("LeaseLost", None)) >= 1, "the slow first was a zombie"
        assert bodies[request] >= 2
    if faults:
        assert injector.injected["ambiguous"] > 0 and injector.injected["conflict"] > 0
