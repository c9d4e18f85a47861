"""The batcher: accumulate arrivals until a threshold seals a batch, then load each batch once.

Item layout, per stream and lane (single table; keys from :mod:`stateless_state.keys`, so any
stream name gets its own items):

* batch   ``pk=batch#<stream>#<lane>, sk=<seq:012d>``: state, count, bytes, opened_at, and the
  loading lifecycle (attempts, fence, loader, lease_until, statement_id, error). While a batch waits
  to be loaded it carries the sparse index keys ``gsi1pk=pending#<stream>``, so the sweeper finds
  it with one Query, never a Scan.
* member  ``pk=member#<stream>#<lane>#<seq>, sk=sha256(arrival id)``: one small item per arrival.
* arrival ``pk=arrival#<stream>#<sha256(arrival id)>, sk=arrival``: the global dedupe record,
  naming the batch the arrival joined.

The hot path is one ``TransactWriteItems`` of those three items: the arrival record (condition: it
does not exist), the member, and the open batch's ``ADD count, bytes`` with the condition that the
batch is still open **and below its thresholds after this add**. So the ordinary arrival needs
no read and no item grows with the batch. The arrival that would reach a threshold fails that
condition, learns the batch's exact count and bytes from ALL_OLD, and seals the batch in its
own next transaction (joining it as the last member). The open batch's sequence number is cached
per container and refreshed when a write finds the batch sealed.

Why three items and not two: a member keyed only by arrival id (global dedupe in one item) cannot
be listed per batch without an index, and an index is eventually consistent: a manifest built from
it could miss a file. Three items cost 6 WCU on AWS (transactions bill two per item) in one
request; the two-item layout with a GSI would cost 5 and needs a count-convergence wait.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from stateless_state import (
    InvalidArgument,
    LeaseUnavailable,
    StateConflict,
    Store,
    domain,
    keys,
)
from stateless_state.codec import from_item
from stateless_state.expressions import Attr, Condition, Update, render
from stateless_state.lease import FencedClaim
from stateless_state.retry import LambdaContext
from stateless_state.table import (
    INDEX_NAME,
    INDEX_PK,
    INDEX_SK,
    ConditionFailed,
    Table,
    TransactionCanceled,
)
from stateless_state.transaction import Transaction, own_write

from .batches import (
    AddResult,
    Arrival,
    Batch,
    BatchState,
    Member,
    Thresholds,
    batch_from_item,
    batch_id,
    parse_batch_id,
)
from .loading import LoadTicket

__all__ = [
    "AddResult",
    "Arrival",
    "Batch",
    "BatchState",
    "Batcher",
    "LoadTicket",
    "Member",
    "Thresholds",
    "batch_id",
    "parse_batch_id",
]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where the next attempt of an add aims: batch ``seq`` of the lane (None: look it up),
    and whether this arrival seals it: ``"new"`` (a batch of one), or the batch's count and
    bytes before this arrival (it reaches a threshold), learnt from a cancelled attempt."""

    seq: int | None
    seal: Literal["new"] | tuple[int, int] | None = None
    opened_at: float | None = None


class _Moved(Exception):
    """The batch we aimed at was not as assumed; retry at once with what we learned."""

    def __init__(self, plan: _Plan) -> None:
        super().__init__("the open batch moved")
        self.plan = plan


class _Conflict(Exception):
    """A transaction conflict: retry after a jittered backoff."""


