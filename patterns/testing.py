"""Test helpers for the patterns: a local S3 server and S3 notification builders.

``LocalS3`` runs moto's S3 server on a free loopback port (moto is a test dependency: install the
``dev`` extra). It serves worker processes too, which an in-process mock cannot. moto is not
thread-safe for races; here it only stores and serves objects.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote_plus

from stateless_state.testing.service import LocalService, local_client

__all__ = [
    "LocalS3",
    "direct",
    "eventbridge",
    "put_object",
    "refuse_long_keys",
    "s3_record",
    "sns",
    "sqs",
]


class LocalS3(LocalService):
    """moto's S3 server on ``127.0.0.1:<free port>``; a context manager."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> LocalS3:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """An S3 client bound to this server, with dummy credentials."""
        return local_client("s3", self.endpoint_url)


def refuse_long_keys(s3: Any) -> Any:
    """Make ``s3`` (a boto3 S3 client) refuse keys over 1,024 UTF-8 bytes as S3 does
    (``KeyTooLongError``, 400) before sending anything: moto accepts them. Returns ``s3``."""
    from botocore.exceptions import ClientError

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key")
        if isinstance(key, str) and len(key.encode()) > 1024:
            raise ClientError(
                {
                    "Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )

    s3.meta.events.register("provide-client-params.s3.*", check)
    return s3


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
    """One S3 notification record, its key URL-encoded as S3 does."""
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


def put_object(
    s3: Any, bucket: str, key: str, body: bytes, *, sequencer: str = "0A"
) -> dict[str, Any]:
    """Write an object and return the notification S3 sends for it: its real ETag, and its
    version id in a versioned bucket (what the pipeline checks before it loads the object)."""
    r = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3_record(
        bucket,
        key,
        len(body),
        etag=r["ETag"].strip('"'),
        version=r.get("VersionId"),
        sequencer=sequencer,
    )


def direct(*records: dict[str, Any]) -> dict[str, Any]:
    """A direct S3 → Lambda event."""
    return {"Records": list(records)}


def sns(*records: dict[str, Any]) -> dict[str, Any]:
    """S3 → SNS → Lambda: one SNS record per S3 record."""
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(direct(r))}} for r in records
        ]
    }


def sqs(*records: dict[str, Any], via_sns: bool = False) -> dict[str, Any]:
    """S3 → SQS (optionally → SNS → SQS) → Lambda: one message per S3 record."""

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


def install_crash_points(rate: float, log_path: str, seed: int) -> None:
    """Make this process SIGKILL itself, with probability ``rate`` at each of the pipeline's
    crash points (:mod:`patterns.hooks`), writing the point's name to ``log_path`` first. For
    crash-torture runs only."""
    import os
    import random
    import signal

    from .hooks import CrashPoint, set_crash_hook

    rng = random.Random(seed)

    def maybe_crash(point: CrashPoint) -> None:
        if rng.random() < rate:
            with open(log_path, "a") as log:  # noqa: PTH123 - one line, then the process dies
                log.write(point + "\n")
            os.kill(os.getpid(), signal.SIGKILL)

    set_crash_hook(maybe_crash)


def s3_events() -> Any:
    """A hypothesis strategy of S3 "object created" events from the whole input domain, in every
    envelope shape (direct, SNS, SQS, SNS inside SQS, EventBridge): hostile keys (spaces, ``+``,
    percent-encoding, ``#``, control characters, unicode, 1,024-byte keys), event times from
    decades ago to minutes ahead, sizes up to S3's 5 TiB, version ids real, absent or ``"null"``.
    Each example is ``(event, [(bucket, key), ...])``: the event and the objects it names, so a
    test can check what its handler made of it."""
    from datetime import UTC, datetime

    from hypothesis import strategies as st

    from stateless_state.testing.strategies import hostile_names, instants

    keys = st.one_of(
        hostile_names(max_size=40).filter(lambda k: k.strip() != ""),
        st.sampled_from(["a b+c.json", "x%2By.json", "日本/ファイル.gz", "q?x=1&y=2#f"]),
        st.just("k" * 1024),
    )
    objects = st.lists(
        st.tuples(st.sampled_from(["bucket-1", "b.2"]), keys), min_size=1, max_size=4
    )
    times = instants(years_back=30, minutes_ahead=10).map(
        lambda t: datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
    sizes = st.integers(0, 5 * 2**40)
    versions = st.sampled_from([None, "null", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"])

    def build(
        envelope: str, objs: list[tuple[str, str]], when: str, size: int, version: str | None
    ) -> tuple[dict[str, Any], list[Any]]:
        if envelope == "eventbridge":
            bucket, key = objs[0]
            event = eventbridge(bucket, key, size)
            event["time"] = when
            return event, [objs[0]]
        records = [
            s3_record(b, k, size, etag=f"e{i}", event_time=when, version=version)
            for i, (b, k) in enumerate(objs)
        ]
        wrapper = {"direct": direct, "sns": sns, "sqs": sqs}
        if envelope == "sqs+sns":
            return sqs(*records, via_sns=True), objs
        return wrapper[envelope](*records), objs

    envelopes = st.sampled_from(["direct", "sns", "sqs", "sqs+sns", "eventbridge"])
    return st.builds(build, envelopes, objects, times, sizes, versions)


def arrival_streams(n: int = 50) -> Any:
    """A hypothesis strategy of arrival-id streams with duplicates, reordered: lists of ids
    where some ids repeat, in any order."""
    from hypothesis import strategies as st

    ids = st.lists(st.integers(0, n), min_size=1, max_size=n).map(
        lambda xs: [f"s3://bucket/obj-{x}#etag=e" for x in xs]
    )
    return ids.flatmap(st.permutations)
