"""Which feed an object belongs to: the routing rule, stated once and applied here.

**The rule.** An object ``key`` created in ``bucket`` belongs to the live feed of that bucket
whose ``prefix`` starts the key and whose ``suffix`` ends it (the two may overlap, as in S3's
own notification filters) with the **longest prefix**; among those, the one with the **longest
suffix**. No such feed: the object is *unrouted* (:mod:`patterns.feeds.unrouted`). Keys are
compared as S3 event parsing decodes them (``+`` a space, ``%2B`` a plus), character by
character: no case folding, no normalisation, ``/`` an ordinary character.

**Why it always decides.** Two feeds that both match one key with prefixes of equal length have
the *same* prefix (both are the key's first characters), and likewise for suffixes; so two
matching feeds tie only when their bucket, prefix and suffix are all equal, and the
configuration refuses that when the second one is added (:class:`Router` raises too). Any other
overlap — ``logs/`` and ``logs/app/``, ``""`` and ``.csv`` — has exactly one answer.

Cost: a dict lookup by bucket, then the bucket's feeds in rule order until the first match:
linear in the feeds of one bucket, with no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from stateless_state import InvalidArgument

from ..s3 import check_bucket
from .feed import Feed

__all__ = ["Router", "check_location", "outside"]


class Router:
    """The routing rule (module docstring) over ``feeds``; removed feeds route nothing.

    Raises :class:`InvalidArgument` when two live feeds have the same bucket, prefix and
    suffix: the rule could not choose between them."""

    def __init__(self, feeds: Iterable[Feed]) -> None:
        by_bucket: dict[str, list[Feed]] = {}
        seen: dict[tuple[str, str, str], Feed] = {}
        for feed in feeds:
            if feed.removed:
                continue
            other = seen.setdefault(feed.location, feed)
            if other is not feed:
                raise InvalidArgument(undecidable(feed, other))
            by_bucket.setdefault(feed.bucket, []).append(feed)
        # Rule order: the first that matches is the one the rule picks.
        self._by_bucket = {
            bucket: sorted(group, key=lambda f: (-len(f.prefix), -len(f.suffix)))
            for bucket, group in by_bucket.items()
        }

    def route(self, bucket: str, key: str) -> Feed | None:
        """The feed the rule picks for ``key`` in ``bucket``, or None (unrouted)."""
        for feed in self._by_bucket.get(bucket, ()):
            if key.startswith(feed.prefix) and key.endswith(feed.suffix):
                return feed
        return None


def undecidable(feed: Feed, other: Feed) -> str:
    """The refusal of two live feeds at one location."""
    where = f"s3://{feed.bucket}/{feed.prefix}*{feed.suffix}"
    return (
        f"feed {feed.name!r} has the location of feed {other.name!r} ({where}: same bucket, "
        "prefix and suffix), so the routing rule (longest prefix, then longest suffix) cannot "
        "choose between them: give it another prefix or suffix, or update the other feed"
    )


def check_location(entry: str) -> str:
    """``entry`` if it is a readable location as a deployment grants it, ``bucket/prefix``
    (the whole bucket is ``bucket/``): the slash is required, since a grant on
    ``arn:aws:s3:::bucket*`` would also cover every bucket whose name starts with ``bucket``.
    :class:`InvalidArgument` naming the entry and the fix otherwise. No request."""
    if not isinstance(entry, str) or "/" not in entry:
        raise InvalidArgument(
            f"location {entry!r} has no '/': write bucket/prefix (the whole bucket is "
            "'bucket/'), so that it names one bucket and not every bucket starting so"
        )
    bucket, _, _ = entry.partition("/")
    check_bucket(bucket)
    return entry


def outside(feed: Feed, locations: Iterable[str]) -> bool:
    """Whether none of ``locations`` (``bucket/prefix``, as :func:`check_location` takes them)
    covers every key ``feed`` can route: its bucket, and a prefix its own starts with."""
    return not any(
        feed.bucket == bucket and feed.prefix.startswith(prefix)
        for bucket, _, prefix in (entry.partition("/") for entry in locations)
    )
