"""S3 "object created" notifications to :class:`~patterns.batcher.Arrival` objects.

Handles direct S3 notifications, SNS- and SQS-wrapped ones (and SNS inside SQS), and EventBridge
"Object Created" events. Keys are URL-decoded as S3 encodes them (``+`` is a space, ``%2B`` a
plus). The arrival id is ``s3://bucket/key`` plus the object's version id, else its ETag and
sequencer: a rewritten object is a new arrival, a redelivered notification is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from stateless_state import InvalidArgument, MalformedEvent

from .batcher.arrivals import Arrival

__all__ = ["ParseResult", "check_bucket", "parse_s3_event", "s3_arrivals"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", re.ASCII)
# S3's general purpose bucket naming rules: names it refuses to create, so no bucket has them.
_IP_ADDRESS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", re.ASCII)
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket(bucket: str) -> str:
    """``bucket`` if S3 allows it as a general purpose bucket name (3 to 63 of ``a-z 0-9 . -``,
    a letter or digit at each end, no ``..``, not an IP address, none of S3's reserved prefixes
    and suffixes); raises :class:`InvalidArgument` naming the rule otherwise."""
    problem = None
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        problem = "use 3 to 63 of a-z 0-9 . - with a letter or digit at each end"
    elif ".." in bucket:
        problem = "two adjacent periods"
    elif _IP_ADDRESS.fullmatch(bucket):
        problem = "formatted as an IP address"
    elif bucket.startswith(_RESERVED_PREFIXES) or bucket.endswith(_RESERVED_SUFFIXES):
        problem = (
            f"S3 reserves the prefixes {', '.join(_RESERVED_PREFIXES)} and the suffixes "
            f"{', '.join(_RESERVED_SUFFIXES)}"
        )
    if problem is not None:
        raise InvalidArgument(f"{bucket!r} is not a valid S3 bucket name: {problem}")
    return bucket


@dataclass
class ParseResult:
    """Arrivals from every well-formed record, and what was wrong with the rest.

    Each S3 record is parsed on its own, so a bad record never takes a good one with it, even
    inside one SNS or SQS message. ``message_ids[i]`` is the SQS message ``arrivals[i]`` came
    from (None outside SQS). ``failed_message_ids`` lists the SQS messages that held a
    malformed record: return them as ``{"batchItemFailures": [{"itemIdentifier": id}, ...]}``
    (SQS partial batch responses) so SQS redelivers only those (their good records are added
    again as duplicates, which changes nothing), then sends them to the dead-letter queue.
    """

    arrivals: list[Arrival] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_message_ids: list[str] = field(default_factory=list)
    message_ids: list[str | None] = field(default_factory=list)

    def sqs_response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.failed_message_ids]}

    def fail_message(self, message_id: str | None) -> None:
        """Record that SQS message ``message_id`` must be redelivered (once)."""
        if message_id is not None and message_id not in self.failed_message_ids:
            self.failed_message_ids.append(message_id)


def s3_arrivals(event: Mapping[str, Any]) -> list[Arrival]:
    """Every arrival in ``event``; raises :class:`MalformedEvent` naming each bad record.

    ``event`` is the dict Lambda passes, or a Powertools event data class wrapping it
    (``S3Event``, ``SQSEvent``, ``SNSEvent``, ``EventBridgeEvent``...).

    Use :func:`parse_s3_event` to keep the good records of a partly bad event.
    """
    result = parse_s3_event(event)
    if result.errors:
        raise MalformedEvent("; ".join(result.errors))
    return result.arrivals


class _Sink:
    """Where one envelope's records go: arrivals and errors, tagged with their SQS message."""

    def __init__(self, result: ParseResult, where: str, message_id: str | None) -> None:
        self.result, self.where, self.message_id = result, where, message_id

    def arrival(self, arrival: Arrival) -> None:
        self.result.arrivals.append(arrival)
        self.result.message_ids.append(self.message_id)

    def error(self, what: str, problem: str) -> None:
        self.result.errors.append(f"{what}: {problem}")
        self.result.fail_message(self.message_id)

    def attempt(self, what: str, parse: Any) -> None:
        try:
            parse()
        except MalformedEvent as e:
            self.error(what, str(e))


def parse_s3_event(event: Mapping[str, Any]) -> ParseResult:
    """Parse every record it can; collect the errors of the others (nothing valid is lost).

    Every arrival is validated as the batcher will store it (see
    :class:`~patterns.batcher.Arrival`), so a record the batcher would refuse is a parse error
    here, not a failure in the middle of adding an event.
    """
    result = ParseResult()
    # A Powertools data class (a Mapping over the dict it wraps): parse the dict itself.
    event = getattr(event, "raw_event", event)
    if not isinstance(event, Mapping):
        result.errors.append(f"event is a {type(event).__name__}, not a JSON object")
        return result
    if event.get("detail-type") == "Object Created" or event.get("source") == "aws.s3":
        sink = _Sink(result, "event", None)
        sink.attempt("event", lambda: _from_eventbridge(event, sink))
        return result
    if event.get("Event") == "s3:TestEvent":
        return result
    records = event.get("Records")
    if not isinstance(records, list):
        result.errors.append(
            "event has no 'Records' list and is not an EventBridge 'Object Created' event"
        )
        return result
    for i, record in enumerate(records):
        where = f"Records[{i}]"
        if not isinstance(record, Mapping):
            result.errors.append(f"{where} is not an object")
            continue
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:sqs":
            message_id = record.get("messageId")
            sink = _Sink(result, where, str(message_id) if message_id else None)
            sink.attempt(where, lambda r=record, k=sink: _from_text(r.get("body"), "body", k))
        elif source == "aws:sns":
            sink = _Sink(result, where, None)
            sink.attempt(
                where,
                lambda r=record, k=sink: _from_text(
                    (r.get("Sns") or {}).get("Message"), "Sns.Message", k
                ),
            )
        else:
            sink = _Sink(result, where, None)
            _from_s3_records([record], sink, where, single=True)
    return result


