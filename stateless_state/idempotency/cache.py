"""The in-process cache of completed results: a replay that costs no request.

Off by default: this module loads only for an ``Idempotency`` with a ``cache_size``. A hit is
only as fresh as the process: a record deleted or expired in the table is still replayed from
here until its own expiry, which is the record's.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from .. import clock

__all__ = ["Cached", "ResultCache"]


class Cached(NamedTuple):
    """A completed key's result (decoded afresh from its stored JSON at every hit, so a replay
    from here is what a replay from the table gives: nothing the first caller did to the object
    it got shows) and the hash of the payload it was completed with (or None)."""

    result: Any
    digest: str | None


class ResultCache:
    """Up to ``size`` completed results, least recently used dropped first, each until its
    record's expiry. Keyed by the record's partition key, not the idempotency key itself: ``1``,
    ``1.0`` and ``True`` are one dict key but two or three records.

    Thread-safe (one lock around each operation). Cost: memory only, ``size`` entries at most.
    """

    def __init__(self, size: int, expires_after: float) -> None:
        self.size = size
        self.expires_after = expires_after
        self._entries: OrderedDict[str, tuple[str, float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, record_pk: str) -> Cached | None:
        """The cached result of the record ``record_pk``, or None (absent or expired)."""
        with self._lock:
            hit = self._entries.get(record_pk)
            if hit is None or hit[1] <= clock.now():
                self._entries.pop(record_pk, None)
                return None
            self._entries.move_to_end(record_pk)
            text, digest = hit[0], hit[2]
        return Cached(json.loads(text), digest)

    def put(
        self, record_pk: str, result_json: str, digest: str | None, until: float | None = None
    ) -> None:
        """Keep the result, as the JSON text the record stores, until ``until`` (epoch seconds;
        default ``expires_after`` from now)."""
        with self._lock:
            until = until or clock.now() + self.expires_after
            self._entries[record_pk] = (result_json, until, digest)
            self._entries.move_to_end(record_pk)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
