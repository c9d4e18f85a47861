"""Many feeds, one deployment: route arrivals by S3 location to feeds, each with its own stream,
target, thresholds and lanes, the configuration kept as a versioned object in the state table.

The package reads in the order a change travels:

1. :mod:`~patterns.feeds.feed`: what a feed is, and its target (Redshift, PostgreSQL, local);
2. :mod:`~patterns.feeds.routing`: the routing rule (longest prefix, then longest suffix);
3. :mod:`~patterns.feeds.config`: the configuration as a versioned object (history, who and
   why, compare-and-set edits, checks before anything is stored, the container's cache);
4. :mod:`~patterns.feeds.unrouted`: arrivals no feed took, recorded, counted and listed;
5. :mod:`~patterns.feeds.pipeline`: :class:`S3Feeds`, one handler and one sweeper for every
   feed, each batch loaded under the configuration version it was sealed with.

The operator's commands are ``stateless-state feeds list/show/add/update/pause/resume/drain/
remove/history/unrouted`` (:mod:`patterns.cli.feeds`).

Each name loads its module when first used, so importing the package loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateless_state.lazy import lazy_attributes

if TYPE_CHECKING:
    from .config import Change, FeedsConfig, FeedSet
    from .feed import Feed, LocalTarget, PostgresTarget, RedshiftTarget, Target, feed_from_json
    from .pipeline import FeedLoader, FeedPipeline, S3Feeds
    from .routing import Router
    from .unrouted import UnroutedArrival

_LAZY = {
    **dict.fromkeys(("Change", "FeedSet", "FeedsConfig"), "config"),
    **dict.fromkeys(
        ("Feed", "LocalTarget", "PostgresTarget", "RedshiftTarget", "Target", "feed_from_json"),
        "feed",
    ),
    **dict.fromkeys(("FeedLoader", "FeedPipeline", "S3Feeds"), "pipeline"),
    "Router": "routing",
    "UnroutedArrival": "unrouted",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "Change",
    "Feed",
    "FeedLoader",
    "FeedPipeline",
    "FeedSet",
    "FeedsConfig",
    "LocalTarget",
    "PostgresTarget",
    "RedshiftTarget",
    "Router",
    "S3Feeds",
    "Target",
    "UnroutedArrival",
    "feed_from_json",
]
