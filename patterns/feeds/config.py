"""The feeds' configuration: one copy-on-write versioned object in the state table.

Every change is a new version (:mod:`stateless_state.versioned`) holding the whole set of feeds
and the change that made it: its action, feed, who, why and when. So the history of every change
is the object's history, and a version, once written, never changes: a batch that recorded the
version it was sealed under (:attr:`patterns.batcher.Batch.config_version`) is loaded exactly as
that version says, whatever happened to the feed since.

**Edits are compare-and-set.** An edit reads the latest version, applies its change, checks the
whole new set, and writes it only from the version it read. Without ``expected`` a conflict
re-reads and applies the change again (with full-jitter backoff), checked again against what the
other writer wrote: two operators' edits both land, neither overwrites the other. With
``expected`` (the version an operator was shown, as the CLI passes), a conflict is
:class:`~stateless_state.VersionConflict` and nothing changes.

**Checked before anything is stored** (:func:`check_feeds`, and each feed's own
:meth:`~patterns.feeds.Feed.check`): a target its loader would refuse, two live feeds at one
location (the routing rule could not decide, :mod:`patterns.feeds.routing`), two feeds on one
stream, a target table that is another target's ledger, a stream or a lane count changed (a
stream's open batches would be stranded, and lanes only grow for the same reason), a set larger
than one item holds. Not a feed inside a deployment's manifest location: the configuration (and
so the CLI) cannot know where a deployment writes its manifests; the deployment refuses such a
feed itself (:class:`~patterns.feeds.S3Feeds`).

Refusals because of the state (the feed exists, is removed, is already paused, is not drained)
are :class:`~stateless_state.StateConflict`; bad input is
:class:`~stateless_state.InvalidArgument`. Either way nothing is stored.

**Removing** a feed is refused until it is drained (no open, sealed, loading or failed batch;
:meth:`FeedsConfig.seal_open` seals its open batches now). A removed feed stays in the
configuration, routing nothing, until the sweeper drops it: a container may route with a
configuration up to its cache interval old (at most :data:`MAX_CACHE_INTERVAL`), for the length
of an invocation, so the sweeper keeps sealing and loading the feed's stream for that long
(:data:`MAX_CACHE_INTERVAL` plus :data:`INVOCATION_MAX`, whatever its own interval) after the
removal, and drops it once that has passed and the stream is drained. That time is measured
from when the sweepers saw the removal, by their clocks (:meth:`FeedsConfig.removal_seen`: a
stamp each sweeper raises to its own time, never lowers), never from the remover's clock,
which may be behind.

**Where an object goes changes with the configuration**, not retroactively: a new feed with a
longer prefix, or a feed's location changed, takes the arrivals routed after the change (by each
container once its cache has it). The dedupe of arrivals is per stream, so an event redelivered
after such a change is added to the feed that takes it now even though the feed that took it
before loaded it: move a location when its producers have moved, not under a live flow.

**Reading** is cached per container: :meth:`FeedsConfig.current` makes one strongly consistent
``GetItem`` (1 RCU per started 4 KB of the configuration) at most once per ``cache_interval``
(default :data:`DEFAULT_CACHE_INTERVAL`, 60 s), and none in between: the hot path's cost per
arrival is the batcher's alone. Versions are immutable, so :meth:`FeedsConfig.at` caches them for
good. An edit costs a ``GetItem`` and a two-item ``TransactWriteItems`` (2 WCU per item per
started KB of the configuration) per attempt, and one ``PutItem`` (1 WCU) per stream it adds.

**A stream belongs to one configuration.** Two configurations in one state table (two
deployments, ``config_name``) never batch one stream: the first to add a feed on it claims it
(an item per stream, written conditionally before the version naming it), and the other's add is
:class:`~stateless_state.StateConflict` naming the owner. A loader refuses a batch that records
another configuration's name (:class:`patterns.feeds.FeedLoader`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from stateless_state import (
    InvalidArgument,
    StateConflict,
    Store,
    VersionConflict,
    clock,
    domain,
    keys,
)
from stateless_state.codec import to_json
from stateless_state.errors import ConditionFailed
from stateless_state.expressions import Attr, Update

from ..batcher import Batcher, BatchState
from ..loaders.ledger import same_table
from .feed import Feed, LocalTarget, feed_from_json
from .routing import Router, outside, undecidable

if TYPE_CHECKING:
    from stateless_state.versioned import Version, Versioned

    from ..batcher.batches import Batch

__all__ = [
    "CONFIG_FORMAT",
    "DEFAULT_CACHE_INTERVAL",
    "DEFAULT_CONFIG_NAME",
    "INVOCATION_MAX",
    "MAX_CACHE_INTERVAL",
    "MAX_CONFIG_BYTES",
    "Action",
    "Change",
    "FeedSet",
    "FeedsConfig",
    "check_feeds",
    "check_size",
    "declaration_digest",
    "declared_problems",
    "feed_set_problems",
    "inside_manifests",
    "unreadable",
]

CONFIG_FORMAT = 1
"""The stored layout's version (the ``format`` field of every configuration version)."""

