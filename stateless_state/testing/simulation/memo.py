"""Answers remembered across schedules: a request sent from a state seen before is answered from
memory, without moto.

Stateless model checking re-runs every schedule from the start, so consecutive schedules share
long prefixes: depth-first search changes one choice near the end and runs the rest again. moto
costs a few milliseconds per request, most of a schedule's wall time. The memo is a tree whose
nodes are backend states (each service's state, and moto's random generator) and whose edges are
requests, each with the answer it got: while a schedule follows edges already in the tree, moto is
not asked and its live state is left behind; at the first request the tree has not seen, the live
state is restored to that node (a deep copy of the services that differ) and moto answers.

That is exact only if an answer depends on nothing but the state and the request. So the edge's
key is the request's method, URL, body and every header that is not per-attempt (signature, date,
invocation id, attempt count); virtual time is in the key where an answer depends on it
(``TransactWriteItems``, for its ``ClientRequestToken`` window; S3 writes, for ``LastModified``;
and TTL deletion); and the
simulation's own remembered tokens are replayed along the edge. A replay runs without the memo,
so the test that a failure replays to the same request trace checks the memo too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "Memo", "Node", "body_bytes", "request_key"]

_PER_ATTEMPT = frozenset(
    {"authorization", "x-amz-date", "amz-sdk-invocation-id", "amz-sdk-request", "user-agent"}
)

READS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "DescribeTable",
        "DescribeTimeToLive",
        "ListTables",
        "HeadObject",
        "GetObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "HeadBucket",
        "GetBucketVersioning",
    }
)
"""Operations that leave moto's service state as it was (moto's random generator still moves)."""

MAX_SAVED = 20_000
"""Saved service states kept before the tree is dropped and grown again (bounds memory)."""


TIMED = frozenset(
    {"TransactWriteItems", "PutObject", "CopyObject", "CompleteMultipartUpload", "UploadPart"}
)
"""Operations whose answer or resulting state depends on the time they are sent: a
``ClientRequestToken``'s window, an S3 object's ``LastModified``."""


def body_bytes(request: Any) -> bytes:
    """A prepared request's body as bytes: a streamed body (a file object, as uploads send) is
    read and put back where it was, so that two bodies of different content never look alike."""
    body = request.body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if body is not None and hasattr(body, "read") and hasattr(body, "seek"):
        # botocore's chunked upload wrapper can seek but not tell; it is unread at this point
        at = body.tell() if hasattr(body, "tell") else 0
        data = body.read()
        body.seek(at)
        return data.encode() if isinstance(data, str) else bytes(data)
    return b""


def request_key(request: Any, service: str, operation: str, now: float) -> Hashable:
    """What an answer may depend on, besides the state: the request without its per-attempt
    headers, and virtual time where the answer depends on it."""
    raw = body_bytes(request)
    headers = sorted(
        (k.lower(), str(v)) for k, v in request.headers.items() if k.lower() not in _PER_ATTEMPT
    )
    digest = hashlib.sha1(raw + repr(headers).encode()).digest()
    timed = now if operation in TIMED else None
    return (service, operation, request.method, request.url, digest, timed)


@dataclass(frozen=True)
class Answer:
    """moto's answer to one request, and the ``ClientRequestToken`` it made the run remember."""

    status: int
    headers: dict[str, str]
    body: bytes | str
    token: tuple[str, tuple[str, float]] | None = None


@dataclass(eq=False)
class Node:
    """One backend state: each service's saved state (shared with the parent for services the
    edge did not write) and moto's random generator's state."""

    states: tuple[Any, ...]
    random: Any
    edges: dict[Hashable, tuple[Node, Any]] = field(default_factory=dict)


class Memo:
    """The tree of states and answers for one exploration.

    ``save(i)`` returns a deep copy of service ``i``'s live state, ``restore(i, saved)`` puts a
    copy of ``saved`` back; ``get_random``/``set_random`` do the same for moto's generator.
    """

    def __init__(
        self,
        save: Callable[[int], Any],
        restore: Callable[[int, Any], None],
        get_random: Callable[[], Any],
        set_random: Callable[[Any], None],
    ) -> None:
        self._save = save
        self._restore = restore
        self._get_random = get_random
        self._set_random = set_random
        self._roots: dict[int, Node] = {}
        self._saved = 0
        self._live: list[Any] = []
        self.node: Node | None = None
        self.hits = 0
        self.misses = 0

    def begin(self, seed: int, states: tuple[Any, ...], random: Any) -> None:
        """Start a schedule at the root for ``seed`` (whose state is ``states`` and ``random``).
        Nothing is restored yet: that waits for the first request the tree has not seen."""
        if self._saved > MAX_SAVED:
            self._roots.clear()
            self._saved = 0
        root = self._roots.get(seed)
        if root is None:
            root = self._roots[seed] = Node(states, random)
        self.node = root
        if not self._live:
            self._live = [None] * len(states)

    def follow(self, key: Hashable) -> Any | None:
        """The remembered answer to ``key`` from the current state (moving to the state after it),
        or ``None``."""
        assert self.node is not None
        edge = self.node.edges.get(key)
        if edge is None:
            self.misses += 1
            return None
        self.hits += 1
        self.node = edge[0]
        return edge[1]

    def sync(self) -> None:
        """Make the live state the current node's: restore each service that differs."""
        node = self.node
        assert node is not None
        for i, saved in enumerate(node.states):
            if self._live[i] is not saved:
                self._restore(i, saved)
                self._live[i] = saved
        self._set_random(node.random)

    def record(self, key: Hashable, answer: Any, wrote: int | None) -> None:
        """Remember ``answer`` to ``key`` from the current (synced) state; ``wrote`` is the index
        of the service the request may have changed (``None`` for a read)."""
        node = self.node
        assert node is not None
        states = node.states
        if wrote is not None:
            saved = self._save(wrote)
            self._saved += 1
            states = (*states[:wrote], saved, *states[wrote + 1 :])
            self._live[wrote] = saved
        child = Node(states, self._get_random())
        node.edges[key] = (child, answer)
        self.node = child