class Batcher:
    """Accumulates arrivals of one ``stream`` into batches; see the module docstring.

    Guarantees, under any number of concurrent callers, duplicate and reordered arrivals,
    ambiguous writes and crashes: every distinct arrival is a member of exactly one batch; a
    duplicate (same id) is never a member twice, in any batch; a sealed batch's members never
    change; each sealed batch is handed to exactly one ``add`` or ``seal_due`` caller as
    ``sealed``; a batch's count and bytes equal the sum over its members.

    Cost of ``add``: one ``TransactWriteItems`` of three small items (6 WCU on AWS) and no read.
    A container's first add per lane, and an add that finds its cached batch sealed, add one
    ``Query`` (0.5 to 1 RCU). The sealing add is a second transaction. Flat in batch size.
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
    ) -> None:
        domain.name("stream", stream)
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 256:
            raise InvalidArgument(f"lanes must be an int from 1 to 256, got {lanes!r}")
        self.store = store
        self.stream = stream
        self.thresholds = thresholds or Thresholds()
        self.lanes = lanes
        self.max_attempts = domain.integer(max_attempts, "max_attempts", minimum=1, maximum=1000)
        self.retry_backoff = domain.duration(retry_backoff, "retry_backoff", allow_zero=True)
        self.load_lease = domain.duration(load_lease, "load_lease")
        self._t: Table = store.table
        self._open: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"Batcher({self.stream!r}, {self.thresholds}, lanes={self.lanes})"

    # keys

    def lane_of(self, arrival_id: str) -> int:
        """The lane an arrival belongs to (a stable hash of its id)."""
        return int(_digest(arrival_id)[:8], 16) % self.lanes

    def _batch_key(self, lane: int, seq: int) -> dict[str, str]:
        return keys.batch(self.stream, lane, seq).item()

    def _member_pk(self, lane: int, seq: int) -> str:
        return keys.member_partition(self.stream, lane, seq)

    def _arrival_key(self, arrival_id: str) -> dict[str, str]:
        return keys.arrival(self.stream, _digest(arrival_id)).item()

    def _index(self, word: str, at: float, batch_id_: str) -> dict[str, str]:
        entry = keys.batch_index(word, self.stream, at, batch_id_)
        return {"gsi1pk": entry.pk, "gsi1sk": entry.sk}

    # adding

    def _latest(self, lane: int) -> Batch | None:
        r = self._t.call(
            "Query",
            TableName=self._t.name,
            **render(key_condition=Attr("pk").eq(self._batch_key(lane, 0)["pk"])),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = r.get("Items", [])
        return batch_from_item(from_item(items[0]) or {}) if items else None

    def _discover(self, lane: int) -> int:
        latest = self._latest(lane)
        if latest is None:
            return 0
        return latest.seq if latest.state == BatchState.OPEN else latest.seq + 1

    def add(self, arrival: Arrival, *, context: LambdaContext | None = None) -> AddResult:
        """Add ``arrival`` to its lane's open batch, exactly once; see the class docstring.
        Retries (a batch found sealed, a transaction conflict) stop at 60 attempts and, given
        the Lambda ``context``, before the invocation's time runs out."""
        if not isinstance(arrival, Arrival):
            raise InvalidArgument(f"expected an Arrival, got {type(arrival).__name__}")
        lane = self.lane_of(arrival.id)
        nonce = secrets.token_hex(8)
        plan = [_Plan(self._open.get(lane))]

        def attempt() -> AddResult:
            if plan[0].seq is None:
                plan[0] = replace(plan[0], seq=self._discover(lane))
            try:
                return self._try_add(arrival, lane, nonce, plan[0])
            except _Moved as moved:
                plan[0] = moved.plan
                raise

        return self._t.retry(
            attempt,
            retry_on=(_Moved, _Conflict),
            immediate=(_Moved,),
            what=f"batcher {self.stream!r} add",
            attempts=60,
            context=context,
            operation="batcher.add",
        )

    def _batch_write(
        self, arrival: Arrival, lane: int, plan: _Plan, now: float
    ) -> tuple[Update, Condition]:
        """The open batch's update for this arrival and its condition: still open and below
        every threshold after it, or (when this arrival seals it) exactly as last seen."""
        seq = plan.seq
        assert seq is not None
        update = (
            Update()
            .add("count", 1)
            .add("bytes", arrival.size)
            .set_default("opened_at", now)
            .set_all({"stream": self.stream, "lane": lane, "seq": seq})
        )
        state, count, size = Attr("state"), Attr("count"), Attr("bytes")
        if plan.seal is None:
            th = self.thresholds
            if (th.count is not None and th.count <= 1) or (
                th.bytes is not None and arrival.size >= th.bytes
            ):
                raise _Moved(replace(plan, seal="new"))
            condition = state.not_exists() | state.eq(BatchState.OPEN)
            if th.count is not None:
                condition = condition & (count.not_exists() | count.lt(th.count - 1))
            if th.bytes is not None:
                condition = condition & (size.not_exists() | size.lt(th.bytes - arrival.size))
            return update.set_default("state", BatchState.OPEN), condition
        entry = self._index("pending", now, batch_id(self.stream, lane, seq))
        update.set_all(
            {
                "state": BatchState.SEALED,
                "sealed_at": now,
                "seal_reason": self._seal_reason(plan.seal, arrival.size),
                **entry,
            }
        )
        if plan.seal == "new":
            return update, state.not_exists()
        seen_count, seen_bytes = plan.seal
        return update, state.eq(BatchState.OPEN) & count.eq(seen_count) & size.eq(seen_bytes)

    def _try_add(self, arrival: Arrival, lane: int, nonce: str, plan: _Plan) -> AddResult:
        seq = plan.seq
        assert seq is not None
        now = time.time()
        bid = batch_id(self.stream, lane, seq)
        update, condition = self._batch_write(arrival, lane, plan, now)
        record: dict[str, Any] = {
            **self._arrival_key(arrival.id),
            "batch": bid,
            "nonce": nonce,
            "sealed": plan.seal is not None,
            "at": now,
        }
        sealed: Batch | None = None
        if plan.seal is not None:
            count, total = plan.seal if isinstance(plan.seal, tuple) else (0, 0)
            # Everything the sealed batch holds is known here: no read is needed to describe it,
            # and the arrival record keeps it for a retry that meets this write (ambiguous).
            sealed = Batch(
                self.stream,
                lane,
                seq,
                BatchState.SEALED,
                count + 1,
                total + arrival.size,
                plan.opened_at if plan.opened_at is not None else now,
                sealed_at=now,
                seal_reason=self._seal_reason(plan.seal, arrival.size),
            )
            record["sealed_batch"] = {
                "count": sealed.count,
                "bytes": sealed.bytes,
                "opened_at": sealed.opened_at,
                "reason": sealed.seal_reason,
            }
        member = {
            "pk": self._member_pk(lane, seq),
            "sk": _digest(arrival.id),
            "id": arrival.id,
            "size": arrival.size,
            "at": arrival.at,
            "data": dict(arrival.data),
        }
        tx = Transaction(self._t)
        dedupe = tx.put_if_absent(record)
        tx.put(member)
        batch = tx.update(self._batch_key(lane, seq), update, condition=condition, return_old=True)
        try:
            tx.commit()
        except TransactionCanceled as e:
            return self._after_cancel(e, dedupe, batch, arrival, lane, nonce, plan)
        self._open[lane] = seq + 1 if sealed is not None else seq
        return AddResult(bid, False, sealed)

    def _seal_reason(self, seal: Literal["new"] | tuple[int, int], size: int) -> str:
        th = self.thresholds
        count, total = (0, 0) if seal == "new" else seal
        if th.count is not None and count + 1 >= th.count:
            return "count"
        return "bytes" if th.bytes is not None and total + size >= th.bytes else "count"

    def _after_cancel(
        self,
        e: TransactionCanceled,
        dedupe: int,
        batch: int,
        arrival: Arrival,
        lane: int,
        nonce: str,
        plan: _Plan,
    ) -> AddResult:
        if e.reasons[dedupe].code == "ConditionalCheckFailed":
            return self._already_added(dict(e.reasons[dedupe].item or {}), lane, nonce)
        if e.reasons[batch].code == "ConditionalCheckFailed":
            current = e.reasons[batch].item or {}
            th = self.thresholds
            if current.get("state") is None:
                raise _Moved(replace(plan, seal=None)) from e
            if current["state"] != BatchState.OPEN:
                seq = max(int(current["seq"]) + 1, self._discover(lane))
                raise _Moved(replace(plan, seq=seq, seal=None)) from e
            count, total = int(current.get("count", 0)), int(current.get("bytes", 0))
            full = (th.count is not None and count + 1 >= th.count) or (
                th.bytes is not None and total + arrival.size >= th.bytes
            )
            opened_at = float(current.get("opened_at", time.time()))
            raise _Moved(replace(plan, seal=(count, total) if full else None, opened_at=opened_at))
        if e.conflict:
            raise _Conflict() from e
        raise e

    def _already_added(self, old: dict[str, Any], lane: int, nonce: str) -> AddResult:
        """The arrival's dedupe record exists: a duplicate, or this add's own earlier attempt
        (applied, its response lost, retried by botocore), which is reported as it happened."""
        bid = old["batch"]
        if not own_write(old, nonce):
            return AddResult(bid, True, None)
        stream, lane_, seq = parse_batch_id(bid)
        if not old.get("sealed"):
            self._open[lane] = seq
            return AddResult(bid, False, None)
        self._open[lane] = seq + 1
        info = old["sealed_batch"]
        batch = Batch(
            stream,
            lane_,
            seq,
            BatchState.SEALED,
            int(info["count"]),
            int(info["bytes"]),
            float(info["opened_at"]),
            sealed_at=float(old["at"]),
            seal_reason=info["reason"],
        )
        return AddResult(bid, False, batch)

    # sealing by age

    def seal_due(self, now: float | datetime | None = None) -> list[Batch]:
        """Seal every lane's open batch older than ``thresholds.age``; return those this call
        sealed. Each batch is returned by exactly one caller, however many sweepers run.

        Cost: one ``Query`` per lane, plus one conditional ``UpdateItem`` per batch sealed.
        """
        age = self.thresholds.age_seconds
        if age is None:
            return []
        now = time.time() if now is None else domain.instant(now, "now")
        sealed = []
        for lane in range(self.lanes):
            latest = self._latest(lane)
            if latest is None or latest.state != BatchState.OPEN:
                continue
            if latest.opened_at + age > now:
                continue
            seal = Update().set_all(
                {
                    "state": BatchState.SEALED,
                    "sealed_at": now,
                    "seal_reason": "age",
                    **self._index("pending", now, latest.id),
                }
            )
            try:
                item = self._update(lane, latest.seq, seal, Attr("state").eq(BatchState.OPEN))
            except ConditionFailed:
                continue
            sealed.append(batch_from_item(item))
        return sealed

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
        out = [
            Member(i["id"], int(i["size"]), float(i["at"]), i.get("data", {}))
            for i in self._query(
                **render(key_condition=Attr("pk").eq(self._member_pk(lane, seq))),
                ConsistentRead=True,
            )
        ]
        return sorted(out, key=lambda m: m.id)

    def batches(self, *, lane: int | None = None, newest_first: bool = True) -> Iterator[Batch]:
        """Every batch of the stream (or of one lane), newest first by default."""
        for ln in range(self.lanes) if lane is None else [lane]:
            for item in self._query(
                **render(key_condition=Attr("pk").eq(self._batch_key(ln, 0)["pk"])),
                ScanIndexForward=not newest_first,
            ):
                yield batch_from_item(item)

    def pending(self) -> list[Batch]:
        """Batches waiting to be loaded (sealed, loading or awaiting a retry), oldest sealed
        first. One ``Query`` of the sparse index (eventually consistent, which a scheduled
        sweeper can afford: a batch sealed a moment ago shows up on the next sweep)."""
        items = self._query(
            IndexName=INDEX_NAME,
            **render(key_condition=Attr(INDEX_PK).eq(keys.index_partition("pending", self.stream))),
        )
        return [batch_from_item(i) for i in items]

    def failed(self) -> list[Batch]:
        """Batches that used up their load attempts and wait for an operator."""
        items = self._query(
            IndexName=INDEX_NAME,
            **render(key_condition=Attr(INDEX_PK).eq(keys.index_partition("failed", self.stream))),
        )
        return [batch_from_item(i) for i in items]

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self._t.query(**kwargs))

    # loading lifecycle

    def _claim(self, lane: int, seq: int) -> FencedClaim:
        """The load claim on a batch item: the lease's fenced claim, with the batch's own
        attribute names (``loader``, ``lease_until``)."""
        return FencedClaim(
            self._t, self._batch_key(lane, seq), holder_attr="loader", expiry_attr="lease_until"
        )

    def claim_load(self, batch_id_: str, *, lease: timedelta | float | None = None) -> LoadTicket:
        """Take the right to load a batch: sealed and due, or loading under an expired lease (a
        crashed loader). Raises :class:`LeaseUnavailable` otherwise. The returned ticket's
        ``fence`` exceeds every earlier loader's. One conditional ``UpdateItem``."""
        _, lane, seq = parse_batch_id(batch_id_)
        seconds = self.load_lease if lease is None else domain.duration(lease, "lease")
        now = time.time()
        nonce = secrets.token_hex(8)
        state, retry_at = Attr("state"), Attr("next_attempt_at")
        due = state.eq(BatchState.SEALED) & (retry_at.not_exists() | retry_at.le(now))
        abandoned_by_crash = state.eq(BatchState.LOADING) & Attr("lease_until").le(now)
        try:
            item = self._claim(lane, seq).take(
                nonce=nonce,
                until=now + seconds,
                claimable=due | abandoned_by_crash,
                also_set={"state": BatchState.LOADING},
                also_add={"attempts": 1},
            )
        except ConditionFailed as e:
            old = e.old or {}
            raise LeaseUnavailable(
                f"batch {batch_id_}", old.get("loader"), old.get("lease_until")
            ) from None
        return LoadTicket(self, batch_from_item(item), nonce, self._claim(lane, seq))

    def _update(self, lane: int, seq: int, update: Update, condition: Condition) -> dict[str, Any]:
        """One conditional ``UpdateItem`` of a batch; returns the batch after it (ALL_NEW)."""
        item = self._t.update_item(
            self._batch_key(lane, seq), update, condition=condition, returns="ALL_NEW"
        )
        return item or {}

    def operator_action(
        self,
        batch_id_: str,
        action: Literal["retry", "abandon"],
        *,
        expect_state: BatchState,
        who: str,
        why: str,
    ) -> Batch:
        """``retry`` (a failed or stuck batch back to sealed, attempts reset) or ``abandon`` (no
        further loads). Conditional on the batch still being in ``expect_state``; recorded on
        the batch (who, when, why). Raises :class:`StateConflict` when the state moved (nothing
        changed), :class:`InvalidArgument` for an unknown action."""
        _, lane, seq = parse_batch_id(batch_id_)
        now = time.time()
        entry = {"action": action, "who": who, "why": why, "at": now, "from": expect_state}
        if action == "retry":
            update = Update().set_all(
                {
                    "state": BatchState.SEALED,
                    "attempts": 0,
                    "next_attempt_at": now,
                    **self._index("pending", now, batch_id_),
                }
            )
        elif action == "abandon":
            update = Update().set_all({"state": BatchState.ABANDONED, "abandoned_at": now})
            update.remove(INDEX_PK, INDEX_SK)
        else:
            raise InvalidArgument(f"unknown action {action!r}; use retry or abandon")
        update.append("history", [entry]).remove("lease_until", "loader")
        try:
            item = self._update(lane, seq, update, Attr("state").eq(expect_state))
        except ConditionFailed as e:
            actual = (e.old or {}).get("state")
            raise StateConflict(
                f"batch {batch_id_} is {actual or 'missing'}, not {expect_state}; nothing changed"
            ) from None
        return batch_from_item(item)