DEFAULT_CONFIG_NAME = "feeds"
"""The versioned object that holds the configuration, unless another name is given."""

DEFAULT_CACHE_INTERVAL = 60.0
"""Seconds a container keeps the configuration it read before it reads it again."""

MAX_CACHE_INTERVAL = 900.0
"""The longest cache interval a container may keep: the sweeper keeps a removed feed's stream
for this plus :data:`INVOCATION_MAX` (whatever its own interval), so that no container, the
handlers' own included, can still route to it once it is dropped."""

INVOCATION_MAX = 900.0
"""Lambda's longest invocation, in seconds: a container routes an event with the configuration
it read when the invocation began, so a removed feed may receive arrivals for the cache interval
plus this long after its removal."""

MAX_CONFIG_BYTES = 350_000
"""The largest configuration, in bytes of JSON: its versions are DynamoDB items (400 KB at most,
the item's other attributes included). About 700 feeds of typical size."""

_Declared = tuple[int | None, str | None]
# (the revision of the declaration applied last, the digest of its feeds)

_EDIT_ATTEMPTS = 50
_MAX_WHY = 1000

Action = Literal["add", "update", "pause", "resume", "remove", "drop", "declare"]
"""What a change did: an operator's ``add``, ``update``, ``pause``, ``resume`` or ``remove``;
the sweeper's ``drop`` of a removed feed once drained; a ``declare`` of the feeds declared in
code or in the deployment (:meth:`FeedsConfig.declare`)."""


@dataclass(frozen=True)
class Change:
    """What made a version: ``action`` on the feeds ``feeds`` by ``who``, because ``why``,
    at ``at`` (epoch seconds)."""

    action: Action
    feeds: tuple[str, ...]
    who: str
    why: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "feeds": list(self.feeds),
            "who": self.who,
            "why": self.why,
            "at": self.at,
        }


@dataclass(frozen=True)
class FeedSet:
    """One version of the configuration: ``feeds`` by name (removed ones included, until the
    sweeper drops them), the ``change`` that made it, and the revision of the declared feeds
    applied last with the digest of what it declared (:meth:`FeedsConfig.declare`).
    ``version`` 0: nothing stored yet."""

    version: int
    feeds: Mapping[str, Feed]
    created_at: float = 0.0
    change: Change | None = None
    declared_revision: int | None = None
    declared_digest: str | None = None

    @property
    def declared(self) -> _Declared:
        """The declaration applied last: its revision and the digest of its feeds."""
        return (self.declared_revision, self.declared_digest)

    @cached_property
    def router(self) -> Router:
        """The routing rule over this version's live feeds."""
        return Router(self.feeds.values())

    def feed(self, name: str) -> Feed:
        """The feed ``name``; :class:`InvalidArgument` naming the feeds there are otherwise."""
        found = self.feeds.get(name)
        if found is None:
            known = ", ".join(sorted(self.feeds)) or "none"
            raise InvalidArgument(
                f"no feed {name!r} in configuration version {self.version} (feeds: {known})"
            )
        return found

    def by_stream(self, stream: str) -> Feed | None:
        """The feed whose stream is ``stream``, if any."""
        return next((f for f in self.feeds.values() if f.stream == stream), None)

    def to_json(self, change: Change) -> dict[str, Any]:
        return {
            "format": CONFIG_FORMAT,
            "feeds": [self.feeds[n].to_json() for n in sorted(self.feeds)],
            "declared_revision": self.declared_revision,
            "declared_digest": self.declared_digest,
            "change": change.to_json(),
        }

    @classmethod
    def from_version(cls, version: Version) -> FeedSet:
        """A stored version as a :class:`FeedSet` (its feeds checked as :class:`Feed` checks
        its shape: no loader imported)."""
        value = version.value
        if not isinstance(value, Mapping) or value.get("format") != CONFIG_FORMAT:
            raise InvalidArgument(
                f"feeds configuration version {version.number} is not in format "
                f"{CONFIG_FORMAT}: was it written by a newer release?"
            )
        feeds = [feed_from_json(f) for f in value.get("feeds", [])]
        change = value.get("change")
        return cls(
            version=version.number,
            feeds={f.name: f for f in feeds},
            created_at=version.created_at,
            change=None if change is None else _change_from_json(change),
            declared_revision=value.get("declared_revision"),
            declared_digest=value.get("declared_digest"),
        )


