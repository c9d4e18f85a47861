"""Builders of S3 notification events in each envelope shape, for the tests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus


def s3_record(
    bucket: str,
    key: str,
    size: int,
    *,
    etag: str = "e1",
    sequencer: str = "0A",
    version: str | None = None,
    event_time: str = "2026-11-23T10:00:00.000Z",
    name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag,
        "sequencer": sequencer,
    }
    if version:
        obj["versionId"] = version
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": event_time,
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }


def direct(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sns(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(direct(r))}} for r in records
        ]
    }


def sqs(*records: dict[str, Any], via_sns: bool = False) -> dict[str, Any]:
    def body(r: dict[str, Any]) -> str:
        inner = json.dumps(direct(r))
        if via_sns:
            return json.dumps({"Type": "Notification", "Message": inner})
        return inner

    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m{i}", "body": body(r)}
            for i, r in enumerate(records)
        ]
    }


def eventbridge(
    bucket: str, key: str, size: int, *, etag: str = "e1", sequencer: str = "0A"
) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-11-23T10:00:00Z",
        "detail": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": sequencer},
        },
    }
