"""S3 → Redshift: the batcher, S3 event parsing, manifests and a loader, as two Lambda handlers.

.. code-block:: python

    pipeline = S3ToRedshift(Store.from_env(), stream="clicks", loader=..., manifest_bucket="...")

    def handler(event, context):   # S3 / SNS / SQS / EventBridge triggered
        return pipeline.handle(event, context)

    def sweeper(event, context):   # on a schedule, e.g. every minute
        return pipeline.sweep(context)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from stateless_state import (
    CorruptState,
    LeaseLost,
    LeaseUnavailable,
    MalformedEvent,
    Store,
    clock,
    domain,
)
from stateless_state.clients import aws_client
from stateless_state.retry import LambdaContext

from .batcher import AddResult, Batcher, BatchState, IncompleteAdd, Thresholds
from .batcher.batches import batch_id as _batch_id
from .batcher.manifest_keys import check_prefix
from .hooks import crash_point
from .s3 import ParseResult, check_bucket, parse_s3_event
from .sweeper import DueLoad, LoadResult, load_due, remaining

if TYPE_CHECKING:
    from .batcher.batches import Batch
    from .batcher.load_ticket import LoadTicket
    from .batcher.manifest import Manifest
    from .loaders.base import Loader

__all__ = ["HandleReport", "LoadResult", "S3ToRedshift", "SweepReport", "sweep_all"]

_log = logging.getLogger("patterns.pipeline")
# boto3's default session is not thread-safe while it builds a client, and a sweep of many
# targets loads in threads: the clients built on first use are built one at a time.
_CLIENT_BUILD = threading.Lock()


@dataclass
class HandleReport:
    """What one ``handle`` call did."""

    arrivals: int = 0
    duplicates: int = 0
    sealed: list[str] = field(default_factory=list)
    loads: dict[str, LoadResult] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class SweepReport:
    """What one ``sweep`` call did: the batches it sealed by age, each load's result, how many
    due batches it left for lack of time, the batches it ``deferred`` because their target's
    load failed earlier in the sweep, and those targets (:mod:`patterns.sweeper`)."""

    sealed: list[str] = field(default_factory=list)
    loads: dict[str, LoadResult] = field(default_factory=dict)
    skipped_for_time: int = 0
    deferred: list[str] = field(default_factory=list)
    failing_targets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sealed": self.sealed,
            "loads": self.loads,
            "skipped_for_time": self.skipped_for_time,
            "deferred": self.deferred,
            "failing_targets": self.failing_targets,
        }


def sweep_all(
    pipelines: Sequence[S3ToRedshift],
    context: LambdaContext | None = None,
    *,
    max_parallel: int = 8,
) -> dict[str, Any]:
    """One scheduled sweep for many pipelines (the feeds of one deployment): seal every
    pipeline's aged batches, then load whatever waits, different targets at once (up to
    ``max_parallel``) and a failing target stopping only its own loads
    (:func:`patterns.sweeper.load_due`). Returns :class:`SweepReport` as a dict.

    Costs: per pipeline, what its own sweep costs (one ``Query`` per lane to seal, one of the
    pending index, then each load's requests); nothing more."""
    report = SweepReport()
    due: list[DueLoad] = []
    for pipeline in pipelines:
        report.sealed += [b.id for b in pipeline.batcher.seal_due()]
        due += pipeline.due_loads(context)
    loads = load_due(due, time_left=partial(remaining, context), max_parallel=max_parallel)
    report.loads = loads.loads
    report.skipped_for_time = loads.skipped_for_time
    report.deferred = loads.deferred
    report.failing_targets = loads.failing_targets
    return report.as_dict()


class S3ToRedshift:
    """The S3-triggered batcher pipeline.

    ``handle(event, context)`` adds every object in the event to the stream's batches (each file
    once, whatever the duplication of events), and when its add sealed a batch and at least
    ``min_load_time`` of the invocation remains, loads it right away. ``sweep(context)`` seals
    batches past the age threshold and loads every batch that waits: just sealed, its loader
    crashed (lease expired), or due for a retry after a failure.

    Object versions: before a load, members are pinned to their own content
    (:mod:`patterns.batcher.object_pins`: a rewritten object's earlier version is staged under
    ``<manifest_prefix>staged/``, content gone from S3 is recorded as superseded). A loader
    that reads by version (the local and PostgreSQL ones) then loads each version at most once,
    and exactly once while it exists. COPY reads a key's current content, so the Redshift loader
    checks the keys again after COPY read them and before it commits, and reads again, from
    staged copies, what was rewritten meanwhile (the manifest's ``recheck``: one more
    ``HeadObject`` per file). ``always_stage=True`` stages every member up front instead, for
    one ``CopyObject`` per file and no second check.
    """

    def __init__(
        self,
        store: Store,
        *,
        stream: str,
        loader: Loader,
        manifest_bucket: str,
        thresholds: Thresholds | None = None,
        manifest_prefix: str = "manifests/",
        lanes: int = 1,
        s3_client: Any = None,
        min_load_time: timedelta | float = timedelta(seconds=60),
        load_lease: timedelta | float = timedelta(minutes=5),
        max_attempts: int = 5,
        retry_backoff: timedelta | float = timedelta(seconds=30),
        always_stage: bool = False,
    ) -> None:
        self.always_stage = always_stage
        self.batcher = Batcher(
            store,
            stream,
            thresholds,
            lanes,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            load_lease=load_lease,
        )
        self.loader = loader
        # A loader that cannot take every stream name (SQL literals) says so now, not at load.
        check_stream = getattr(loader, "check_stream", None)
        if callable(check_stream):
            check_stream(stream)
        self.manifest_bucket = check_bucket(manifest_bucket)
        # Refused now, before any arrival is stored: every later manifest would fail.
        self.manifest_prefix = check_prefix(
            manifest_prefix, _batch_id(stream, lanes - 1, 10**12 - 1)
        )
        self.min_load_time = domain.duration(min_load_time, "min_load_time", allow_zero=True)
        self._s3 = s3_client

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, store: Store | None = None, s3: Any = None
    ) -> S3ToRedshift:
        """The pipeline configured by environment variables; see :mod:`patterns.config`."""
        from .config import pipeline_settings

        return cls(**pipeline_settings(env, store=store, s3=s3))

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            with _CLIENT_BUILD:
                if self._s3 is None:
                    self._s3 = aws_client("s3")
        return self._s3

    @property
    def target(self) -> str:
        """What this pipeline loads into, as the sweeper groups loads (:mod:`patterns.sweeper`):
        the loader's ``target`` when it names one (the three loaders here do), else the loader
        object itself (its type and id)."""
        named = getattr(self.loader, "target", None)
        if isinstance(named, str) and named:
            return named
        return f"{type(self.loader).__name__}@{id(self.loader):x}"

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """The S3-triggered handler. Returns a summary; for SQS events, the partial batch
        response (``batchItemFailures``) naming exactly the messages that failed.

        A partly bad event loses nothing: every good record is added, a good record beside a
        bad one in the same SNS or SQS message included. For SQS, a message fails when one of
        its records is malformed or could not be added; the others succeed. For a direct S3,
        SNS or EventBridge event, which has no partial response, the good records are added
        first and then the invocation fails (:class:`MalformedEvent`, or the add's error), so
        it goes to the dead-letter destination after Lambda's retries, which re-add nothing
        thanks to the dedupe.
        """
        parsed = parse_s3_event(event)
        report = self.add_parsed(parsed, context)
        report.errors = parsed.errors
        if parsed.errors and not parsed.failed_message_ids:
            raise MalformedEvent("; ".join(parsed.errors))
        return {
            "arrivals": report.arrivals,
            "duplicates": report.duplicates,
            "sealed": report.sealed,
            "loads": report.loads,
            **parsed.sqs_response(),
        }

    def add_parsed(
        self, parsed: ParseResult, context: LambdaContext | None, *, load: bool = True
    ) -> HandleReport:
        """Add every good arrival of a parsed event in as few requests as the batcher can (any
        left over by a failed request one at a time), then (with ``load``) load what the adds
        sealed while time allows. An arrival that could not be added fails its SQS message
        (``parsed.fail_message``); outside SQS the first such error is raised after the rest
        were added and loaded. :meth:`handle` is this after :func:`parse_s3_event`, and
        :class:`patterns.feeds.S3Feeds` calls it with each feed's share of an event, without
        loading, so that every feed's arrivals are added before any load takes the time."""
        report = HandleReport()
        try:
            results: list[AddResult | None] = list(
                self.batcher.add_many(parsed.arrivals, context=context)
            )
        except IncompleteAdd as e:
            results = e.results
            _log.warning("adding the event's arrivals in requests failed (%s)", e.__cause__)
        first_error: Exception | None = None
        for arrival, message_id, outcome in zip(
            parsed.arrivals, parsed.message_ids, results, strict=True
        ):
            result = outcome
            if result is None:
                # One at a time now, so an arrival that cannot be added fails only its message.
                try:
                    result = self.batcher.add(arrival, context=context)
                except Exception as e:
                    if message_id is None:
                        first_error = first_error or e
                    else:
                        _log.warning(
                            "adding %s failed; SQS message %s will be redelivered",
                            arrival.id,
                            message_id,
                            exc_info=True,
                        )
                        parsed.fail_message(message_id)
                    continue
            report.arrivals += 1
            report.duplicates += int(result.duplicate)
            if result.sealed is not None:
                report.sealed.append(result.sealed.id)
        crash_point("after-add")
        for batch_id in report.sealed if load else ():
            if remaining(context) >= self.min_load_time:
                report.loads[batch_id] = self.load(batch_id, context)
        if first_error is not None:
            raise first_error
        return report

    def load(self, batch_id: str, context: LambdaContext | None = None) -> LoadResult:
        """Load one batch if it is ours to load. Returns what happened: ``loaded``,
        ``already-loaded`` (the warehouse ledger had it), ``busy`` (another loader holds it),
        ``abandoned`` (the warehouse ledger holds an operator's abandon: nothing committed),
        ``retry-later`` or ``failed`` (a load error; ``failed`` once attempts are used up), or
        ``superseded`` (our lease ran out and another loader took over; nothing committed by
        this call). ``loaded`` whenever this call committed rows, even if its lease ran out
        before it could mark the batch: an outcome never hides a commit."""
        crash_point("after-seal")
        lease = min(self.batcher.load_lease, max(1.0, remaining(context)))
        try:
            ticket = self.batcher.claim_load(batch_id, lease=lease)
        except LeaseUnavailable:
            return "busy"
        crash_point("after-claim")
        try:
            # A takeover (a fence above 1: the batch was claimed before) asks the warehouse
            # first whether an earlier attempt committed: pinning again would record as
            # superseded, over that attempt's own record, content it may have loaded.
            outcome = self.loader.recorded(ticket) if ticket.fence > 1 else None
            if outcome is None:
                # Even with every member's content gone, the load goes through the ledger (an
                # empty one): a zombie that read the content before it went may commit first.
                manifest = self._manifest(ticket)
                crash_point("mid-load")
                outcome = self.loader.load(ticket, manifest)
            crash_point("after-commit")
        except LeaseLost:
            return "superseded"
        except Exception as e:  # any load error is recorded on the batch, to retry or to show
            try:
                state = ticket.failed(f"{type(e).__name__}: {e}")
            except LeaseLost:
                return "superseded"
            return "failed" if state == BatchState.FAILED else "retry-later"
        if outcome.abandoned:
            return "abandoned"
        try:
            ticket.loaded()
        except LeaseLost:
            if outcome.committed:
                _log.warning(
                    "batch %s: committed by this load after its lease ran out; the loader "
                    "that took over finds the ledger row and marks it loaded",
                    batch_id,
                )
                return "loaded"
            return "superseded"
        return "loaded" if outcome.committed else "already-loaded"

    def _manifest(self, ticket: LoadTicket) -> Manifest:
        """The batch's members pinned to their own content (:mod:`patterns.batcher.object_pins`),
        the superseded ones recorded on the batch, and the manifest of the rest written to S3
        (unless it is empty: every member's content gone), with the recheck a loader that reads
        keys' current content calls after its read."""
        # Only an invocation that loads needs these: not every handler's cold start.
        from .batcher.manifest import build_manifest, write_manifest
        from .batcher.object_pins import PinRecheck, pin_members

        batch_id = ticket.batch.id
        members = self.batcher.members(batch_id)
        if len(members) != ticket.batch.count:
            raise CorruptState(
                f"batch {batch_id} has {len(members)} members but counts {ticket.batch.count}"
            )
        pinned = pin_members(
            self.s3,
            batch_id,
            members,
            stage_bucket=self.manifest_bucket,
            stage_prefix=f"{self.manifest_prefix}staged/",
            always_stage=self.always_stage,
        )
        superseded = sorted(m.id for m in pinned.superseded)
        if superseded:
            _log.warning(
                "batch %s: %d members' content is gone from S3 (rewritten or deleted); not loaded",
                batch_id,
                len(superseded),
            )
            ticket.record_superseded(superseded)
        manifest = build_manifest(
            batch_id,
            pinned.members,
            bucket=self.manifest_bucket,
            prefix=self.manifest_prefix,
            fence=ticket.fence,
        )
        if manifest.entries:
            write_manifest(self.s3, manifest)
        recheck = PinRecheck(
            self.s3,
            batch_id,
            list(pinned.members),
            stage_bucket=self.manifest_bucket,
            stage_prefix=f"{self.manifest_prefix}staged/",
            manifest_bucket=self.manifest_bucket,
            manifest_prefix=self.manifest_prefix,
            record_superseded=ticket.record_superseded,
            superseded=superseded,
        )
        return replace(manifest, recheck=recheck)

    def due_loads(self, context: LambdaContext | None = None) -> list[DueLoad]:
        """The batches waiting for a load that may be loaded now, oldest sealed first, each as
        a :class:`~patterns.sweeper.DueLoad` into :attr:`target`: sealed (and past its retry
        backoff, if it failed before), or loading under an expired lease (its loader crashed).
        One ``Query`` of the pending index."""
        now = clock.now()
        due: list[DueLoad] = []
        for batch in self.batcher.pending():
            if not self.takes(batch):
                continue
            if (
                batch.state == BatchState.SEALED
                and (batch.next_attempt_at is None or batch.next_attempt_at <= now)
            ) or (batch.state == BatchState.LOADING and (batch.lease_until or 0) <= now):
                due.append(
                    DueLoad(
                        batch.id,
                        self.target,
                        partial(self.load, batch.id, context),
                        retry=batch.attempts > 0,
                        min_load_time=self.min_load_time,
                    )
                )
        return due

    def takes(self, batch: Batch) -> bool:
        """Whether :meth:`due_loads` offers ``batch`` (every batch of the stream, here; a
        feed's pipeline leaves out another configuration's). No request."""
        return True

    def sweep(self, context: LambdaContext | None = None) -> dict[str, Any]:
        """The scheduled handler: seal aged batches, then load whatever waits, oldest first
        (batches never tried before retries), while at least ``min_load_time`` of the
        invocation remains; after a failed load, this sweep leaves the target's other batches
        to the next one (``deferred``). :func:`sweep_all` sweeps many pipelines at once."""
        return sweep_all([self], context)