def declaration_digest(feeds: Iterable[Feed]) -> str:
    """The sha256 of a declaration's feeds (in name order, as :meth:`Feed.to_json` writes
    them): what a declared revision is recorded with, so the same revision declaring other
    feeds is told apart."""
    body = [f.to_json() for f in sorted(feeds, key=lambda f: f.name)]
    return hashlib.sha256(to_json(body, "the declared feeds").encode()).hexdigest()


def _change_from_json(data: Mapping[str, Any]) -> Change:
    return Change(
        action=data["action"],
        feeds=tuple(data.get("feeds", ())),
        who=str(data.get("who", "")),
        why=str(data.get("why", "")),
        at=float(data.get("at", 0.0)),
    )


def check_size(feeds: FeedSet, change: Change) -> dict[str, Any]:
    """``feeds`` as the version ``change`` would store, if it fits :data:`MAX_CONFIG_BYTES`;
    :class:`InvalidArgument` with its size and the fix otherwise. No request."""
    value = feeds.to_json(change)
    size = len(to_json(value, "the feeds' configuration").encode())
    if size > MAX_CONFIG_BYTES:
        raise InvalidArgument(
            f"the feeds' configuration would be {size:,} bytes, over the "
            f"{MAX_CONFIG_BYTES:,} one version holds: remove feeds, or split them over "
            "two configurations (config_name) and two deployments; nothing changed"
        )
    return value


def check_feeds(feeds: Mapping[str, Feed]) -> None:
    """Refuse a set of feeds the pipeline could not serve exactly: two live feeds at one
    location (the routing rule could not decide), two feeds on one stream, or a target table
    that is the ledger of another target in the same warehouse (every load into one would
    write rows into the other's ledger; PostgreSQL databases compared by host, port and
    dbname, :func:`~patterns.feeds.feed.postgres_database`, whatever the dsn's spelling).
    Raises :class:`InvalidArgument` naming both feeds (the first of :func:`feed_set_problems`)."""
    problems = feed_set_problems(feeds)
    if problems:
        raise InvalidArgument(problems[0])


def feed_set_problems(feeds: Mapping[str, Feed]) -> list[str]:
    """Every clash :func:`check_feeds` refuses, each naming its two feeds; empty when none."""
    problems: list[str] = []
    located: dict[tuple[str, str, str], Feed] = {}
    streams: dict[str, Feed] = {}
    for feed in feeds.values():
        if not feed.removed:
            other = located.setdefault(feed.location, feed)
            if other is not feed:
                problems.append(undecidable(feed, other))
        other = streams.setdefault(feed.stream, feed)
        if other is not feed:
            problems.append(
                f"feed {feed.name!r} batches stream {feed.stream!r}, which is feed "
                f"{other.name!r}'s: each feed has its own stream (its batches and its dedupe "
                "records are the stream's); give it another stream"
            )
    for feed in feeds.values():
        target = feed.target
        if isinstance(target, LocalTarget):
            continue
        for other in feeds.values():
            theirs = other.target
            if isinstance(theirs, LocalTarget):
                continue
            # The names first: only a clash needs the warehouses (a PostgreSQL dsn is parsed).
            if not same_table(target.table, theirs.ledger, fold_case=target.fold_case):
                continue
            if theirs.warehouse == target.warehouse:
                problems.append(
                    f"feed {feed.name!r} loads into {target.table!r}, the ledger table of "
                    f"feed {other.name!r}'s target: its rows would land in that ledger; load "
                    "into another table or give that target another ledger_table"
                )
    return problems


