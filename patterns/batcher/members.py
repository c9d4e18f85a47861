"""How arrivals become members of batches: many arrivals per ``TransactWriteItems``.

One request carries up to 98 arrivals of one lane, in three kinds of item:

* one dedupe record per arrival, ``arrival#<stream>#<sha256(id)>`` (put if absent), naming the
  batch it joined. This is the floor of the cost: 2 WCU per arrival, as AWS bills transactions;
* one member chunk, ``member#<stream>#<lane>#<seq>`` with ``sk=sha256(first arrival id)``: the
  request's members as zlib-compressed JSON, so a batch lists its members with one consistent
  Query of its own partition (never an index, which could miss a file) and the request pays for
  the started KBs of the compressed chunk, not two units per member;
* the open batch's ``ADD count, bytes``, once per request. Its condition is "open and below every
  threshold after this add"; a request that reaches a threshold carries exactly the arrivals up
  to the one that reaches it, and then requires the count and bytes it expects, exactly.

The container keeps, per lane, the open batch's sequence number and a lower bound of its count
and bytes (:class:`_Plan`), learnt from the container's own writes, from the Query that finds the
open batch, and from the batch item a cancelled request returns (``ALL_OLD``). So a warm container
knows before it writes which arrival seals the batch, and the ordinary request needs no read.
Concurrent writers make the bound stale, which costs a cancelled request and teaches the exact
figures: correctness never rests on the bound, only on the conditions.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from stateless_state import clock, keys
from stateless_state.expressions import Attr, Condition, Update
from stateless_state.retry import LambdaContext
from stateless_state.table import Table, TransactionCanceled
from stateless_state.transaction import MAX_ACTIONS, Transaction, own_write

from ..hooks import crash_point
from .arrivals import Arrival
from .batches import (
    AddResult,
    Batch,
    BatchState,
    Thresholds,
    batch_from_item,
    batch_id,
    parse_batch_id,
)
from .seal import seal_tag, sealed_batch

__all__ = ["MAX_ARRIVALS_PER_REQUEST", "Membership", "lane_of", "pack_members", "unpack_members"]

MAX_ARRIVALS_PER_REQUEST = MAX_ACTIONS - 2
"""Arrivals per transaction: one action each, plus the member chunk and the batch update."""

# A chunk's JSON before compression. Compressed, it stays far below DynamoDB's 400 KB item
# limit, and a request (98 small dedupe records besides) far below the 4 MB transaction limit.
_MAX_CHUNK_JSON = 300_000


def digest(text: str) -> str:
    """The sha256 of an arrival id: the dedupe record's key part and a member chunk's sort key
    (fixed length, whatever the id)."""
    return hashlib.sha256(text.encode()).hexdigest()


def lane_of(arrival_id: str, lanes: int) -> int:
    """The lane of ``lanes`` an arrival belongs to: a stable hash of its id, the same in every
    container."""
    return int(digest(arrival_id)[:8], 16) % lanes


def _member_row(a: Arrival) -> str:
    return json.dumps([a.id, a.size, a.at, dict(a.data)], separators=(",", ":"), allow_nan=False)


def pack_members(rows: Sequence[str]) -> bytes:
    """A member chunk's stored form: the JSON rows ``[id, size, at, data]``, compressed."""
    return zlib.compress(("[" + ",".join(rows) + "]").encode(), 6)


def unpack_members(blob: bytes) -> list[list[Any]]:
    """The rows of a stored member chunk."""
    rows: list[list[Any]] = json.loads(zlib.decompress(blob))
    return rows


@dataclass(frozen=True)
class _Plan:
    """Where a lane's next request aims: batch ``seq``, whether its item exists, and a lower
    bound of its count and bytes (exact when this container wrote last)."""

    seq: int
    exists: bool = False
    count: int = 0
    bytes: int = 0
    opened_at: float | None = None


@dataclass(frozen=True)
class _Request:
    """The arrivals (queue positions) one transaction carries, and whether it seals."""

    take: int
    seals: bool


class _Moved(Exception):
    """The request learnt something (the batch moved, or some arrivals were settled): compose
    again at once."""


