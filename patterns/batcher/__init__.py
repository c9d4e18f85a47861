"""The batcher: accumulate arrivals until a threshold seals a batch, then load each batch once.

:class:`Batcher` is the public face. The folder reads in the order an arrival travels:

1. :mod:`~patterns.batcher.arrivals`: what an arrival is, and a member (an arrival as recorded);
2. :mod:`~patterns.batcher.batches`: what a batch is: states, thresholds, ids, an add's result;
3. :mod:`~patterns.batcher.members`: how arrivals become members (one transaction per request);
4. :mod:`~patterns.batcher.seal`: how a batch seals (by count or bytes in that transaction, or by
   age on a schedule);
5. :mod:`~patterns.batcher.object_pins`: how a sealed batch's members are pinned to their S3
   object versions before a load, and checked again after COPY read them;
6. :mod:`~patterns.batcher.manifest_keys`, :mod:`~patterns.batcher.manifest`: where the batch's
   manifest goes, and the manifest written there;
7. :mod:`~patterns.batcher.load_ticket`: the fenced claim and ticket a loader holds while it loads;
   :mod:`~patterns.batcher.abandon`: an operator stopping a batch for good.

The loaders themselves are :mod:`patterns.loaders`; the pipeline that walks an S3 event through
all of this is :mod:`patterns.pipeline`.

Item layout, per stream and lane (single table; keys from :mod:`stateless_state.keys`, so any
stream name gets its own items):

* batch   ``pk=batch#<stream>#<lane>, sk=<seq:012d>``: state, count, bytes, opened_at, and the
  loading lifecycle (attempts, fence, loader, lease_until, statement_id, error). While a batch waits
  to be loaded it carries the sparse index keys ``gsi1pk=pending#<stream>``, so the sweeper finds
  it with one Query, never a Scan.
* member chunk ``pk=member#<stream>#<lane>#<seq>, sk=sha256(first arrival id)``: the members one
  request added, compressed; a batch's members are its partition, read with one consistent Query.
* arrival ``pk=arrival#<stream>#<sha256(arrival id)>, sk=arrival``: the global dedupe record,
  naming the batch the arrival joined.

Adding is one ``TransactWriteItems`` per request of up to 98 arrivals: their arrival records
(condition: absent), one member chunk, and the open batch's ``ADD count, bytes`` with the condition
that the batch is still open **and below its thresholds after this add**, or, for the request that
reaches a threshold, exactly the count and bytes it expects (:mod:`patterns.batcher.members`). So an
ordinary add needs no read and no item grows with the batch.

Why not fewer items: a member keyed only by arrival id (global dedupe in one item) cannot be
listed per batch without an index, and an index is eventually consistent: a manifest built from it
could miss a file. The chunk is what makes the members cheap: one item per request, not per arrival.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from stateless_state import (
    InvalidArgument,
    StateConflict,
    StatelessStateError,
    Store,
    clock,
    domain,
    keys,
)
from stateless_state.expressions import Attr, Condition, Update
from stateless_state.retry import LambdaContext
from stateless_state.table import INDEX_PK, INDEX_SK, ConditionFailed, Table

# The values the face takes and hands out, re-exported (``as``) from the modules that hold them.
from .arrivals import Arrival as Arrival
from .arrivals import Member as Member
from .batches import AddResult as AddResult
from .batches import Batch as Batch
from .batches import BatchState as BatchState
from .batches import Thresholds as Thresholds
from .batches import batch_from_item
from .batches import batch_id as batch_id
from .batches import parse_batch_id as parse_batch_id
from .members import Membership, lane_of, unpack_members
from .seal import pending_index, seal_by_age

if TYPE_CHECKING:
    from .load_ticket import LoadTicket

__all__ = ["MAX_LANES", "Batcher", "IncompleteAdd"]

MAX_LANES = 256
"""The most lanes a stream can have (lanes are numbered from 0)."""


class IncompleteAdd(StatelessStateError):
    """:meth:`Batcher.add_many` stopped before every arrival was added (the cause is chained).
    ``results[i]`` is the outcome of ``arrivals[i]``, or None when it was not added. Adding the
    same arrivals again is safe: those already added are reported as duplicates."""

    def __init__(self, results: Sequence[AddResult | None], cause: BaseException) -> None:
        done = sum(r is not None for r in results)
        super().__init__(f"{done} of {len(results)} arrivals added before: {cause}")
        self.results = list(results)


class Batcher:
    """Accumulates arrivals of one ``stream`` into batches; see the module docstring.

    Guarantees, under any number of concurrent callers, duplicate and reordered arrivals,
    ambiguous writes and crashes: every distinct arrival is a member of exactly one batch; a
    duplicate (same id) is never a member twice, in any batch; a sealed batch's members never
    change; each sealed batch is handed to exactly one ``add`` or ``seal_due`` caller as
    ``sealed``; a batch's count and bytes equal the sum over its members.

    Cost of ``add``: one ``TransactWriteItems`` of three small items (6 WCU on AWS) and no read.
    A container's first add per lane, and an add that finds its cached batch sealed, add one
    ``Query`` (0.5 to 1 RCU). Flat in batch size. :meth:`add_many` shares the member chunk and
    the batch update among up to 98 arrivals, approaching 2 WCU per arrival.
    """

    def __init__(
        self,
        store: Store,
        stream: str,
        thresholds: Thresholds | None = None,
        lanes: int = 1,
        *,
        max_attempts: int = 5,
        retry_backoff: timedelta | float = timedelta(seconds=30),
        load_lease: timedelta | float = timedelta(minutes=5),
        config_version: int | None = None,
    ) -> None:
        domain.name("stream", stream)
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
            raise InvalidArgument(f"lanes must be an int from 1 to {MAX_LANES}, got {lanes!r}")
        self.store = store
        self.stream = stream
        self.thresholds = thresholds or Thresholds()
        self.lanes = lanes
        self.max_attempts = domain.integer(max_attempts, "max_attempts", minimum=1, maximum=1000)
        self.retry_backoff = domain.duration(retry_backoff, "retry_backoff", allow_zero=True)
        self.load_lease = domain.duration(load_lease, "load_lease")
        self._t: Table = store.table
        self._membership = Membership(self._t, stream, self.thresholds, lanes)
        self.config_version = config_version

    @property
    def config_version(self) -> int | None:
        """The feeds' configuration version (:mod:`patterns.feeds`) every seal from now on
        records on its batch, in the seal's own write; None (nothing recorded) outside feeds.
        Set it between requests: a request in flight records the version it began with."""
        return self._membership.config_version

    @config_version.setter
    def config_version(self, version: int | None) -> None:
        if version is not None:
            domain.integer(version, "config_version", minimum=1, maximum=10**12 - 1)
        self._membership.config_version = version

    @property
    def config_name(self) -> str | None:
        """The feeds' configuration whose :attr:`config_version` the seals record, recorded
        with it (so a loader of another configuration refuses the batch); None outside feeds.
        Set it between requests, as :attr:`config_version`."""
        return self._membership.config_name

    @config_name.setter
    def config_name(self, name: str | None) -> None:
        if name is not None:
            domain.name("feeds configuration name", name)
        self._membership.config_name = name

    def __repr__(self) -> str:
        return f"Batcher({self.stream!r}, {self.thresholds}, lanes={self.lanes})"

    def lane_of(self, arrival_id: str) -> int:
        """The lane an arrival belongs to (a stable hash of its id, the same in every container)."""
        return lane_of(arrival_id, self.lanes)

    def _batch_key(self, lane: int, seq: int) -> dict[str, str]:
        return keys.batch(self.stream, lane, seq).item()

    # adding

    def add(self, arrival: Arrival, *, context: LambdaContext | None = None) -> AddResult:
        """Add ``arrival`` to its lane's open batch, exactly once; see the class docstring.
        Retries (a batch found sealed, a transaction conflict) stop at 60 attempts and, given
        the Lambda ``context``, before the invocation's time runs out."""
        if not isinstance(arrival, Arrival):
            raise InvalidArgument(f"expected an Arrival, got {type(arrival).__name__}")
        results: list[AddResult | None] = [None]
        self._membership.add([arrival], results, context)
        result = results[0]
        assert result is not None
        return result

    def add_many(
        self, arrivals: Sequence[Arrival], *, context: LambdaContext | None = None
    ) -> list[AddResult]:
        """Add many arrivals, each exactly once, in as few transactions as the lanes, the
        thresholds and DynamoDB's limits allow; returns one :class:`AddResult` per arrival, in
        order. The guarantees of :meth:`add` hold for each: a threshold reached inside the
        request seals the batch at exactly that arrival (the rest go on to the next batch); a
        repeated id, inside ``arrivals`` or already stored, is a duplicate and does not cost its
        siblings their membership; a request whose response was lost is recognised when
        retried, not applied twice.

        Cost, per lane and per 98 arrivals: one ``TransactWriteItems`` (2 WCU per arrival, 2 per
        started KB of the compressed member chunk, 2 for the batch), no read in a warm
        container; a request that reaches a threshold is one more. A duplicate already stored
        costs one cancelled request per request it is in.

        Raises :class:`IncompleteAdd` when a request fails for good (throttling, time running
        out): its ``results`` say which arrivals were added; adding all of them again is safe.
        """
        arrivals = list(arrivals)
        for a in arrivals:
            if not isinstance(a, Arrival):
                raise InvalidArgument(f"expected Arrivals, got a {type(a).__name__}")
        results: list[AddResult | None] = [None] * len(arrivals)
        try:
            self._membership.add(arrivals, results, context)
        except Exception as e:
            raise IncompleteAdd(results, e) from e
        done = [r for r in results if r is not None]
        assert len(done) == len(results), "every arrival has an outcome"
        return done

    # sealing by age

    def seal_due(
        self, now: float | datetime | None = None, *, age: timedelta | float | None = None
    ) -> list[Batch]:
        """Seal every lane's open batch older than ``thresholds.age`` (or ``age``, which may
        be 0: every open batch, as for a removed feed); return those this call sealed. Each
        batch is returned by exactly one caller, however many sweepers run.

        Cost: one ``Query`` per lane, plus one conditional ``UpdateItem`` per batch sealed.
        """
        seconds = (
            self.thresholds.age_seconds
            if age is None
            else domain.duration(age, "age", allow_zero=True)
        )
        if seconds is None:
            return []
        now = clock.now() if now is None else domain.instant(now, "now")
        latest = self._membership.latest
        return seal_by_age(
            self._t,
            self.stream,
            self.lanes,
            latest,
            age=seconds,
            now=now,
            config_version=self.config_version,
            config_name=self.config_name,
        )

    # reading

    def batch(self, batch_id_: str) -> Batch | None:
        """One batch, strongly consistent (one ``GetItem``)."""
        stream, lane, seq = parse_batch_id(batch_id_)
        if stream != self.stream:
            raise InvalidArgument(f"batch {batch_id_!r} is not in stream {self.stream!r}")
        item = self._t.get(self._batch_key(lane, seq))
        return batch_from_item(item) if item else None

    def members(self, batch_id_: str) -> list[Member]:
        """A batch's members, sorted by id. Strongly consistent: for a sealed batch this is its
        frozen member set, so a manifest rebuilt after a crash is the same manifest."""
        _, lane, seq = parse_batch_id(batch_id_)
        partition = keys.member_partition(self.stream, lane, seq)
        out = [
            Member(row[0], int(row[1]), float(row[2]), row[3])
            for chunk in self._t.query(Attr("pk").eq(partition), consistent=True)
            for row in unpack_members(chunk["m"])
        ]
        return sorted(out, key=lambda m: m.id)

    def lanes_in_use(self) -> list[int]:
        """The lanes, of all :data:`MAX_LANES` a stream can have, that hold batches, in order.
        Nothing records a stream's lanes (``lanes`` is each writer's setting, and lanes that a
        smaller setting left behind keep their batches), but every lane in use has its first
        batch (seq 0: the library never deletes a batch item), so this reads those: consistent
        ``BatchGetItem`` requests of 100 keys, 3 in all, 1 RCU per lane in use."""
        firsts = self._t.batch_get(self._batch_key(lane, 0) for lane in range(MAX_LANES))
        return sorted(batch_from_item(item).lane for item in firsts)

    def batches(self, *, lane: int | None = None, newest_first: bool = True) -> Iterator[Batch]:
        """Every batch of the stream's ``lanes`` (or of one lane), newest first by default."""
        for ln in range(self.lanes) if lane is None else [lane]:
            for item in self._t.query(
                Attr("pk").eq(self._batch_key(ln, 0)["pk"]), reverse=newest_first
            ):
                yield batch_from_item(item)

    def latest(self, lane: int = 0) -> Batch | None:
        """The lane's newest batch, or None (one consistent ``Query`` of one item)."""
        if isinstance(lane, bool) or not isinstance(lane, int) or not 0 <= lane < self.lanes:
            raise InvalidArgument(f"lane must be an int from 0 to {self.lanes - 1}, got {lane!r}")
        return self._membership.latest(lane)

    def pending(self) -> list[Batch]:
        """Batches waiting to be loaded (sealed, loading or awaiting a retry), oldest sealed
        first. One ``Query`` of the sparse index (eventually consistent, which a scheduled
        sweeper can afford: a batch sealed a moment ago shows up on the next sweep)."""
        items = self._t.query(
            Attr(INDEX_PK).eq(keys.index_partition("pending", self.stream)), index=True
        )
        return [batch_from_item(i) for i in items]

    def failed(self) -> list[Batch]:
        """Batches that used up their load attempts and wait for an operator."""
        items = self._t.query(
            Attr(INDEX_PK).eq(keys.index_partition("failed", self.stream)), index=True
        )
        return [batch_from_item(i) for i in items]

    # loading lifecycle

    def claim_load(self, batch_id_: str, *, lease: timedelta | float | None = None) -> LoadTicket:
        """Take the right to load a batch: sealed and due, or loading under an expired lease (a
        crashed loader). Raises :class:`LeaseUnavailable` otherwise. The returned ticket's
        ``fence`` exceeds every earlier loader's. One conditional ``UpdateItem``
        (:func:`patterns.batcher.load_ticket.claim_load`)."""
        _, lane, seq = parse_batch_id(batch_id_)
        seconds = self.load_lease if lease is None else domain.duration(lease, "lease")
        # Loading-only modules load on the first claim, not in every handler's cold start.
        from .load_ticket import RetryPolicy, claim_load

        retry = RetryPolicy(self.max_attempts, self.retry_backoff)
        return claim_load(
            self._t, self._batch_key(lane, seq), batch_id_, lease=seconds, retry=retry
        )

    def record_config_version(self, batch_id_: str, version: int, config_name: str) -> Batch:
        """Record on a sealed batch that records no configuration version (sealed outside
        feeds) the version ``version`` of the feeds' configuration ``config_name`` it will be
        loaded under, and return the batch as stored after it. The write is conditional on the
        batch still recording none (what the caller read): of loaders racing here, one
        records, and every one returns the version recorded, so each later load of the batch
        uses the same target. One conditional ``UpdateItem`` (1 WCU per KB of the batch);
        :class:`InvalidArgument` when there is no such batch."""
        stream, lane, seq = parse_batch_id(batch_id_)
        if stream != self.stream:
            raise InvalidArgument(f"batch {batch_id_!r} is not in stream {self.stream!r}")
        domain.integer(version, "config_version", minimum=1, maximum=10**12 - 1)
        domain.name("feeds configuration name", config_name)
        update = Update().set_all({"config_version": version, "config_name": config_name})
        unrecorded = Attr("pk").exists() & Attr("config_version").not_exists()
        try:
            item = self._update(lane, seq, update, unrecorded)
        except ConditionFailed as e:
            if e.old is None:
                raise InvalidArgument(f"no batch {batch_id_}") from None
            item = e.old  # another loader recorded first: its version is the batch's
        return batch_from_item(item)

    def _update(self, lane: int, seq: int, update: Update, condition: Condition) -> dict[str, Any]:
        """One conditional ``UpdateItem`` of a batch; returns the batch after it (ALL_NEW)."""
        item = self._t.update_item(
            self._batch_key(lane, seq), update, condition=condition, returns="ALL_NEW"
        )
        return item or {}

    def operator_action(
        self,
        batch_id_: str,
        action: Literal["retry", "abandon", "loaded"],
        *,
        expect_state: BatchState,
        expect_fence: int,
        who: str,
        why: str,
        expect_count: int | None = None,
    ) -> Batch:
        """``retry`` (a failed or stuck batch back to sealed, attempts reset), ``abandon`` (no
        further claims; see :func:`patterns.batcher.abandon.abandon_batch` for the warehouse side),
        or ``loaded`` (the warehouse reports an abandoned batch committed: the abandon came too
        late). Recorded on the batch (who, when, why).

        An operator decides on what a read showed, and a loader may claim the batch between that
        read and this write; so the write is conditional on the batch still being in
        ``expect_state`` **at** ``expect_fence`` (the fence counts the claims): a claim taken
        in between fails it; with ``expect_count``, so does an arrival that joined an open batch
        since the read (the operator decided on that many members). Raises
        :class:`StateConflict` when any of them moved (nothing changed),
        :class:`InvalidArgument` for an unknown action or one that does not apply to
        ``expect_state`` (``abandoned`` is final: it is never retried). One conditional
        ``UpdateItem``.
        """
        if action not in _ACTION_FROM:
            raise InvalidArgument(f"unknown action {action!r}; use retry, abandon or loaded")
        if expect_state not in _ACTION_FROM[action]:
            raise InvalidArgument(
                f"{action} does not apply to a batch that is {expect_state} (it applies to "
                f"{', '.join(sorted(_ACTION_FROM[action]))}); abandoned is final; nothing changed"
            )
        domain.integer(expect_fence, "expect_fence", minimum=0, maximum=domain.MAX_INTEGER)
        if expect_count is not None:
            domain.integer(expect_count, "expect_count", minimum=0, maximum=domain.MAX_INTEGER)
        _, lane, seq = parse_batch_id(batch_id_)
        now = clock.now()
        entry = {"action": action, "who": who, "why": why, "at": now, "from": expect_state}
        if action == "retry":
            update = Update().set_all(
                {
                    "state": BatchState.SEALED,
                    "attempts": 0,
                    "next_attempt_at": now,
                    **pending_index(self.stream, now, batch_id_),
                }
            )
        elif action == "abandon":
            update = Update().set_all({"state": BatchState.ABANDONED, "abandoned_at": now})
            update.remove(INDEX_PK, INDEX_SK)
        else:
            update = Update().set_all({"state": BatchState.LOADED, "loaded_at": now})
            update.remove(INDEX_PK, INDEX_SK)
        update.append("history", [entry]).remove("lease_until", "loader")
        fence = Attr("fence")
        unclaimed = fence.not_exists() | fence.eq(0)
        seen = Attr("state").eq(expect_state) & (
            unclaimed if expect_fence == 0 else fence.eq(expect_fence)
        )
        if expect_count is not None:
            seen = seen & Attr("count").eq(expect_count)
        try:
            item = self._update(lane, seq, update, seen)
        except ConditionFailed as e:
            old = e.old or {}
            raise StateConflict(
                f"batch {batch_id_} is {old.get('state') or 'missing'} at fence "
                f"{old.get('fence', 0)}, not {expect_state} at fence {expect_fence} "
                f"({old.get('count', 0)} members, "
                f"{'' if expect_count is None else f'{expect_count} expected; '}a loader, an "
                "arrival or another operator acted since it was read); nothing changed"
            ) from None
        return batch_from_item(item)


_ACTION_FROM: dict[str, frozenset[BatchState]] = {
    "retry": frozenset({BatchState.SEALED, BatchState.LOADING, BatchState.FAILED}),
    "abandon": frozenset(
        {BatchState.OPEN, BatchState.SEALED, BatchState.LOADING, BatchState.FAILED}
    ),
    "loaded": frozenset({BatchState.ABANDONED}),
}
"""The states each operator action applies to. ``abandoned`` goes only to ``loaded`` (when the
warehouse shows a commit that came first): retrying it would let loaders claim a batch whose
abandon the warehouse ledger may already hold, and every sweep would claim it again, forever."""