class FeedsConfig:
    """The feeds' configuration kept as the versioned object ``name`` of ``store``; see the
    module docstring for its guarantees and costs. Thread-safe: the cache is replaced whole.
    (A plain class, not a dataclass: it is in every feeds handler's cold start.)"""

    def __init__(
        self,
        store: Store,
        name: str = DEFAULT_CONFIG_NAME,
        cache_interval: timedelta | float = DEFAULT_CACHE_INTERVAL,
    ) -> None:
        self.store = store
        self.name = domain.name("feeds configuration name", name)
        self.cache_interval = domain.duration(cache_interval, "cache_interval", allow_zero=True)
        if self.cache_interval > MAX_CACHE_INTERVAL:
            raise InvalidArgument(
                f"cache_interval {self.cache_interval:g} s is over {MAX_CACHE_INTERVAL:g} s: the "
                "sweeper drops a removed feed that long after its removal (plus an invocation), "
                "and a container caching longer could still route to it; give at most "
                f"{MAX_CACHE_INTERVAL:g}"
            )
        # (the configuration, when it was read on the monotonic clock)
        self._cached: tuple[FeedSet, float] | None = None
        self._versions: dict[int, FeedSet] = {}
        # (stream, removed_at) -> the stamp this container left or found for that removal, and
        # its monotonic clock then (neither changes)
        self._seen: dict[tuple[str, float], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeedsConfig({self.name!r}, cache_interval={self.cache_interval:g})"

    @cached_property
    def _object(self) -> Versioned:
        # Every version is kept (no keep_last, no keep_for): a batch sealed under one may be
        # loaded long after, and the history is the audit of every change.
        return self.store.versioned(self.name, inline_limit=MAX_CONFIG_BYTES)

    # reading

    def _remember(self, feeds: FeedSet) -> FeedSet:
        """Keep a version read (the 64 latest kept: the ones unloaded batches name)."""
        if not feeds.version:
            return feeds
        with self._lock:
            if feeds.version not in self._versions and len(self._versions) >= 64:
                del self._versions[min(self._versions)]
            return self._versions.setdefault(feeds.version, feeds)

    def read(self) -> FeedSet:
        """The latest version, strongly consistent (one ``GetItem``), and cached as
        :meth:`current`'s. Version 0 with no feeds when nothing was stored yet."""
        latest = self._object.get()
        if latest is None:
            feeds = FeedSet(0, {})
        else:
            known = self._versions.get(latest.number)
            feeds = known or self._remember(FeedSet.from_version(latest))
        self._cached = (feeds, clock.monotonic())
        return feeds

    def current(self, *, fresh: bool = False) -> FeedSet:
        """The configuration as this container last read it, read again (:meth:`read`) when
        that was ``cache_interval`` or longer ago, or with ``fresh``. No request otherwise."""
        cached = self._cached
        if fresh or cached is None or clock.monotonic() - cached[1] >= self.cache_interval:
            return self.read()
        return cached[0]

    def at(self, version: int) -> FeedSet:
        """Version ``version``, exactly as it was written (cached for good: versions never
        change). Two ``GetItem`` s the first time. :class:`InvalidArgument` if it does not
        exist."""
        domain.integer(version, "configuration version", minimum=1, maximum=10**12 - 1)
        known = self._versions.get(version)
        if known is not None:
            return known
        found = self._object.at(version)
        if found is None:
            raise InvalidArgument(
                f"feeds configuration {self.name!r} has no version {version}: the batch names "
                "a version this configuration never had (another configuration's batch?)"
            )
        return self._remember(FeedSet.from_version(found))

    def history(self) -> list[FeedSet]:
        """Every version, oldest first: each with the change that made it (one ``GetItem``
        and one ``Query`` of every version, so 1 RCU per 4 KB of each: an audit, not a hot
        path)."""
        return [self._remember(FeedSet.from_version(v)) for v in self._object.history()]

    # editing

    def _edit(
        self,
        apply: Callable[[FeedSet], tuple[dict[str, Feed], _Declared] | None],
        change: Callable[[], Change],
        expected: int | None,
    ) -> FeedSet:
        """Read, ``apply`` (the new feeds and declaration, or None: nothing to write),
        check, write from the version read; see the module docstring."""

        def attempt() -> FeedSet:
            current = self.read()
            if expected is not None and current.version != expected:
                raise VersionConflict(self.name, expected, current.version)
            outcome = apply(current)
            if outcome is None:
                return current
            feeds, (revision, digest) = outcome
            check_feeds(feeds)
            made = change()
            new = FeedSet(current.version + 1, dict(feeds), 0.0, made, revision, digest)
            value = check_size(new, made)
            self._claim_streams(current, feeds)
            written = self._object.put(value, expected=current.version or None)
            stored = replace(new, version=written.number, created_at=written.created_at)
            self._cached = (self._remember(stored), clock.monotonic())
            return stored

        if expected is not None:
            domain.integer(expected, "expected", minimum=0, maximum=10**12 - 1)
            return attempt()
        return self.store.table.retry(
            attempt,
            retry_on=(VersionConflict,),
            what=f"feeds configuration {self.name!r} edit",
            attempts=_EDIT_ATTEMPTS,
            operation="feeds.edit",
        )

    def _claim_streams(self, current: FeedSet, feeds: Mapping[str, Feed]) -> None:
        """Claim for this configuration each stream ``feeds`` batch that ``current`` does not:
        one ``PutItem`` per new stream (1 WCU), conditional on the stream being unclaimed or
        this configuration's, written before the version that names it (the versioned object
        writes its version alone). A version whose write then fails leaves the claim, still
        this configuration's own, which its next add of the stream takes again. Raises
        :class:`StateConflict` naming the owner when another configuration holds the stream:
        its batches and dedupe records are the stream's, and batches of two configurations in
        one stream would load as the other's versions say. Claims are never released: a
        dropped feed's dedupe records stay its stream's."""
        known = {f.stream for f in current.feeds.values()}
        for stream in sorted({f.stream for f in feeds.values()} - known):
            key = keys.stream_owner(stream)
            mine = Attr("pk").not_exists() | Attr("config").eq(self.name)
            try:
                self.store.table.put(
                    {**key.item(), "config": self.name, "claimed_at": clock.now()}, condition=mine
                )
            except ConditionFailed as e:
                owner = (e.old or {}).get("config")
                raise StateConflict(
                    f"stream {stream!r} belongs to feeds configuration {owner!r} of this table, "
                    f"not {self.name!r}: a stream is batched by one configuration; give the "
                    "feed another stream (or name); nothing changed"
                ) from None

    @staticmethod
    def _change(action: Action, names: Iterable[str], who: str, why: str) -> Callable[[], Change]:
        domain.name("who", who)
        if not isinstance(why, str) or len(why) > _MAX_WHY:
            raise InvalidArgument(
                f"why must be a str of at most {_MAX_WHY} characters (it is kept with every "
                "version): say it briefly, and link to the rest"
            )
        feeds = tuple(names)
        return lambda: Change(action, feeds, who, why, clock.now())

    def add(self, feed: Feed, *, who: str, why: str, expected: int | None = None) -> FeedSet:
        """Add ``feed``: checked (:meth:`Feed.check`, :func:`check_feeds`) before anything is
        stored. A feed's name may be taken again once it is removed, for the same stream.
        Returns the version written."""
        if not isinstance(feed, Feed):
            raise InvalidArgument(f"expected a Feed, got {type(feed).__name__}")
        feed.check()

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared]:
            old = current.feeds.get(feed.name)
            if old is not None and not old.removed:
                raise StateConflict(
                    f"feed {feed.name!r} exists (version {current.version}): change it with "
                    "update, or add the new one under another name"
                )
            if old is not None:
                _same_stream(old, feed)
                _lanes_kept(old, feed)
            added = replace(feed, removed_at=None)
            return {**current.feeds, feed.name: added}, current.declared

        return self._edit(apply, self._change("add", [feed.name], who, why), expected)

    def update(
        self,
        name: str,
        changes: Mapping[str, Any],
        *,
        who: str,
        why: str,
        expected: int | None = None,
    ) -> FeedSet:
        """Change the live feed ``name``: ``changes`` are fields of :meth:`Feed.to_json`,
        ``target`` and ``thresholds`` merged field by field (``{"target": {"table": "t2",
        "format": "csv"}}``). The stream and the name stay; lanes may only grow. Batches
        sealed before keep the version they were sealed under, and load as it says."""
        if not isinstance(changes, Mapping) or not changes:
            raise InvalidArgument("update needs at least one change, e.g. {'lanes': 2}")
        for fixed in ("name", "stream"):
            if fixed in changes:
                raise InvalidArgument(
                    f"a feed's {fixed} never changes (its batches and dedupe records are its "
                    f"stream's): add a new feed and remove this one once drained"
                )
        if "paused" in changes:
            raise InvalidArgument("pause and resume a feed with pause and resume, not update")

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared]:
            old = _live(current, name)
            new = old.with_changes(changes)
            _lanes_kept(old, new)
            new.check()
            return {**current.feeds, name: new}, current.declared

        return self._edit(apply, self._change("update", [name], who, why), expected)

    def pause(self, name: str, *, who: str, why: str, expected: int | None = None) -> FeedSet:
        """Pause the feed: its arrivals are still added and its batches sealed, none loaded."""
        return self._set_paused(name, True, who=who, why=why, expected=expected)

    def resume(self, name: str, *, who: str, why: str, expected: int | None = None) -> FeedSet:
        """Resume the feed: the sweeper loads every batch sealed meanwhile (nothing is lost)."""
        return self._set_paused(name, False, who=who, why=why, expected=expected)

    def _set_paused(
        self, name: str, paused: bool, *, who: str, why: str, expected: int | None
    ) -> FeedSet:
        action: Action = "pause" if paused else "resume"

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared]:
            old = _live(current, name)
            if old.paused == paused:
                raise StateConflict(
                    f"feed {name!r} is already {'paused' if paused else 'running'}; nothing changed"
                )
            return {**current.feeds, name: replace(old, paused=paused)}, current.declared

        return self._edit(apply, self._change(action, [name], who, why), expected)

    def remove(self, name: str, *, who: str, why: str, expected: int | None = None) -> FeedSet:
        """Remove the feed, once drained (:meth:`undrained` is empty; refused otherwise,
        naming what is left) and running (a paused feed's stragglers would never load). It
        routes nothing from this version on; the sweeper drops it from the configuration later
        (module docstring). The drain check and the write are apart: an arrival may join the
        feed in between, as one may from a container that has not yet seen the removal, and
        the sweeper's lingering sweeps seal and load both."""

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared]:
            old = _live(current, name)
            if old.paused:
                raise StateConflict(
                    f"feed {name!r} is paused: resume it before removing it, so that what a "
                    "container that has not yet seen the removal adds to it is loaded; nothing "
                    "changed"
                )
            left = self.undrained(old)
            if left:
                raise StateConflict(
                    f"feed {name!r} is not drained: {'; '.join(left)}. Removing it now would "
                    "strand them: seal its open batches (feeds drain), let the sweeper load "
                    "them (resume it if paused), retry or abandon failed batches, then remove "
                    "it again; nothing changed"
                )
            removed = replace(old, removed_at=clock.now())
            return {**current.feeds, name: removed}, current.declared

        return self._edit(apply, self._change("remove", [name], who, why), expected)

    def removal_seen(self, feed: Feed) -> float:
        """When this container first saw ``feed``'s removal, as the latest sweeper clock that
        saw it says (epoch seconds): the time the linger before a drop runs from.

        ``removed_at`` is the clock of whoever removed the feed (an operator's laptop may be an
        hour behind), so the linger is not measured from it. Each sweeper container, the first
        time it sees the removal, raises a stamp kept on the stream's claim to its own time
        (one conditional ``UpdateItem``, 1 WCU, per removal and container; the stamp is kept
        with the ``removed_at`` it is for, so a feed removed, added again and removed again
        starts again) and measures from the stamp it leaves, by its own clock. A removal is
        seen after it was written, and a stamp only grows: a sweeper whose clock is behind can
        only delay another's drop, never hasten it, and measures its own wait by its own clock
        from its own stamp. The price: a sweeper container started later waits from its own
        sighting, so the drop comes once some container has lived ``linger`` since it saw the
        removal (a removed feed meanwhile routes nothing: it only stays listed)."""
        if feed.removed_at is None:
            raise InvalidArgument(f"feed {feed.name!r} is not removed")
        known = self._seen.get((feed.stream, feed.removed_at))
        if known is not None:
            return known[0]
        now, sighted = clock.now(), clock.monotonic()
        update = Update().set_all(
            {"config": self.name, "removal_of": feed.removed_at, "removal_seen": now}
        )
        mine = Attr("pk").not_exists() | Attr("config").eq(self.name)
        behind = (
            Attr("removal_of").not_exists()
            | Attr("removal_of").ne(feed.removed_at)
            | Attr("removal_seen").lt(now)
        )
        try:
            self.store.table.update_item(
                keys.stream_owner(feed.stream).item(), update, condition=mine & behind
            )
            seen = now
        except ConditionFailed as e:
            old = e.old or {}
            if old.get("config") != self.name:
                raise StateConflict(
                    f"stream {feed.stream!r} belongs to feeds configuration "
                    f"{old.get('config')!r}, not {self.name!r}: its removal is not this "
                    "configuration's to drop"
                ) from None
            seen = float(old["removal_seen"])
        self._seen[(feed.stream, feed.removed_at)] = (seen, sighted)
        return seen

    def lingered(self, feed: Feed, linger: float) -> bool:
        """Whether ``linger`` seconds have passed since ``feed``'s removal as this container
        can tell: by the wall clock from the stamp (:meth:`removal_seen`) and, so that a clock
        stepped forward (an NTP correction) cannot shorten the wait, by the monotonic clock
        from this container's own sighting. The first call stamps (one ``UpdateItem``)."""
        stamp = self.removal_seen(feed)
        assert feed.removed_at is not None
        _, sighted = self._seen[(feed.stream, feed.removed_at)]
        return stamp + linger <= clock.now() and clock.monotonic() - sighted >= linger

    def drop_removed(self, name: str, *, linger: float, who: str = "sweeper") -> FeedSet | None:
        """Drop the removed feed ``name`` from the configuration when this container saw its
        removal at least ``linger`` seconds ago (:meth:`lingered`) and it is drained;
        returns the version written, or None (nothing to drop yet). The read of "drained" and
        the write are safe apart: past ``linger`` no container routes to the feed any more, so
        nothing can join its stream in between."""
        dropped = False

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared] | None:
            nonlocal dropped
            dropped = False
            old = current.feeds.get(name)
            if old is None or old.removed_at is None:
                return None
            if not self.lingered(old, linger):
                return None
            if self.undrained(old):
                return None
            dropped = True
            rest = {n: f for n, f in current.feeds.items() if n != name}
            return rest, current.declared

        why = f"removed and drained for {linger:g} s"
        written = self._edit(apply, self._change("drop", [name], who, why), None)
        return written if dropped else None

    def declare(
        self, feeds: Iterable[Feed], *, revision: int, who: str = "declared"
    ) -> FeedSet | None:
        """Apply feeds declared in code or in the deployment (``FEEDS``, see
        :meth:`patterns.feeds.S3Feeds.from_env`) as revision ``revision``, unless the stored
        configuration has applied that revision or a later one already (then None, no write:
        so while a deployment rolls out, containers of the old one never undo the new one's).

        Each declared feed is added, or replaces the feed of its name except for ``paused``
        (the operator's), under the same checks as :meth:`add` and :meth:`update`. The same
        revision declared again with other feeds is refused (:class:`InvalidArgument`): one
        revision, one meaning, or two deployments would each take the other's for applied. Feeds no
        longer declared stay as they are (remove them once drained): dropping them here could
        strand their batches."""
        declared = list(feeds)
        domain.integer(revision, "declared revision", minimum=1, maximum=10**12 - 1)
        for feed in declared:
            if not isinstance(feed, Feed):
                raise InvalidArgument(f"expected Feeds, got a {type(feed).__name__}")
            feed.check()
        names = [f.name for f in declared]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidArgument(f"feeds declared twice: {', '.join(twice)}; declare each once")
        digest = declaration_digest(declared)
        applied = False

        def apply(current: FeedSet) -> tuple[dict[str, Feed], _Declared] | None:
            nonlocal applied
            applied = False
            stored, stored_digest = current.declared
            if stored is not None and stored == revision and stored_digest not in (None, digest):
                raise InvalidArgument(
                    f"declared revision {revision} was applied with other feeds (configuration "
                    f"version {current.version}): a changed declaration needs a higher revision, "
                    "so that every deployment agrees on what it means; raise the revision; "
                    "nothing changed"
                )
            if stored is not None and stored >= revision:
                return None
            applied = True
            out = dict(current.feeds)
            for feed in declared:
                old = out.get(feed.name)
                paused = feed.paused
                if old is not None:
                    _same_stream(old, feed)
                    _lanes_kept(old, feed)
                    paused = feed.paused if old.removed else old.paused
                out[feed.name] = replace(feed, paused=paused, removed_at=None)
            return out, (revision, digest)

        change = self._change("declare", names, who, f"declared revision {revision}")
        written = self._edit(apply, change, None)
        return written if applied else None

    # draining

    def batcher(self, feed: Feed) -> Batcher:
        """A batcher of ``feed``'s stream, to read its batches (no request)."""
        return Batcher(self.store, feed.stream, feed.thresholds, feed.lanes)

    def undrained(self, feed: Feed) -> list[str]:
        """What keeps ``feed`` from being drained: each lane's open batch, the batches waiting
        to be loaded, the failed ones; empty when drained. One consistent ``Query`` of one
        item per lane and two of the index (whose lag is covered by the lanes' consistent reads
        for what was sealed last, and by the sweeper's lingering sweeps for the rest)."""
        batcher = self.batcher(feed)
        left: list[str] = []
        newest_of_lanes: list[Batch] = []
        for lane in range(feed.lanes):
            newest = batcher.latest(lane)
            if newest is None:
                continue
            if newest.state == BatchState.OPEN and newest.count:
                left.append(f"batch {newest.id} is open with {newest.count} files")
                newest_of_lanes.append(newest)
            elif newest.state in (BatchState.SEALED, BatchState.LOADING):
                left.append(f"batch {newest.id} is {newest.state}")
                newest_of_lanes.append(newest)
        named = {b.id for b in newest_of_lanes}
        pending = [b.id for b in batcher.pending() if b.id not in named]
        if pending:
            left.append(f"{len(pending)} batches wait to be loaded ({', '.join(pending[:5])})")
        failed = [b.id for b in batcher.failed()]
        if failed:
            left.append(f"{len(failed)} batches failed ({', '.join(failed[:5])})")
        return left

    def seal_open(self, name: str) -> list[Batch]:
        """Seal the feed's open batches now, whatever their age (to drain it before a
        removal); the sweeper loads them. Recorded under the latest configuration version.
        One ``Query`` per lane and one ``UpdateItem`` per batch sealed."""
        current = self.read()
        feed = current.feed(name)
        batcher = self.batcher(feed)
        batcher.config_version = current.version or None
        batcher.config_name = self.name
        return batcher.seal_due(age=timedelta(0))