class _Conflict(Exception):
    """A transaction conflict: retry after a jittered backoff."""


class Membership:
    """The add path of one stream's batcher (see the module docstring). ``add`` fills
    ``results`` in place, so a caller that sees an error knows exactly which arrivals were
    added before it. Threads may share it: the plans are hints, and a thread never moves a
    lane's plan back behind a batch another thread has reached.

    ``config_version`` and ``config_name`` (feeds: :mod:`patterns.feeds`) are written on a
    batch by the request that seals it, as more attributes of that request's batch update: no
    extra request."""

    def __init__(
        self,
        table: Table,
        stream: str,
        thresholds: Thresholds,
        lanes: int,
        config_version: int | None = None,
    ) -> None:
        self._t = table
        self.stream = stream
        self.thresholds = thresholds
        self.lanes = lanes
        self.config_version = config_version
        self.config_name: str | None = None
        self._plans: dict[int, _Plan] = {}

    def batch_key(self, lane: int, seq: int) -> dict[str, str]:
        return keys.batch(self.stream, lane, seq).item()

    def index(self, word: str, at: float, batch_id_: str) -> dict[str, str]:
        return keys.batch_index(word, self.stream, at, batch_id_).index_item()

    def latest(self, lane: int) -> Batch | None:
        """The lane's newest batch (one consistent ``Query`` of one item), or None."""
        item = self._t.query_one(
            Attr("pk").eq(self.batch_key(lane, 0)["pk"]), consistent=True, reverse=True
        )
        return batch_from_item(item) if item else None

    def _discover(self, lane: int) -> _Plan:
        b = self.latest(lane)
        if b is None:
            return _Plan(0)
        if b.state != BatchState.OPEN:
            return _Plan(b.seq + 1)
        return _Plan(b.seq, True, b.count, b.bytes, b.opened_at)

    # adding

    def add(
        self,
        arrivals: Sequence[Arrival],
        results: list[AddResult | None],
        context: LambdaContext | None,
    ) -> None:
        """Add every arrival exactly once, filling ``results`` (aligned with ``arrivals``) as
        each request commits. A repeated id inside ``arrivals`` is a duplicate of its first."""
        first: dict[str, int] = {}
        by_lane: dict[int, list[int]] = {}
        for i, a in enumerate(arrivals):
            if a.id in first:
                continue
            first[a.id] = i
            by_lane.setdefault(lane_of(a.id, self.lanes), []).append(i)
        nonce = clock.token_hex(8)
        # Each member's stored row, encoded once: the request's size and its chunk both use it.
        rows = [_member_row(a) for a in arrivals]
        requests = 0
        for lane, positions in by_lane.items():
            queue = [(arrivals[i], i) for i in positions]
            while queue:
                if requests:
                    crash_point("between-requests")
                self._t.retry(
                    partial(self._attempt, lane, queue, results, rows, nonce),
                    retry_on=(_Moved, _Conflict),
                    immediate=(_Moved,),
                    what=f"batcher {self.stream!r} add",
                    attempts=60,
                    context=context,
                    operation="batcher.add",
                )
                requests += 1
        for i, a in enumerate(arrivals):
            j = first[a.id]
            if j != i and (done := results[j]) is not None:
                results[i] = AddResult(done.batch_id, True, None)

    def _compose(
        self, queue: Sequence[tuple[Arrival, int]], rows: Sequence[str], plan: _Plan
    ) -> _Request:
        """The next request: the longest prefix of the queue that fits one transaction, cut
        at the first arrival that reaches a threshold by the plan's count and bytes."""
        th = self.thresholds
        count, total, raw = plan.count, plan.bytes, 0
        for k, (a, i) in enumerate(queue[:MAX_ARRIVALS_PER_REQUEST], 1):
            raw += len(rows[i])
            if k > 1 and raw > _MAX_CHUNK_JSON:
                return _Request(k - 1, False)
            total += a.size
            if (th.count is not None and count + k >= th.count) or (
                th.bytes is not None and total >= th.bytes
            ):
                return _Request(k, True)
        return _Request(min(len(queue), MAX_ARRIVALS_PER_REQUEST), False)

    def _attempt(
        self,
        lane: int,
        queue: list[tuple[Arrival, int]],
        results: list[AddResult | None],
        rows: Sequence[str],
        nonce: str,
    ) -> None:
        plan = self._plans.get(lane) or self._discover(lane)
        self._plans[lane] = plan
        request = self._compose(queue, rows, plan)
        group = queue[: request.take]
        now = clock.now()
        sealed = self._sealed(group, lane, plan, now) if request.seals else None
        chunk = pack_members([rows[i] for _, i in group])
        tx, dedupe, batch_action = self._transaction(group, chunk, lane, plan, sealed, nonce, now)
        try:
            tx.commit()
        except TransactionCanceled as e:
            self._after_cancel(e, dedupe, batch_action, lane, plan, queue, results, nonce)
            return
        bid = batch_id(self.stream, lane, plan.seq)
        for pos, (_, i) in enumerate(group):
            results[i] = AddResult(bid, False, sealed if pos == len(group) - 1 else None)
        del queue[: request.take]
        if sealed is not None:
            self._replan(lane, plan, _Plan(plan.seq + 1))
        else:
            grown = replace(
                plan,
                exists=True,
                count=plan.count + len(group),
                bytes=plan.bytes + sum(a.size for a, _ in group),
                opened_at=plan.opened_at if plan.exists else now,
            )
            self._replan(lane, plan, grown)

    def _transaction(
        self,
        group: Sequence[tuple[Arrival, int]],
        chunk: bytes,
        lane: int,
        plan: _Plan,
        sealed: Batch | None,
        nonce: str,
        now: float,
    ) -> tuple[Transaction, list[int], int]:
        bid = batch_id(self.stream, lane, plan.seq)
        update, condition = self._batch_write(group, lane, plan, sealed, now)
        tx = Transaction(self._t)
        dedupe = []
        for pos, (a, _) in enumerate(group):
            record: dict[str, Any] = {
                **keys.arrival(self.stream, digest(a.id)).item(),
                "batch": bid,
                "nonce": nonce,
                "at": now,
            }
            if sealed is not None and pos == len(group) - 1:
                # The arrival record of the sealer describes the batch it sealed, so a retry
                # that meets this write (ambiguous) reports the seal without a read.
                record["sealed"] = True
                record["sealed_batch"] = {
                    "count": sealed.count,
                    "bytes": sealed.bytes,
                    "opened_at": sealed.opened_at,
                    "reason": sealed.seal_reason,
                }
            dedupe.append(tx.put_if_absent(record))
        tx.put(
            {
                "pk": keys.member_partition(self.stream, lane, plan.seq),
                "sk": digest(group[0][0].id),
                "m": chunk,
                "n": len(group),
            }
        )
        batch_action = tx.update(
            self.batch_key(lane, plan.seq), update, condition=condition, return_old=True
        )
        return tx, dedupe, batch_action

    def _sealed(
        self, group: Sequence[tuple[Arrival, int]], lane: int, plan: _Plan, now: float
    ) -> Batch:
        opened_at = plan.opened_at if plan.exists and plan.opened_at is not None else now
        return sealed_batch(
            self.stream,
            lane,
            plan.seq,
            count=plan.count + len(group),
            total=plan.bytes + sum(a.size for a, _ in group),
            opened_at=opened_at,
            thresholds=self.thresholds,
            now=now,
            config_version=self.config_version,
            config_name=self.config_name,
        )

    def _batch_write(
        self,
        group: Sequence[tuple[Arrival, int]],
        lane: int,
        plan: _Plan,
        sealed: Batch | None,
        now: float,
    ) -> tuple[Update, Condition]:
        """The batch's update for this request and its condition: open and below every
        threshold after it, or (when the request seals) exactly as the plan expects."""
        n, size = len(group), sum(a.size for a, _ in group)
        update = (
            Update()
            .add("count", n)
            .add("bytes", size)
            .set_default("opened_at", now)
            .set_all({"stream": self.stream, "lane": lane, "seq": plan.seq})
        )
        state, count, total = Attr("state"), Attr("count"), Attr("bytes")
        if sealed is None:
            th = self.thresholds
            condition = state.not_exists() | state.eq(BatchState.OPEN)
            if th.count is not None:
                condition = condition & (count.not_exists() | count.lt(th.count - n))
            if th.bytes is not None:
                condition = condition & (total.not_exists() | total.lt(th.bytes - size))
            return update.set_default("state", BatchState.OPEN), condition
        update.set_all(
            {
                "state": BatchState.SEALED,
                "sealed_at": now,
                "seal_reason": sealed.seal_reason,
                **self.index("pending", now, sealed.id),
                **seal_tag(sealed.config_version, sealed.config_name),
            }
        )
        if not plan.exists:
            return update, state.not_exists()
        return update, state.eq(BatchState.OPEN) & count.eq(plan.count) & total.eq(plan.bytes)

    def _after_cancel(
        self,
        e: TransactionCanceled,
        dedupe: list[int],
        batch_action: int,
        lane: int,
        plan: _Plan,
        queue: list[tuple[Arrival, int]],
        results: list[AddResult | None],
        nonce: str,
    ) -> None:
        """Settle what the cancellation reasons tell: arrivals already stored (duplicates, or
        this call's own earlier write) leave the queue; a batch that was not as planned
        replaces the plan. Returns when arrivals were settled (progress), raises
        :class:`_Moved` to compose again, :class:`_Conflict` to back off."""
        settled = {
            pos
            for pos, action in enumerate(dedupe)
            if e.reasons[action].code == "ConditionalCheckFailed"
        }
        for pos in sorted(settled):
            old = dict(e.reasons[dedupe[pos]].item or {})
            results[queue[pos][1]] = self._already_added(old, nonce)
        if e.reasons[batch_action].code == "ConditionalCheckFailed":
            self._learn(lane, plan, e.reasons[batch_action].item)
        elif any(own_write(e.reasons[dedupe[pos]].item, nonce) for pos in settled):
            # An earlier attempt of this call committed: the batch moved by its write.
            self._replan(lane, plan, None)
        elif not settled:
            if e.conflict:
                raise _Conflict() from e
            raise e
        for pos in sorted(settled, reverse=True):
            del queue[pos]
        if not settled:
            raise _Moved() from e

    def _replan(self, lane: int, used: _Plan, new: _Plan | None) -> None:
        """Replace the plan ``used`` by ``new`` (None: look the open batch up again), unless
        another thread sharing this object has already moved the lane past it."""
        current = self._plans.get(lane)
        if current is not None and current.seq > used.seq:
            return
        if new is None:
            self._plans.pop(lane, None)
        else:
            self._plans[lane] = new

    def _learn(self, lane: int, used: _Plan, current: Mapping[str, Any] | None) -> None:
        """Replace the plan with the batch item a cancelled request returned (``ALL_OLD``)."""
        if not current or current.get("state") is None:
            self._replan(lane, used, _Plan(used.seq))
        elif current["state"] != BatchState.OPEN:
            # A sealed batch's successor is the only one that can be open next: aim there at
            # once, as a lower bound (absent, empty). The write's condition checks what the
            # plan assumes, so a successor that exists or was sealed too only costs a retry.
            self._replan(lane, used, _Plan(used.seq + 1))
        else:
            learnt = _Plan(
                used.seq,
                True,
                int(current.get("count", 0)),
                int(current.get("bytes", 0)),
                float(current.get("opened_at", clock.now())),
            )
            self._replan(lane, used, learnt)

    def _already_added(self, old: dict[str, Any], nonce: str) -> AddResult:
        """The arrival's dedupe record exists: a duplicate, or this call's own earlier attempt
        (applied, its response lost), which is reported as it happened."""
        bid = old["batch"]
        if not own_write(old, nonce):
            return AddResult(bid, True, None)
        if not old.get("sealed"):
            return AddResult(bid, False, None)
        info = old["sealed_batch"]
        stream, lane, seq = parse_batch_id(bid)
        batch = Batch(
            stream,
            lane,
            seq,
            BatchState.SEALED,
            int(info["count"]),
            int(info["bytes"]),
            float(info["opened_at"]),
            sealed_at=float(old["at"]),
            seal_reason=info["reason"],
        )
        return AddResult(bid, False, batch)
