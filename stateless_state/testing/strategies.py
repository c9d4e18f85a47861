"""Hypothesis strategies for concurrency tests (hypothesis is a test dependency).

S3 notification strategies live with the pattern they feed: ``patterns.testing``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hypothesis import strategies as st

__all__ = [
    "HOSTILE_CHARACTERS",
    "bad_numbers",
    "colliding_pairs",
    "hostile_names",
    "instants",
    "schedules",
]

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


# The alphabet real pipelines feed the library: the key separator and its escape character,
# path and URL punctuation, spaces, control characters (NUL aside), non-ASCII letters, emoji.
HOSTILE_CHARACTERS = "#%/ $~:|\\\t\n\x01\x1f\x7fé日🚀\u200b"
"""Characters that break naive key layouts: separators, escapes, whitespace and control characters,
non-ASCII."""


def hostile_names(*, max_size: int = 12) -> st.SearchStrategy[str]:
    """Names, keys and tokens from a hostile alphabet (separators, escapes, control characters,
    unicode), mixed with plain letters; never empty."""
    surrogates: Any = ("Cs",)
    chars = (
        st.sampled_from(HOSTILE_CHARACTERS)
        | st.sampled_from("abc")
        | st.characters(exclude_categories=surrogates, exclude_characters="\x00")
    )
    return st.text(chars, min_size=1, max_size=max_size)


def colliding_pairs() -> st.SearchStrategy[tuple[tuple[str, str], tuple[str, str]]]:
    """Two (name, key) pairs a naive ``name#key`` layout would confuse: ``(a#b, c)`` and
    ``(a, b#c)``, a name that is a prefix of the other, and unrelated hostile pairs. Never the
    same pair twice."""

    def split(parts: tuple[str, str, str]) -> tuple[tuple[str, str], tuple[str, str]]:
        a, b, c = parts
        return (f"{a}#{b}", c), (a, f"{b}#{c}")

    def prefix(parts: tuple[str, str, str]) -> tuple[tuple[str, str], tuple[str, str]]:
        a, b, c = parts
        return (a, c), (a + b, c)

    three = st.tuples(hostile_names(), hostile_names(), hostile_names())
    independent = st.tuples(
        st.tuples(hostile_names(), hostile_names()), st.tuples(hostile_names(), hostile_names())
    )
    return st.one_of(three.map(split), three.map(prefix), independent).filter(
        lambda p: p[0] != p[1]
    )


def instants(
    *, years_back: float = 30, minutes_ahead: float = 10, now: float = 1_795_000_000.0
) -> st.SearchStrategy[float]:
    """Event times from ``years_back`` years before ``now`` to ``minutes_ahead`` after it
    (whole milliseconds, so models and stores agree on arithmetic)."""
    low = int((now - years_back * 365.25 * 86400) * 1000)
    high = int((now + minutes_ahead * 60) * 1000)
    return st.integers(low, high).map(lambda ms: ms / 1000)


def bad_numbers() -> st.SearchStrategy[Any]:
    """Values no DynamoDB number can hold: NaN, infinities, more than 38 digits, out of range."""
    return st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            2**130,
            -(2**130),
            10**38 + 1,
            1e200,
            -1e-200,
            True,
        ]
    )