def inside_manifests(feed: Feed, bucket: str, prefix: str) -> str | None:
    """The refusal of ``feed`` if its whole location lies under the manifest location
    ``bucket``/``prefix``, else None."""
    if feed.bucket != bucket or not feed.prefix.startswith(prefix):
        return None
    return (
        f"feed {feed.name!r} is located at s3://{feed.bucket}/{feed.prefix}, inside this "
        f"deployment's manifest location s3://{bucket}/{prefix}, where the pipeline writes its "
        "own manifests and staged copies (and a lifecycle rule may expire what is there): give "
        f"it a prefix outside {prefix!r} or another bucket"
    )


def unreadable(feed: Feed, locations: Iterable[str]) -> str:
    """The refusal of ``feed`` outside ``locations``, the ones a deployment may read."""
    return (
        f"feed {feed.name!r} is at s3://{feed.bucket}/{feed.prefix}, outside the locations "
        f"this deployment may read ({', '.join(locations)}): its loads would be denied; add "
        "its location to them (FEED_LOCATIONS, the template's FeedLocations) or move the feed"
    )


# A time a change records, written with as many characters as any epoch time from 2001 to
# 2286 takes (18: 17 significant digits), so that a declaration measured with it fits whenever
# it is applied.
_LATEST_AT = 4_102_444_799.1234565


