"""Many feeds, one deployment: one handler and one sweeper for every feed of the configuration.

.. code-block:: python

    feeds = S3Feeds(Store.from_env(), manifest_bucket="...")   # or S3Feeds.from_env()

    def handler(event, context):   # S3 / SNS / SQS / EventBridge triggered
        return feeds.handle(event, context)

    def sweeper(event, context):   # on a schedule, e.g. every minute
        return feeds.sweep(context)

``handle`` routes each arrival of the event to its feed by the routing rule
(:mod:`patterns.feeds.routing`) and adds it to that feed's batches, exactly as
:class:`~patterns.pipeline.S3ToRedshift` adds one stream's (one :class:`FeedPipeline` per feed,
each its own ``S3ToRedshift``); an arrival no feed takes is recorded and counted
(:mod:`patterns.feeds.unrouted`) and acknowledged. The pipeline's own manifests and staged copies
(``manifest_bucket``, under ``manifest_prefix``, told by their keys' exact shapes,
:func:`~patterns.batcher.manifest_keys.is_own_key`) are never routed, even where a feed's
location covers them: they would be loaded a second time; a producer's file under the prefix
that is not of those shapes is routed as any other. A feed whose whole location lies there (its
bucket the manifest bucket, its prefix starting with ``manifest_prefix``) is refused: that
location is the pipeline's, where its files would mix with the staged copies (which a
deployment expires by a lifecycle rule on the prefix). A declared one is refused when the
deployment is built, and a stored one (the configuration and the CLI cannot know the
deployment's manifest location, so they accept it) is logged as an error naming it and the fix
whenever a container reads its version, and every object at its location that is not one of
the pipeline's own is recorded and counted as unrouted.

Every batch records the configuration version it was sealed under, in the seal's own write
(:attr:`patterns.batcher.Batcher.config_version`), and its loader is the target that version
gives the feed (:class:`FeedLoader`): a feed's table, format or options changed while its
batches were open or sealed changes nothing for the batches already sealed. A container seals
with the version it last read, at most the cache interval old; the batch is loaded as *that*
version says. The seal records the configuration's name with the version: a stream belongs to
one configuration (:class:`~patterns.feeds.FeedsConfig` claims it), and a batch another
configuration sealed is neither offered by this sweeper nor loaded by this loader.

**Pause** is checked when a load begins: every load reads the configuration again (one
``GetItem``) before it claims its batch, and a paused feed's batch is not claimed (``paused``).
A load that began before the pause was written finishes: the read is the load's start, and the
gap between it and the claim is a load already under way (nothing another writer decides from).
Paused feeds still add and seal; the sweeper loads what they sealed once they are resumed.

Cost: on the hot path, what the batcher costs per arrival and nothing more within the cache
interval (:data:`~patterns.feeds.config.DEFAULT_CACHE_INTERVAL`); one ``GetItem`` per container
and interval; per load, one ``GetItem`` of the configuration, and two the first time a container
loads under an older version (and, for a batch sealed outside feeds, one conditional
``UpdateItem`` recording the version it loads under, once per batch and container). The
sweeper: per feed what ``S3ToRedshift.sweep`` costs (a ``Query`` per lane and one of the
pending index), after one ``GetItem`` of the configuration.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from stateless_state import InvalidArgument, MalformedEvent, StateConflict, Store, domain
from stateless_state.clients import aws_client
from stateless_state.errors import ConditionFailed, TransactionCanceled
from stateless_state.retry import LambdaContext

from ..batcher import Batcher, batch_id, parse_batch_id
from ..batcher.manifest_keys import check_prefix, is_own_key
from ..pipeline import HandleReport, LoadResult, S3ToRedshift
from ..s3 import ParseResult, check_bucket, parse_s3_event
from ..sweeper import DueLoad, load_due, remaining
from .config import (
    DEFAULT_CACHE_INTERVAL,
    DEFAULT_CONFIG_NAME,
    INVOCATION_MAX,
    MAX_CACHE_INTERVAL,
    FeedsConfig,
    FeedSet,
    declared_problems,
    inside_manifests,
    unreadable,
)
from .feed import Feed, LocalTarget, RedshiftTarget, Target
from .routing import check_location, outside

if TYPE_CHECKING:
    from ..batcher.arrivals import Arrival
    from ..batcher.batches import Batch
    from ..batcher.manifest import Manifest
    from ..loaders.base import AbandonOutcome, Loader, LoadOutcome, Ticket
    from .unrouted import UnroutedArrival

__all__ = [
    "DECLARATION_REFUSED_OPERATION",
    "FeedLoader",
    "FeedPipeline",
    "S3Feeds",
    "target_label",
]

DECLARATION_REFUSED_OPERATION = "feeds.declaration_refused"
"""The ``store.metrics`` operation (and EMF ``Operation`` dimension) counting each container's
refused declaration and, while it stays refused, each sweep."""

_log = logging.getLogger("patterns.feeds")

LoaderFactory = Callable[[Target], "Loader"]


class FeedLoader:
    """The loader of one feed's batches: for each batch, the loader of the target that the
    configuration version the batch was sealed under gives the feed. ``loader_for`` builds
    (and may cache) a target's loader.

    A batch sealed outside feeds records no version (a stream a one-stream
    :class:`~patterns.pipeline.S3ToRedshift` served before it became a feed): the first time a
    loader takes it, the current version is recorded on the batch, with the configuration's
    name, by a write conditional on the batch still recording none
    (:meth:`~patterns.batcher.Batcher.record_config_version`), before anything is loaded; every
    later load of it, a takeover after a crash and a change of the feed's target included,
    uses the recorded version, so the batch is committed into one target only. That costs
    one conditional ``UpdateItem`` per such batch and container; a batch sealed under a
    version costs nothing more.

    A batch recording another configuration's name is refused (:class:`InvalidArgument`,
    nothing loaded): its version numbers another configuration's history."""

    def __init__(
        self, store: Store, config: FeedsConfig, name: str, loader_for: LoaderFactory
    ) -> None:
        self._store = store
        self._config = config
        self.name = name
        self._loader_for = loader_for
        # Versions this container recorded on unversioned batches (they never change).
        self._recorded: dict[str, Batch] = {}

    def _versioned(self, batch: Batch) -> Batch:
        """``batch`` with the version it loads under: its own, or recorded now."""
        if batch.config_version is not None:
            return batch
        known = self._recorded.get(batch.id)
        if known is not None:
            return known
        version = self._config.current().version
        if not version:
            raise InvalidArgument(
                f"batch {batch.id}: feeds configuration {self._config.name!r} has no version "
                "to load it under; add its feed first"
            )
        recorded = Batcher(self._store, batch.stream).record_config_version(
            batch.id, version, self._config.name
        )
        self._recorded[batch.id] = recorded
        return recorded

    def target(self, batch: Batch) -> Target:
        """The target ``batch`` loads into: its sealed (or recorded) version's, exactly."""
        batch = self._versioned(batch)
        owner = batch.config_name
        if owner is not None and owner != self._config.name:
            raise InvalidArgument(
                f"batch {batch.id} was sealed under version {batch.config_version} of feeds "
                f"configuration {owner!r}, not {self._config.name!r}: a stream belongs to one "
                f"configuration; load it with the deployment of {owner!r}; nothing loaded"
            )
        assert batch.config_version is not None
        # By stream, not by name: a feed that took a dropped feed's stream loads the batches
        # that feed sealed as their version named them.
        sealed_under = self._config.at(batch.config_version)
        feed = sealed_under.by_stream(batch.stream)
        return (feed or sealed_under.feed(self.name)).target

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        return self._loader_for(self.target(ticket.batch)).load(ticket, manifest)

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        return self._loader_for(self.target(ticket.batch)).recorded(ticket)

    def abandon(self, batch_id: str) -> AbandonOutcome:
        """The abandon recorded in the ledger of the batch's own target (one ``GetItem`` of
        the batch to learn its version)."""
        stream, _, _ = parse_batch_id(batch_id)
        batch = Batcher(self._store, stream).batch(batch_id)
        if batch is None:
            raise InvalidArgument(f"no batch {batch_id}")
        return self._loader_for(self.target(batch)).abandon(batch_id)


