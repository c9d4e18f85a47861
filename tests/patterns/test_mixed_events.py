"""Events that mix good and bad records: every good record is added, only the bad ones fail (for
SQS: exactly the bad messages in ``batchItemFailures``)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns.batcher import Thresholds
from patterns.batcher.members import digest
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.s3 import parse_s3_event, s3_arrivals
from patterns.testing import direct, s3_record, sns
from stateless_state import MalformedEvent, Store, keys
from stateless_state.testing.strategies import hostile_names, instants


def pipeline(store: Store, tmp_path: Path, stream: str = "mixed") -> S3ToRedshift:
    # Thresholds no test reaches: these tests are about adding, not loading.
    return S3ToRedshift(
        store,
        stream=stream,
        loader=LocalWarehouseLoader(tmp_path / "wh.db", None),
        manifest_bucket="manifests-bucket",
        thresholds=Thresholds(count=10_000, bytes=None, age=None),
    )


def bad_record(kind: str, key: str) -> dict[str, Any]:
    r = s3_record("bkt", key, 5)
    if kind == "huge":
        r["s3"]["object"]["size"] = 2**130
    elif kind == "time":
        r["eventTime"] = "yesterday"
    elif kind == "naive":
        r["eventTime"] = "2026-11-23T10:00:00"
    elif kind == "nobucket":
        del r["s3"]["bucket"]
    return r


def sqs_message(message_id: str, *records: dict[str, Any]) -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "messageId": message_id, "body": json.dumps(direct(*records))}


def members(p: S3ToRedshift) -> set[str]:
    return {m.id for b in p.batcher.batches() for m in p.batcher.members(b.id)}


def test_a_bad_record_beside_a_good_one_in_one_message(moto_store: Store, tmp_path: Path) -> None:
    p = pipeline(moto_store, tmp_path)
    event = {
        "Records": [
            sqs_message("m0", s3_record("bkt", "a.json", 1)),
            sqs_message("m1", s3_record("bkt", "b.json", 2), bad_record("huge", "c.json")),
            {"eventSource": "aws:sqs", "messageId": "m2", "body": "{"},
            sqs_message("m3", bad_record("naive", "d.json"), s3_record("bkt", "e.json", 3)),
            sqs_message("m4", s3_record("bkt", "f.json", 4)),
        ]
    }
    out = p.handle(event)
    assert out["batchItemFailures"] == [{"itemIdentifier": m} for m in ("m1", "m2", "m3")]
    added = {f"s3://bkt/{k}.json#etag=e1;seq=0A" for k in "abef"}
    assert members(p) == added, "every good record, even beside a bad one, is a member"
    # SQS redelivers m1, m2 and m3: their good records are duplicates, the bad still fail.
    again = {"Records": event["Records"][1:4]}
    out = p.handle(again)
    assert out["duplicates"] == 2
    assert out["batchItemFailures"] == [{"itemIdentifier": m} for m in ("m1", "m2", "m3")]
    assert members(p) == added


def test_sns_good_records_are_added_before_the_invocation_fails(
    moto_store: Store, tmp_path: Path
) -> None:
    p = pipeline(moto_store, tmp_path)
    message = {
        "EventSource": "aws:sns",
        "Sns": {
            "Message": json.dumps(
                direct(s3_record("bkt", "g.json", 1), bad_record("time", "h.json"))
            )
        },
    }
    event = {"Records": [message, *sns(s3_record("bkt", "i.json", 2))["Records"]]}
    with pytest.raises(MalformedEvent, match="'yesterday' is not an ISO 8601 time"):
        p.handle(event)
    assert members(p) == {"s3://bkt/g.json#etag=e1;seq=0A", "s3://bkt/i.json#etag=e1;seq=0A"}
    with pytest.raises(MalformedEvent):
        p.handle(event)  # Lambda's retry: nothing new, nothing lost
    assert len(members(p)) == 2


def test_an_add_that_fails_fails_only_its_message(
    moto_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline(moto_store, tmp_path)
    table = p.batcher.store.table
    real_call = table.call
    poison = keys.arrival(p.batcher.stream, digest("s3://bkt/poison.json#etag=e1;seq=0A")).pk

    def flaky(operation: str, **kwargs: Any) -> Any:
        # Any request that carries the poisoned arrival fails, with its siblings in it.
        if operation == "TransactWriteItems" and poison in json.dumps(kwargs, default=repr):
            raise RuntimeError("the table is having a bad day")
        return real_call(operation, **kwargs)

    monkeypatch.setattr(table, "call", flaky)
    event = {
        "Records": [
            sqs_message("ok", s3_record("bkt", "j.json", 1)),
            sqs_message("poisoned", s3_record("bkt", "poison.json", 1)),
            sqs_message("ok2", s3_record("bkt", "k.json", 1)),
        ]
    }
    out = p.handle(event)
    assert out["batchItemFailures"] == [{"itemIdentifier": "poisoned"}]
    assert len(members(p)) == 2
    with pytest.raises(RuntimeError):
        p.handle(direct(s3_record("bkt", "poison.json", 1), s3_record("bkt", "l.json", 1)))
    assert "s3://bkt/l.json#etag=e1;seq=0A" in members(p), "its sibling was added first"


def test_a_null_version_id_is_no_version() -> None:
    record = s3_record("bkt", "n.json", 1, version="null", etag="e9", sequencer="09")
    [arrival] = s3_arrivals(direct(record))
    assert arrival.id == "s3://bkt/n.json#etag=e9;seq=09"
    assert "version_id" not in arrival.data
    [versioned] = s3_arrivals(direct(s3_record("bkt", "n.json", 1, version="3HL4kqtJ")))
    assert versioned.id == "s3://bkt/n.json#v=3HL4kqtJ"


BAD_KINDS = ["huge", "time", "naive", "nobucket"]
record_spec = st.tuples(st.sampled_from([None, *BAD_KINDS]), hostile_names(max_size=8))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    messages=st.lists(st.lists(record_spec, min_size=1, max_size=3), min_size=1, max_size=6),
    at=instants(years_back=20, minutes_ahead=10),
)
def test_sqs_failures_are_exactly_the_bad_messages(
    moto_store: Store, tmp_path: Path, messages: list[list[tuple[str | None, str]]], at: float
) -> None:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    records, bad, good = [], set(), set()
    for i, specs in enumerate(messages):
        rs = []
        for j, (kind, drawn) in enumerate(specs):
            key = f"{i}-{j}-{drawn}"
            if kind is None:
                r = s3_record("bkt", key, j, event_time=when)
                good.add(f"s3://bkt/{key}#etag=e1;seq=0A")
            else:
                r = bad_record(kind, key)
                bad.add(f"m{i}")
            rs.append(r)
        records.append(sqs_message(f"m{i}", *rs))
    parsed = parse_s3_event({"Records": records})
    assert {a.id for a in parsed.arrivals} == good
    assert set(parsed.failed_message_ids) == bad
    p = pipeline(moto_store, tmp_path, stream=uuid.uuid4().hex)  # examples share the table
    out = p.handle({"Records": records})
    assert {f["itemIdentifier"] for f in out["batchItemFailures"]} == bad
    assert members(p) == good
