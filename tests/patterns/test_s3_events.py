"""S3 event parsing: every envelope, hostile keys, malformed input."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings

from patterns.s3 import parse_s3_event, s3_arrivals
from patterns.testing import direct, eventbridge, s3_events, s3_record, sns, sqs
from stateless_state import MalformedEvent

ODD_KEYS = [
    "plain/file.json",
    "with space/and+plus.json",
    "percent%2Bliteral.json",
    "unicode/日本語/ファイル.jsonl",
    "emoji/🚀.json.gz",
    "a" * 1024,
    "trailing space ",
    "q?x=1&y=2#frag",
]


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("envelope", ["direct", "sns", "sqs", "sqs+sns"])
def test_keys_are_decoded_in_every_envelope(key: str, envelope: str) -> None:
    record = s3_record("bucket-1", key, 42)
    event = {
        "direct": lambda: direct(record),
        "sns": lambda: sns(record),
        "sqs": lambda: sqs(record),
        "sqs+sns": lambda: sqs(record, via_sns=True),
    }[envelope]()
    [arrival] = s3_arrivals(event)
    assert arrival.data["key"] == key
    assert arrival.data["bucket"] == "bucket-1"
    assert arrival.size == 42
    assert arrival.id == f"s3://bucket-1/{key}#etag=e1;seq=0A"


def test_eventbridge_keys_are_taken_as_they_are() -> None:
    [arrival] = s3_arrivals(eventbridge("b-1", "dir/a+b c.json", 7))
    assert arrival.data["key"] == "dir/a+b c.json"
    assert arrival.at == pytest.approx(1795428000.0)


def test_identity_follows_version_or_etag() -> None:
    same = s3_arrivals(direct(s3_record("bkt", "k", 1), s3_record("bkt", "k", 1)))
    assert same[0].id == same[1].id, "a redelivered event is the same arrival"
    rewritten = s3_arrivals(direct(s3_record("bkt", "k", 1, etag="e2", sequencer="0B")))
    assert rewritten[0].id != same[0].id, "a rewritten object is a new arrival"
    versioned = s3_arrivals(direct(s3_record("bkt", "k", 1, version="v7")))
    assert versioned[0].id == "s3://bkt/k#v=v7"


def test_test_event_and_other_event_names_yield_nothing() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "bkt"}
    assert s3_arrivals(test_event) == []
    assert s3_arrivals(sqs_raw(json.dumps(test_event))) == []
    assert s3_arrivals(direct(s3_record("bkt", "k", 1, name="ObjectRemoved:Delete"))) == []


def sqs_raw(body: str, message_id: str = "m0") -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:sqs", "messageId": message_id, "body": body}]}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "no 'Records' list"),
        ([], "not a JSON object"),
        ({"Records": ["x"]}, "Records[0] is not an object"),
        (direct({"eventName": "ObjectCreated:Put"}), "missing 's3.object'"),
        (direct({**s3_record("bkt", "k", 1), "eventTime": "yesterday"}), "not an ISO 8601"),
        (direct(s3_record("bkt", "k", -1)), "not a non-negative integer"),
        (direct(s3_record("bkt", "k", 1, etag="", sequencer="")), "no version id, ETag"),
        (sqs_raw("{not json"), "body is not JSON"),
        (sqs_raw(json.dumps({"hello": 1})), "no S3 'Records' list"),
    ],
)
def test_malformed_events_name_the_problem(event: Any, message: str) -> None:
    with pytest.raises(MalformedEvent, match=re.escape(message)):
        s3_arrivals(event)


def test_a_bad_record_loses_none_of_the_good_ones() -> None:
    good = s3_record("bkt", "good.json", 5)
    event = sqs(good, good)
    event["Records"].insert(1, {"eventSource": "aws:sqs", "messageId": "bad", "body": "{"})
    result = parse_s3_event(event)
    assert len(result.arrivals) == 2
    assert result.failed_message_ids == ["bad"]
    assert result.sqs_response() == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    with pytest.raises(MalformedEvent, match=r"Records\[1\]"):
        s3_arrivals(event)


@settings(max_examples=150, deadline=None)
@given(example=s3_events())
def test_every_generated_envelope_parses_to_its_objects(example: Any) -> None:
    event, objects = example
    arrivals = s3_arrivals(event)
    assert [(a.data["bucket"], a.data["key"]) for a in arrivals] == objects


@pytest.mark.parametrize("envelope", ["direct", "sns", "sqs", "eventbridge"])
def test_powertools_event_data_classes_parse_like_their_dicts(envelope: str) -> None:
    from aws_lambda_powertools.utilities.data_classes import (
        EventBridgeEvent,
        S3Event,
        SNSEvent,
        SQSEvent,
    )

    good, bad = s3_record("bkt", "a#b/🚀 c.json", 9), s3_record("bkt", "bad.json", -1)
    event, wrapper = {
        "direct": (direct(good), S3Event),
        "sns": (sns(good), SNSEvent),
        "sqs": (sqs(good, bad), SQSEvent),
        "eventbridge": (eventbridge("bkt", "a#b/🚀 c.json", 9), EventBridgeEvent),
    }[envelope]
    wrapped = wrapper(event)
    assert parse_s3_event(wrapped) == parse_s3_event(event)
    assert [a.data["key"] for a in parse_s3_event(wrapped).arrivals] == ["a#b/🚀 c.json"]
    if envelope == "sqs":
        assert len(parse_s3_event(wrapped).failed_message_ids) == 1
