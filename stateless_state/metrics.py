"""Per-process request and capacity accounting.

Every DynamoDB call made through a :class:`~stateless_state.Store` asks for
``ReturnConsumedCapacity=TOTAL`` and lands here, so what a handler's state costs is a number a user
can read (and a benchmark can compare), not a guess.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields, replace

__all__ = ["Metrics", "OperationStats"]


@dataclass
class OperationStats:
    """Counts for one DynamoDB operation (``UpdateItem``, ``TransactWriteItems``...).

    ``requests`` counts HTTP attempts, botocore's own retries included; ``calls`` counts the calls
    the library made. ``retries`` is botocore's retries plus the library's own (tenacity) retries.
    """

    calls: int = 0
    requests: int = 0
    wcu: float = 0.0
    rcu: float = 0.0
    condition_failures: int = 0
    conflicts: int = 0
    retries: int = 0
    errors: int = 0

    def __add__(self, other: OperationStats) -> OperationStats:
        return OperationStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __sub__(self, other: OperationStats) -> OperationStats:
        return OperationStats(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)}
        )


@dataclass
class Metrics:
    """Thread-safe counters by operation. ``snapshot()`` and subtraction give the cost of a span.

    >>> before = store.metrics.snapshot()
    >>> counter.add(1)
    >>> (store.metrics.snapshot() - before).total.wcu
    1.0
    """

    by_operation: dict[str, OperationStats] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(
        self,
        operation: str,
        *,
        requests: int = 1,
        wcu: float = 0.0,
        rcu: float = 0.0,
        condition_failure: bool = False,
        conflict: bool = False,
        retries: int = 0,
        error: bool = False,
    ) -> None:
        """Add one call's figures to ``operation``."""
        with self._lock:
            s = self.by_operation.setdefault(operation, OperationStats())
            s.calls += 1
            s.requests += requests
            s.wcu += wcu
            s.rcu += rcu
            s.condition_failures += int(condition_failure)
            s.conflicts += int(conflict)
            s.retries += retries
            s.errors += int(error)

    def record_retry(self, operation: str) -> None:
        """Count one retry made by the library itself (not by botocore)."""
        with self._lock:
            self.by_operation.setdefault(operation, OperationStats()).retries += 1

    @property
    def total(self) -> OperationStats:
        """All operations added together."""
        with self._lock:
            out = OperationStats()
            for s in self.by_operation.values():
                out = out + s
            return out

    def snapshot(self) -> Metrics:
        """A frozen copy, for subtracting from a later one."""
        with self._lock:
            return Metrics({k: replace(v) for k, v in self.by_operation.items()})

    def reset(self) -> None:
        """Zero every count."""
        with self._lock:
            self.by_operation.clear()

    def __sub__(self, other: Metrics) -> Metrics:
        mine, theirs = self.snapshot().by_operation, other.snapshot().by_operation
        return Metrics(
            {k: v - theirs.get(k, OperationStats()) for k, v in mine.items() if v != theirs.get(k)}
        )

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Plain data, for JSON output and reports."""
        with self._lock:
            return {
                k: {f.name: getattr(v, f.name) for f in fields(v)}
                for k, v in sorted(self.by_operation.items())
            }