class FeedPipeline(S3ToRedshift):
    """The :class:`~patterns.pipeline.S3ToRedshift` of one feed: its stream, thresholds and
    lanes, its batches loaded by a :class:`FeedLoader`, and a load that first reads the
    configuration (one ``GetItem``) and claims nothing while the feed is paused."""

    def __init__(
        self,
        store: Store,
        config: FeedsConfig,
        feed: Feed,
        loader_for: LoaderFactory,
        s3: Callable[[], Any],
        **settings: Any,
    ) -> None:
        self.feed_name = feed.name
        self.config = config
        self._shared_s3 = s3
        super().__init__(
            store,
            stream=feed.stream,
            loader=FeedLoader(store, config, feed.name, loader_for),
            thresholds=feed.thresholds,
            lanes=feed.lanes,
            **settings,
        )

    @property
    def s3(self) -> Any:
        """The S3 client every feed of the deployment shares."""
        return self._shared_s3()

    @property
    def target(self) -> str:
        """What the feed loads into now, as the sweeper groups loads and reports a failing
        target: :func:`target_label` of its current target, without building its loader (a
        batch sealed under an older version may load elsewhere; the grouping only spreads
        loads). No request within the cache interval."""
        feed = self.config.current().feeds.get(self.feed_name)
        return f"feed {self.feed_name}" if feed is None else target_label(feed.target)

    def takes(self, batch: Batch) -> bool:
        """Whether this feed's sweeper loads ``batch``: not when another configuration sealed
        it (a stream two configurations shared before streams were claimed), so it keeps its
        attempts for that configuration's sweeper. No request."""
        theirs = batch.config_name is not None and batch.config_name != self.config.name
        if theirs:
            _log.warning(
                "feed %s: batch %s was sealed under configuration %s; left to it",
                self.feed_name,
                batch.id,
                batch.config_name,
            )
        return not theirs

    def load(self, batch_id: str, context: LambdaContext | None = None) -> LoadResult:
        """:meth:`S3ToRedshift.load`, unless the feed is paused now (``paused``: nothing
        claimed, the batch waits, untouched, for the resume)."""
        feed = self.config.current(fresh=True).feeds.get(self.feed_name)
        if feed is not None and feed.paused:
            return "paused"
        return super().load(batch_id, context)


