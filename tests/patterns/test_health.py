"""patterns.health: what the sweeper reports for the alarms, from a stream's batches in every
state (DynamoDB Local: the pending and failed index partitions as the sweeper reads them)."""

from __future__ import annotations

import json
import time

import pytest

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.health import FAILED, OLDEST_WAITING, WAITING, batch_health, publish_health
from stateless_state import Store
from tests.support.emf import check_emf


def seal(b: Batcher, tag: str) -> str:
    for n in (1, 2):
        result = b.add(Arrival(f"s3://b/{tag}-{n}", 5, time.time(), {"bucket": "b", "key": tag}))
    assert result.sealed is not None
    return result.sealed.id


def test_the_health_counts_waiting_and_failed_batches_and_the_oldest_wait(
    ddb_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    b = Batcher(ddb_store, "ops", Thresholds(count=2, bytes=None, age=None), max_attempts=1)
    idle = batch_health(b)
    assert (idle.waiting, idle.oldest_waiting, idle.failed) == (0, 0.0, 0)
    first = seal(b, "first")  # waits: sealed, never claimed
    b.claim_load(seal(b, "loading"))  # waits: loading under its lease
    b.claim_load(seal(b, "failed")).failed("COPY failed")  # failed for good
    b.claim_load(seal(b, "loaded")).loaded()  # done
    oldest = b.batch(first)
    assert oldest is not None and oldest.sealed_at is not None
    health = batch_health(b, now=oldest.sealed_at + 90)
    assert (health.waiting, health.failed) == (2, 1)
    assert health.oldest_waiting == pytest.approx(90)
    capsys.readouterr()
    published = publish_health(b, namespace="Ops")
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    check_emf(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Table", "Stream"]]
    assert (doc["Table"], doc["Stream"]) == (ddb_store.table_name, "ops")
    assert (doc[WAITING], doc[FAILED]) == (2, 1) and doc[OLDEST_WAITING] >= 0
    assert published.waiting == 2
