"""Fault injection through botocore's event hooks.

DynamoDB Local never throttles and never reports ``TransactionConflict``; real DynamoDB does both,
and any network can lose a response after the write was applied. :class:`FaultInjector` makes a
client see all of these, so tests exercise the same retry paths production will:

* ``throttle``: a ``ProvisionedThroughputExceededException`` instead of sending (botocore retries).
* ``server_error``: an HTTP 500 ``InternalServerError`` instead of sending (botocore retries).
* ``conflict``: a ``TransactionCanceledException`` with ``TransactionConflict`` reasons, for
  ``TransactWriteItems`` only (botocore does not retry it; the library does).
* ``ambiguous``: the request **is sent and applied**, then the client sees a read timeout, and
  botocore retries it: the write lands twice unless it is idempotent.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from ..errors import InvalidArgument

__all__ = [
    "FAULT_KINDS",
    "FaultInjector",
    "conflict_response",
    "dynamodb_response",
    "error_response",
]

FAULT_KINDS = ("throttle", "server_error", "conflict", "ambiguous")
"""What :meth:`FaultInjector.add` can inject."""
_WRITE_OPS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def dynamodb_response(url: str, status: int, payload: dict[str, Any]) -> AWSResponse:
    """An HTTP response as DynamoDB would send it, carrying ``payload`` as its JSON body."""
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    return AWSResponse(url, status, headers, _Raw(json.dumps(payload).encode()))


def error_response(url: str, status: int, code: str, message: str, **extra: Any) -> AWSResponse:
    """A DynamoDB error response: botocore parses ``code`` from it and retries what it retries."""
    payload = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
    return dynamodb_response(url, status, {**payload, **extra})


def conflict_response(url: str, body: bytes | str | None) -> AWSResponse:
    """``TransactionCanceledException`` with a ``TransactionConflict`` reason for each action of
    the ``TransactWriteItems`` whose request ``body`` is given."""
    count = len(json.loads(body or b"{}").get("TransactItems", [])) or 1
    return error_response(
        url,
        400,
        "TransactionCanceledException",
        "Transaction cancelled (injected conflict)",
        CancellationReasons=[{"Code": "TransactionConflict", "Message": "injected"}] * count,
    )


@dataclass
class _Rule:
    kind: str
    rate: float
    operations: frozenset[str] | None
    exhaust: bool


def _attempt(request: Any) -> tuple[int, int]:
    """botocore's own ``amz-sdk-request: attempt=N; max=M`` header, as (N, M)."""
    raw = request.headers.get("amz-sdk-request", b"")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    fields = dict(p.strip().split("=", 1) for p in text.split(";") if "=" in p)
    return int(fields.get("attempt", 1)), int(fields.get("max", 0))


@dataclass
class FaultInjector:
    """Inject faults into one boto3 client's DynamoDB calls, at a given rate per HTTP attempt.

    >>> with FaultInjector(store.client, seed=1) as faults:
    ...     faults.add("ambiguous", rate=0.33)
    ...     counter.add(1, token="event-1")
    >>> faults.injected["ambiguous"]

    Rules apply to write operations unless ``operations`` names others. Decisions come from a
    seeded RNG; under threads the order of draws varies, the rates do not.

    botocore's standard retry mode keeps a retry quota per client (500 units; a retry costs 14, 5
    for throttling, refunded only when the call ends in a 2xx). An ambiguous *conditional* write
    ends in a 400 (its retry meets its own write), so at high injected rates the quota drains
    and botocore stops retrying: a real effect that tests at unrealistic rates will meet.
    """

    client: Any
    seed: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    _rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(init=False)
    _active: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(
        self,
        kind: str,
        rate: float,
        operations: Iterable[str] | None = None,
        *,
        exhaust: bool = False,
    ) -> FaultInjector:
        """Inject ``kind`` (one of :data:`FAULT_KINDS`) on a ``rate`` fraction of attempts.

        By default a fault is never injected on the last attempt botocore will make, so every
        injected fault is one botocore's retries can recover from (as transient faults are).
        ``exhaust=True`` lets faults reach the caller too (``conflict`` always does: botocore
        does not retry it).
        """
        if kind not in FAULT_KINDS:
            raise InvalidArgument(f"unknown fault {kind!r}; choose from {FAULT_KINDS}")
        if not 0.0 <= rate <= 1.0:
            raise InvalidArgument(f"rate must be within [0, 1], got {rate}")
        ops = frozenset(operations) if operations is not None else None
        with self._lock:
            self._rules.append(_Rule(kind, rate, ops, exhaust))
        return self

    def clear(self) -> None:
        """Remove every rule (counts in ``injected`` stay)."""
        with self._lock:
            self._rules.clear()

    def __enter__(self) -> FaultInjector:
        self.client.meta.events.register("before-send.dynamodb.*", self._before_send)
        self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.meta.events.unregister("before-send.dynamodb.*", self._before_send)
        self._active = False

    def _pick(self, operation: str, attempt: int, max_attempts: int) -> str | None:
        last = max_attempts > 0 and attempt >= max_attempts
        with self._lock:
            for rule in self._rules:
                if last and not rule.exhaust and rule.kind != "conflict":
                    continue
                applies = (
                    operation in rule.operations
                    if rule.operations is not None
                    else operation in _WRITE_OPS
                )
                if rule.kind == "conflict" and operation != "TransactWriteItems":
                    applies = False
                if applies and self._rng.random() < rule.rate:
                    self.injected[rule.kind] += 1
                    return rule.kind
        return None

    def _before_send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        operation = target.rsplit(".", 1)[-1]
        kind = self._pick(operation, *_attempt(request))
        if kind is None:
            return None
        url = request.url
        if kind == "throttle":
            return error_response(
                url, 400, "ProvisionedThroughputExceededException", "injected throttle"
            )
        if kind == "server_error":
            return error_response(url, 500, "InternalServerError", "injected 5xx")
        if kind == "conflict":
            return conflict_response(url, request.body)
        # ambiguous: apply the request for real, then lose the response.
        self.client._endpoint.http_session.send(request)
        raise ReadTimeoutError(endpoint_url=url)
