"""A clock the test moves by hand, installed with ``stateless_state.clock.using``: time passes
only when the test says (or the code under test sleeps), so a check of a backoff or a lease
holds however loaded the machine is."""

from __future__ import annotations

import threading

from stateless_state import clock


class ManualClock:
    """Wall and monotonic time that stand still until :meth:`advance` (or a :meth:`sleep`,
    which advances it instead of waiting); chance and identity are the system's. Starts at
    ``start`` epoch seconds: give the wall time, so that the TTLs written from it are real ones
    (DynamoDB Local deletes items whose ``ttl`` is past). Safe to share between threads."""

    def __init__(self, start: float) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._elapsed = 0.0

    def time(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> float:
        """Move both clocks ``seconds`` on; returns the new wall time."""
        with self._lock:
            self._elapsed += seconds
            return self._start + self._elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def uniform(self, a: float, b: float) -> float:
        return clock.SYSTEM.uniform(a, b)

    def randrange(self, n: int) -> int:
        return clock.SYSTEM.randrange(n)

    def token_hex(self, nbytes: int) -> str:
        return clock.SYSTEM.token_hex(nbytes)

    def identity(self) -> str:
        return clock.SYSTEM.identity()