def target_label(target: Target) -> str:
    """The name the target's loader goes by (its ``target``: the key the sweeper groups loads
    by), from the target alone: no loader built, no connection made."""
    if isinstance(target, LocalTarget):
        return f"sqlite:{target.path}"
    if isinstance(target, RedshiftTarget):
        where = target.workgroup_name or target.cluster_identifier
        return f"redshift:{where}/{target.database}/{target.table}"
    # The dsn may hold a password: only a digest of it is shown, as the loader does.
    digest = hashlib.sha256(target.dsn.encode()).hexdigest()[:12]
    return f"postgresql:{digest}/{target.table}"


def _batching(feed: Feed) -> tuple[Any, ...]:
    """What a feed's batcher is built from: when it changes, the feed's pipeline is built
    again (and pays one ``Query`` per lane to find its open batches)."""
    return (feed.stream, feed.thresholds, feed.lanes)


class S3Feeds:
    """One handler and one sweeper for every feed of the configuration ``config_name`` in
    ``store``'s table; see the module docstring for the guarantees and the cost.

    ``declared`` feeds (code, or the ``FEEDS`` setting of :meth:`from_env`) are applied as
    ``declared_revision`` on the first read of the configuration, unless that revision or a
    later one was applied already (:meth:`FeedsConfig.declare`). ``loader_factory`` builds a
    target's loader (default: :meth:`RedshiftTarget.loader` and the others', with
    ``s3_client`` and ``redshift_client``); each target's loader is built once per container.
    ``locations`` (``bucket/prefix`` entries, :func:`~patterns.feeds.routing.check_location`)
    are where the deployment may read, as its IAM grants say: a declared feed outside them is
    refused when the deployment is built, and a stored one is logged as an error naming it
    whenever a container reads its version (its loads would be denied). The other settings
    are :class:`~patterns.pipeline.S3ToRedshift`'s, for every feed.
    """

    def __init__(
        self,
        store: Store,
        *,
        manifest_bucket: str,
        manifest_prefix: str = "manifests/",
        config_name: str = DEFAULT_CONFIG_NAME,
        cache_interval: timedelta | float = DEFAULT_CACHE_INTERVAL,
        declared: Iterable[Feed] = (),
        declared_revision: int | None = None,
        s3_client: Any = None,
        redshift_client: Any = None,
        loader_factory: LoaderFactory | None = None,
        min_load_time: timedelta | float = timedelta(seconds=60),
        load_lease: timedelta | float = timedelta(minutes=5),
        max_attempts: int = 5,
        retry_backoff: timedelta | float = timedelta(seconds=30),
        always_stage: bool = False,
        unrouted_retention: timedelta | float = timedelta(days=14),
        locations: Iterable[str] | None = None,
    ) -> None:
        self.store = store
        self.locations = None if locations is None else [check_location(e) for e in locations]
        self.config = FeedsConfig(store, config_name, cache_interval)
        self.manifest_bucket = check_bucket(manifest_bucket)
        # Checked for the longest batch id any feed can have (a 255-byte stream, each byte
        # percent-encoded in the manifest's key), so no feed added later can make it too long.
        self.manifest_prefix = check_prefix(manifest_prefix, batch_id("%" * 255, 255, 10**12 - 1))
        if not manifest_prefix:
            raise InvalidArgument(
                "manifest_prefix is empty: the pipeline tells its own manifests and staged "
                "copies from the files it routes by this prefix; give one, e.g. 'manifests/'"
            )
        # A declared feed is live once declared (FeedsConfig.declare clears removed_at), and is
        # checked so: a removed one would hide a clash of locations from the checks.
        self._declared = [
            replace(f, removed_at=None) if isinstance(f, Feed) else f for f in declared
        ]
        self._declared_revision = declared_revision
        if self._declared and declared_revision is None:
            raise InvalidArgument(
                "declared feeds need a declared_revision (an int you raise with every change "
                "of the declaration), so that an older deployment never undoes a newer one's"
            )
        self._check_declared()
        self._declare_pending = bool(self._declared)
        self._s3 = s3_client
        self._redshift = redshift_client
        self._loader_factory = loader_factory
        self._loaders: dict[Target, Loader] = {}
        self.unrouted_retention = domain.duration(unrouted_retention, "unrouted_retention")
        self._settings: dict[str, Any] = {
            "manifest_bucket": manifest_bucket,
            "manifest_prefix": manifest_prefix,
            "min_load_time": min_load_time,
            "load_lease": load_lease,
            "max_attempts": max_attempts,
            "retry_backoff": retry_backoff,
            "always_stage": always_stage,
        }
        # Checked now, as S3ToRedshift checks it, so a bad setting fails the deployment rather
        # than each feed's first arrival.
        domain.duration(min_load_time, "min_load_time", allow_zero=True)
        self._pipelines: dict[str, tuple[Feed, FeedPipeline]] = {}
        self._prepared: int | None = None
        # The live feeds of the served version inside the manifest location, each with its
        # refusal: their objects are recorded unrouted (module docstring).
        self._hidden: dict[str, str] = {}
        self.declaration_refused: str | None = None
        """Why the stored configuration refused this deployment's declared feeds, if it did
        (:meth:`prepare`); reported by every :meth:`sweep` and :meth:`handle`."""

    def _check_declared(self) -> None:
        """Refuse now, when the deployment is built (its cold start, so its deploy), what
        :func:`declared_problems` finds: every problem at once, naming each feed."""
        if not self._declared:
            return
        problems = declared_problems(
            self._declared,
            revision=self._declared_revision,
            manifest_bucket=self.manifest_bucket,
            manifest_prefix=self.manifest_prefix,
            locations=self.locations,
        )
        if problems:
            listed = (
                problems[0]
                if len(problems) == 1
                else "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
            )
            raise InvalidArgument(
                f"declared feeds (FEEDS, or declared=) refused, nothing stored: {listed}; fix "
                "the declaration and deploy again"
            )

    def _unreadable(self, feed: Feed) -> str:
        return unreadable(feed, self.locations or ())

    def _inside_manifests(self, feed: Feed) -> str | None:
        return inside_manifests(feed, self.manifest_bucket, self.manifest_prefix)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, store: Store | None = None, s3: Any = None
    ) -> S3Feeds:
        """The deployment configured by environment variables; see
        :func:`patterns.config.feeds_settings`."""
        from ..config import feeds_settings

        return cls(**feeds_settings(env, store=store, s3=s3))

    @property
    def s3(self) -> Any:
        """The S3 client every feed shares (made on first use when none was given)."""
        if self._s3 is None:
            self._s3 = aws_client("s3")
        return self._s3

    def loader(self, target: Target) -> Loader:
        """The loader of ``target``, built on first use and kept for the container's life."""
        found = self._loaders.get(target)
        if found is None:
            if self._loader_factory is not None:
                found = self._loader_factory(target)
            else:
                found = target.loader(s3=self.s3, redshift_client=self._redshift)
            self._loaders[target] = found
        return found

    # the configuration, as this container serves it

    def prepare(self, *, fresh: bool = False) -> FeedSet:
        """The configuration this container serves (cached, :meth:`FeedsConfig.current`; read
        again with ``fresh``), with one pipeline per feed, each batcher recording the version
        on its seals. A feed's pipeline is kept across versions unless its stream, thresholds
        or lanes changed, so a warm container keeps knowing its open batches. The declared
        feeds, if any, are applied on the first call (one ``GetItem``, and the version's write
        once per revision, by the first container to get there); a declaration the stored
        configuration refuses is logged, counted (``store.metrics`` operation
        :data:`DECLARATION_REFUSED_OPERATION`) and kept in :attr:`declaration_refused`, and the
        stored configuration is served: the feeds it has keep working, and arrivals for the
        refused declaration's new feeds are recorded unrouted."""
        if self._declare_pending:
            assert self._declared_revision is not None
            try:
                self.config.declare(self._declared, revision=self._declared_revision)
            except (ConditionFailed, TransactionCanceled):
                raise  # a write's race, not a refusal: the next invocation declares again
            except (InvalidArgument, StateConflict) as e:
                # Refused against what is stored (a stream changed, lanes shrunk, the set too
                # large, the revision taken): every invocation failing would stop the feeds
                # that work as well, so the stored configuration goes on being served.
                self.declaration_refused = (
                    f"declared revision {self._declared_revision} refused: {e}"
                )
                _log.error(
                    "%s; serving the stored configuration until a fixed declaration is deployed",
                    self.declaration_refused,
                )
                self.store.metrics.record(DECLARATION_REFUSED_OPERATION, requests=0)
            self._declare_pending = False
        feeds = self.config.current(fresh=fresh)
        if feeds.version == self._prepared:
            return feeds
        pipelines: dict[str, tuple[Feed, FeedPipeline]] = {}
        for feed in feeds.feeds.values():
            known = self._pipelines.get(feed.name)
            if known is not None and _batching(known[0]) == _batching(feed):
                pipeline = known[1]
            else:
                pipeline = FeedPipeline(
                    self.store, self.config, feed, self.loader, lambda: self.s3, **self._settings
                )
            pipeline.batcher.config_version = feeds.version or None
            pipeline.batcher.config_name = self.config.name
            pipelines[feed.name] = (feed, pipeline)
        self._pipelines = pipelines
        self._prepared = feeds.version
        hidden = {
            feed.name: refusal
            for feed in feeds.feeds.values()
            if not feed.removed and (refusal := self._inside_manifests(feed)) is not None
        }
        for refusal in hidden.values():
            _log.error("%s (its objects are recorded as unrouted)", refusal)
        self._hidden = hidden
        if self.locations is not None:
            for feed in feeds.feeds.values():
                if not feed.removed and outside(feed, self.locations):
                    _log.error("%s", self._unreadable(feed))
        return feeds

    def pipeline(self, name: str) -> FeedPipeline:
        """The pipeline of the feed ``name`` (for operators and tests: its batcher, its loads)."""
        self.prepare()
        found = self._pipelines.get(name)
        if found is None:
            raise InvalidArgument(f"no feed {name!r} in the configuration")
        return found[1]

    def _own(self, arrival: Arrival) -> bool:
        """Whether ``arrival`` is one of the pipeline's own manifests or staged copies (by
        their keys' exact shapes: :func:`~patterns.batcher.manifest_keys.is_own_key`)."""
        data = arrival.data
        return data.get("bucket") == self.manifest_bucket and is_own_key(
            self.manifest_prefix, str(data.get("key", ""))
        )

    # the handlers

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """The S3-triggered handler: every good arrival of the event added to its feed's
        batches (or recorded as unrouted), then what the adds sealed loaded while time allows.
        Returns a summary, with ``batchItemFailures`` for SQS, exactly as
        :meth:`S3ToRedshift.handle` does (a partly bad event loses nothing, and fails only the
        SQS messages whose records could not be taken; outside SQS the invocation fails after
        every good record was taken)."""
        feeds = self.prepare()
        parsed = parse_s3_event(event)
        shares: dict[str, ParseResult] = {}
        unrouted: list[tuple[Arrival, str | None]] = []
        own = 0
        hidden_met: set[str] = set()
        for arrival, message_id in zip(parsed.arrivals, parsed.message_ids, strict=True):
            if self._own(arrival):
                own += 1
                continue
            feed = feeds.router.route(arrival.data["bucket"], arrival.data["key"])
            if feed is not None and feed.name in self._hidden:
                # A feed inside the manifest location is refused: its objects are seen, as
                # unrouted, rather than batched where the staged copies' expiry runs.
                hidden_met.add(feed.name)
                feed = None
            if feed is None:
                unrouted.append((arrival, message_id))
                continue
            share = shares.setdefault(feed.name, ParseResult())
            share.arrivals.append(arrival)
            share.message_ids.append(message_id)
        first_error: Exception | None = None
        reports: dict[str, HandleReport] = {}
        for name, share in shares.items():
            try:
                reports[name] = self._pipelines[name][1].add_parsed(share, context, load=False)
            except Exception as e:  # the others' arrivals are added all the same
                first_error = first_error or e
            for message_id in share.failed_message_ids:
                parsed.fail_message(message_id)
        # Every feed's arrivals are in before any load: one slow warehouse delays no other
        # feed's adds, nor loses them to a timeout.
        for name, report in reports.items():
            pipeline = self._pipelines[name][1]
            for sealed in report.sealed:
                if remaining(context) < pipeline.min_load_time:
                    break
                try:
                    report.loads[sealed] = pipeline.load(sealed, context)
                except Exception as e:  # left for the sweeper; the other loads go on
                    first_error = first_error or e
        if unrouted:
            # Only an invocation that meets one needs it: not every handler's cold start.
            from .unrouted import record_unrouted
        for arrival, message_id in unrouted:
            try:
                record_unrouted(
                    self.store, self.config.name, arrival, retention=self.unrouted_retention
                )
            except Exception as e:
                if message_id is None:
                    first_error = first_error or e
                else:
                    parsed.fail_message(message_id)
        for name in sorted(hidden_met):
            _log.error("%s (its objects are recorded as unrouted)", self._hidden[name])
        if unrouted:
            _log.warning(
                "%d arrivals matched no feed (first: %s): `stateless-state feeds unrouted`",
                len(unrouted),
                unrouted[0][0].id,
            )
        if first_error is not None:
            raise first_error
        if parsed.errors and not parsed.failed_message_ids:
            raise MalformedEvent("; ".join(parsed.errors))
        return {
            "arrivals": sum(r.arrivals for r in reports.values()),
            "duplicates": sum(r.duplicates for r in reports.values()),
            "sealed": [b for r in reports.values() for b in r.sealed],
            "loads": {k: v for r in reports.values() for k, v in r.loads.items()},
            "unrouted": len(unrouted),
            "own_objects": own,
            "by_feed": {name: r.arrivals for name, r in sorted(reports.items())},
            **(
                {"declaration_refused": self.declaration_refused}
                if self.declaration_refused
                else {}
            ),
            **parsed.sqs_response(),
        }

    def sweep(self, context: LambdaContext | None = None) -> dict[str, Any]:
        """The scheduled handler, for every feed of the latest configuration (read fresh):
        seal aged batches, load what waits, unless the feed is paused (sealed, not loaded).
        A removed feed's open batches are sealed whatever their age and loaded, and the feed
        is dropped from the configuration once drained, the cache interval and a whole
        invocation after this sweeper container saw its removal (by its clock:
        :meth:`FeedsConfig.removal_seen`, one ``UpdateItem`` per removal). Loads into different
        targets run at once (:func:`patterns.sweeper.load_due`): a failing target (its
        warehouse down, say) stops only its own loads for this sweep (``deferred``,
        ``failing_targets``), and a feed whose sealing or listing fails is reported under
        ``errors`` without stopping the others."""
        feeds = self.prepare(fresh=True)
        out: dict[str, Any] = {
            "sealed": [],
            "loads": {},
            "skipped_for_time": 0,
            "paused": [],
            "dropped": [],
            "errors": {},
            "version": feeds.version,
            "declaration_refused": self.declaration_refused,
        }
        if self.declaration_refused is not None:
            self.store.metrics.record(DECLARATION_REFUSED_OPERATION, requests=0)
        # the handlers' cache interval may be longer than this sweeper's: wait out the longest
        linger = MAX_CACHE_INTERVAL + INVOCATION_MAX
        due: list[DueLoad] = []
        for name, (feed, pipeline) in sorted(self._pipelines.items()):
            try:
                if feed.paused:
                    out["sealed"] += [b.id for b in pipeline.batcher.seal_due()]
                    out["paused"].append(name)
                    continue
                age = 0.0 if feed.removed else None
                out["sealed"] += [b.id for b in pipeline.batcher.seal_due(age=age)]
                due += pipeline.due_loads(context)
            except Exception as e:  # reported; the other feeds are swept all the same
                _log.exception("sweeping feed %s failed", name)
                out["errors"][name] = f"{type(e).__name__}: {e}"
        # Different targets load at once, and a failing one stops only its own loads.
        loads = load_due(due, time_left=partial(remaining, context))
        out["loads"].update(loads.loads)
        out["skipped_for_time"] += loads.skipped_for_time
        out["deferred"] = loads.deferred
        out["failing_targets"] = loads.failing_targets
        for name, (feed, _) in sorted(self._pipelines.items()):
            if feed.removed_at is None:
                continue
            try:
                gone = self.config.lingered(feed, linger)
                if gone and self.config.drop_removed(name, linger=linger) is not None:
                    out["dropped"].append(name)
            except Exception as e:  # reported; the other feeds are swept all the same
                _log.exception("dropping feed %s failed", name)
                out["errors"][name] = f"{type(e).__name__}: {e}"
        return out

    def load(self, batch_id: str, context: LambdaContext | None = None) -> LoadResult:
        """Load one batch of any feed (:meth:`FeedPipeline.load`), found by its stream."""
        stream, _, _ = parse_batch_id(batch_id)
        feeds = self.prepare()
        feed = feeds.by_stream(stream)
        if feed is None:
            raise InvalidArgument(f"batch {batch_id}: no feed batches stream {stream!r}")
        return self._pipelines[feed.name][1].load(batch_id, context)

    def unrouted(self, *, limit: int = 100) -> list[UnroutedArrival]:
        """The arrivals no feed took, newest first
        (:func:`~patterns.feeds.unrouted.list_unrouted`)."""
        from .unrouted import list_unrouted

        return list_unrouted(self.store, self.config.name, limit=limit)
