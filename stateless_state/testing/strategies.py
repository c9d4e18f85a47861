"""Hypothesis strategies for concurrency tests (hypothesis is a test dependency).

S3 notification strategies live with the pattern they feed: ``patterns.testing``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hypothesis import strategies as st

__all__ = ["schedules"]

T = TypeVar("T")


def schedules(
    ops: st.SearchStrategy[T],
    *,
    workers: tuple[int, int] = (2, 4),
    length: tuple[int, int] = (1, 6),
) -> st.SearchStrategy[list[list[T]]]:
    """Operation schedules: one list of operations per worker, to run concurrently."""
    lists: Any = st.lists(ops, min_size=length[0], max_size=length[1])
    return st.lists(lists, min_size=workers[0], max_size=workers[1])