def declared_problems(
    feeds: Iterable[Feed],
    *,
    revision: Any,
    manifest_bucket: str | None,
    manifest_prefix: str,
    locations: Sequence[str] | None = None,
) -> list[str]:
    """Every reason :meth:`FeedsConfig.declare` (or the deployment) would refuse ``feeds``
    declared as ``revision``, found without a request, all of them: the revision's range, each
    feed's own checks, a feed declared twice, inside the manifest location (unless
    ``manifest_bucket`` is unknown) or outside ``locations``, every clash of the set
    (:func:`feed_set_problems`, over the feeds whose own checks passed), and, when there
    is none, the set's size as the version that applies it would store it (unpaused, the
    longer spelling; the latest time a change records): the stored configuration only adds
    to it.
    Empty when there is none. The stored configuration is not read, so a clash with a stored
    feed is found by the first :meth:`patterns.feeds.S3Feeds.prepare`."""
    problems: list[str] = []
    try:
        domain.integer(revision, "declared revision", minimum=1, maximum=10**12 - 1)
    except InvalidArgument as e:
        problems.append(str(e))
    named: dict[str, Feed] = {}
    seen: set[str] = set()
    for given in feeds:
        if not isinstance(given, Feed):
            problems.append(f"expected Feeds, got a {type(given).__name__}")
            continue
        feed = replace(given, removed_at=None)
        if feed.name in seen:
            problems.append(f"feed {feed.name!r} is declared twice: declare it once")
            continue
        seen.add(feed.name)
        try:
            feed.check()
            named[feed.name] = feed
        except InvalidArgument as e:
            problems.append(str(e))
        inside = (
            None
            if manifest_bucket is None
            else inside_manifests(feed, manifest_bucket, manifest_prefix)
        )
        if inside is not None:
            problems.append(inside)
        if locations is not None and outside(feed, locations):
            problems.append(unreadable(feed, locations))
    clashes = feed_set_problems(named)
    problems += clashes
    if not problems:
        names = tuple(sorted(named))
        change = Change("declare", names, "declared", f"declared revision {revision}", _LATEST_AT)
        # The operator's pause is kept when applied: measured unpaused, the longer spelling
        # (Feed.to_json writes ``"paused": false`` for every feed).
        as_applied = {n: replace(f, paused=False) for n, f in named.items()}
        digest = "0" * 64
        try:
            check_size(
                FeedSet(1, as_applied, declared_revision=revision, declared_digest=digest), change
            )
        except InvalidArgument as e:
            problems.append(str(e))
    return problems


def _live(current: FeedSet, name: str) -> Feed:
    feed = current.feed(name)
    if feed.removed:
        raise StateConflict(
            f"feed {name!r} was removed (version {current.version}): add it again to use it"
        )
    return feed


def _same_stream(old: Feed, new: Feed) -> None:
    if old.stream != new.stream:
        raise InvalidArgument(
            f"feed {new.name!r} batches stream {old.stream!r}; its stream never changes (its "
            f"batches and dedupe records are the stream's): keep stream {old.stream!r} or use "
            "another feed name"
        )


def _lanes_kept(old: Feed, new: Feed) -> None:
    if new.lanes < old.lanes:
        raise InvalidArgument(
            f"feed {new.name!r} has {old.lanes} lanes; lanes only grow (the open batches of "
            f"lanes {new.lanes} to {old.lanes - 1} would never seal): keep at least {old.lanes}"
        )