def _from_text(text: Any, what: str, sink: _Sink) -> None:
    if not isinstance(text, str):
        raise MalformedEvent(f"{what} is missing or not a string")
    try:
        inner = json.loads(text)
    except json.JSONDecodeError as e:
        raise MalformedEvent(f"{what} is not JSON ({e.msg} at {e.pos})") from None
    if isinstance(inner, Mapping) and inner.get("Type") == "Notification":
        _from_text(inner.get("Message"), f"{what} (SNS) Message", sink)
        return
    if isinstance(inner, Mapping) and inner.get("Event") == "s3:TestEvent":
        return
    if isinstance(inner, Mapping) and (
        inner.get("detail-type") == "Object Created" or inner.get("source") == "aws.s3"
    ):
        _from_eventbridge(inner, sink)
        return
    if not isinstance(inner, Mapping) or not isinstance(inner.get("Records"), list):
        raise MalformedEvent(f"{what} holds no S3 'Records' list")
    _from_s3_records(inner["Records"], sink, f"{sink.where} {what}", single=False)


def _require(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise MalformedEvent(f"missing {path!r}")
        cur = cur[part]
    return cur


def _epoch(text: Any, what: str) -> float:
    if not isinstance(text, str):
        raise MalformedEvent(f"{what} is not a timestamp string")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent(f"{what} {text!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{what} {text!r} has no time zone (S3 sends UTC, ending in Z)")
    return parsed.timestamp()


def _version(value: Any) -> Any:
    # S3 writes versionId "null" for objects written while versioning was off or suspended:
    # that is the absence of a version, not a version id.
    return None if value in (None, "", "null") else value


def _arrival(
    bucket: Any, key: str, *, size: Any, at: float, version: Any, etag: Any, sequencer: Any
) -> Arrival:
    if not isinstance(bucket, str) or not bucket:
        raise MalformedEvent("bucket name is missing or empty")
    if not key:
        raise MalformedEvent("object key is empty")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MalformedEvent(f"object size {size!r} is not a non-negative integer")
    version = _version(version)
    if version:
        tag = f"v={version}"
    elif etag or sequencer:
        tag = f"etag={etag or ''};seq={sequencer or ''}"
    else:
        raise MalformedEvent(f"s3://{bucket}/{key} has no version id, ETag or sequencer")
    data = {"bucket": bucket, "key": key}
    for name, value in (("version_id", version), ("etag", etag), ("sequencer", sequencer)):
        if value:
            data[name] = str(value)
    try:
        return Arrival(f"s3://{bucket}/{key}#{tag}", size, at, data)
    except InvalidArgument as e:
        raise MalformedEvent(f"s3://{bucket}/{key}: {e}") from None


def _from_s3_records(records: Iterable[Any], sink: _Sink, where: str, *, single: bool) -> None:
    for i, record in enumerate(records):
        what = where if single else f"{where} Records[{i}]"
        sink.attempt(what, lambda r=record: _one_s3_record(r, sink))


def _one_s3_record(record: Any, sink: _Sink) -> None:
    name = _require(record, "eventName")
    if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
        return
    obj = _require(record, "s3.object")
    raw_key = _require(record, "s3.object.key")
    if not isinstance(raw_key, str):
        raise MalformedEvent("s3.object.key is not a string")
    sink.arrival(
        _arrival(
            _require(record, "s3.bucket.name"),
            unquote_plus(raw_key),
            size=obj.get("size", 0),
            at=_epoch(_require(record, "eventTime"), "eventTime"),
            version=obj.get("versionId"),
            etag=obj.get("eTag"),
            sequencer=obj.get("sequencer"),
        )
    )


def _from_eventbridge(event: Mapping[str, Any], sink: _Sink) -> None:
    if event.get("detail-type") != "Object Created":
        return
    # EventBridge delivers keys as they are, not URL-encoded.
    key = _require(event, "detail.object.key")
    if not isinstance(key, str):
        raise MalformedEvent("detail.object.key is not a string")
    obj = _require(event, "detail.object")
    sink.arrival(
        _arrival(
            _require(event, "detail.bucket.name"),
            key,
            size=obj.get("size", 0),
            at=_epoch(_require(event, "time"), "time"),
            version=obj.get("version-id"),
            etag=obj.get("etag"),
            sequencer=obj.get("sequencer"),
        )
    )
