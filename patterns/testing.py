"""Test helpers for the patterns: a local S3 server, S3 notification builders, and the batch
invariants (:class:`BatchHistory`, :func:`check_batches`) a test of the batcher's lifecycle
asserts, whatever ran it (threads, processes, the deterministic simulation).

``LocalS3`` runs moto's S3 server on a free loopback port (moto is a test dependency: install the
``dev`` extra). It serves worker processes too, which an in-process mock cannot. moto is not
thread-safe for races; here it only stores and serves objects.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from stateless_state.testing.service import LocalService, local_client

from .batcher.arrivals import Arrival
from .batcher.batches import AddResult, Batch, BatchState

if TYPE_CHECKING:
    from .batcher import Batcher

__all__ = [
    "BatchHistory",
    "LocalS3",
    "check_batches",
    "check_commits",
    "direct",
    "eventbridge",
    "put_object",
    "refuse_long_keys",
    "s3_record",
    "sns",
    "sqs",
]


class LocalS3(LocalService):
    """moto's S3 server on ``127.0.0.1:<free port>``; a context manager."""

    def __init__(self) -> None:
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> LocalS3:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """An S3 client bound to this server, with dummy credentials."""
        return local_client("s3", self.endpoint_url)


def refuse_long_keys(s3: Any) -> Any:
    """Make ``s3`` (a boto3 S3 client) refuse keys over 1,024 UTF-8 bytes as S3 does
    (``KeyTooLongError``, 400) before sending anything: moto accepts them. Returns ``s3``."""
    from botocore.exceptions import ClientError

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = params.get("Key")
        if isinstance(key, str) and len(key.encode()) > 1024:
            raise ClientError(
                {
                    "Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )

    s3.meta.events.register("provide-client-params.s3.*", check)
    return s3


def s3_record(
    bucket: str,
    key: str,
    size: int,
    *,
    etag: str = "e1",
    sequencer: str = "0A",
    version: str | None = None,
    event_time: str = "2026-11-23T10:00:00.000Z",
    name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    """One S3 notification record, its key URL-encoded as S3 does."""
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag,
        "sequencer": sequencer,
    }
    if version:
        obj["versionId"] = version
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": event_time,
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }


def put_object(
    s3: Any, bucket: str, key: str, body: bytes, *, sequencer: str = "0A"
) -> dict[str, Any]:
    """Write an object and return the notification S3 sends for it: its real ETag, and its
    version id in a versioned bucket (what the pipeline checks before it loads the object)."""
    r = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3_record(
        bucket,
        key,
        len(body),
        etag=r["ETag"].strip('"'),
        version=r.get("VersionId"),
        sequencer=sequencer,
    )


def direct(*records: dict[str, Any]) -> dict[str, Any]:
    """A direct S3 → Lambda event."""
    return {"Records": list(records)}


def sns(*records: dict[str, Any]) -> dict[str, Any]:
    """S3 → SNS → Lambda: one SNS record per S3 record."""
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(direct(r))}} for r in records
        ]
    }


def sqs(*records: dict[str, Any], via_sns: bool = False) -> dict[str, Any]:
    """S3 → SQS (optionally → SNS → SQS) → Lambda: one message per S3 record."""

    def body(r: dict[str, Any]) -> str:
        inner = json.dumps(direct(r))
        if via_sns:
            return json.dumps({"Type": "Notification", "Message": inner})
        return inner

    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m{i}", "body": body(r)}
            for i, r in enumerate(records)
        ]
    }


def eventbridge(
    bucket: str, key: str, size: int, *, etag: str = "e1", sequencer: str = "0A"
) -> dict[str, Any]:
    """An EventBridge "Object Created" event of one object."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-11-23T10:00:00Z",
        "detail": {
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": sequencer},
        },
    }


def install_crash_points(rate: float, log_path: str, seed: int) -> None:
    """Make this process SIGKILL itself, with probability ``rate`` at each of the pipeline's
    crash points (:mod:`patterns.hooks`), writing the point's name to ``log_path`` first. For
    crash-torture runs only."""
    import os
    import random
    import signal

    from .hooks import CrashPoint, set_crash_hook

    rng = random.Random(seed)

    def maybe_crash(point: CrashPoint) -> None:
        if rng.random() < rate:
            with open(log_path, "a") as log:  # noqa: PTH123 - one line, then the process dies
                log.write(point + "\n")
            os.kill(os.getpid(), signal.SIGKILL)

    set_crash_hook(maybe_crash)


def s3_events() -> Any:
    """A hypothesis strategy of S3 "object created" events from the whole input domain, in every
    envelope shape (direct, SNS, SQS, SNS inside SQS, EventBridge): hostile keys (spaces, ``+``,
    percent-encoding, ``#``, control characters, unicode, 1,024-byte keys), event times from
    decades ago to minutes ahead, sizes up to S3's 5 TiB, version ids real, absent or ``"null"``.
    Each example is ``(event, [(bucket, key), ...])``: the event and the objects it names, so a
    test can check what its handler made of it."""
    from datetime import UTC, datetime

    from hypothesis import strategies as st

    from stateless_state.testing.strategies import hostile_names, instants

    keys = st.one_of(
        hostile_names(max_size=40).filter(lambda k: k.strip() != ""),
        st.sampled_from(["a b+c.json", "x%2By.json", "日本/ファイル.gz", "q?x=1&y=2#f"]),
        st.just("k" * 1024),
    )
    objects = st.lists(
        st.tuples(st.sampled_from(["bucket-1", "b.2"]), keys), min_size=1, max_size=4
    )
    times = instants(years_back=30, minutes_ahead=10).map(
        lambda t: datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
    sizes = st.integers(0, 5 * 2**40)
    versions = st.sampled_from([None, "null", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"])

    def build(
        envelope: str, objs: list[tuple[str, str]], when: str, size: int, version: str | None
    ) -> tuple[dict[str, Any], list[Any]]:
        if envelope == "eventbridge":
            bucket, key = objs[0]
            event = eventbridge(bucket, key, size)
            event["time"] = when
            return event, [objs[0]]
        records = [
            s3_record(b, k, size, etag=f"e{i}", event_time=when, version=version)
            for i, (b, k) in enumerate(objs)
        ]
        wrapper = {"direct": direct, "sns": sns, "sqs": sqs}
        if envelope == "sqs+sns":
            return sqs(*records, via_sns=True), objs
        return wrapper[envelope](*records), objs

    envelopes = st.sampled_from(["direct", "sns", "sqs", "sqs+sns", "eventbridge"])
    return st.builds(build, envelopes, objects, times, sizes, versions)


def arrival_streams(n: int = 50) -> Any:
    """A hypothesis strategy of arrival-id streams with duplicates, reordered: lists of ids
    where some ids repeat, in any order."""
    from hypothesis import strategies as st

    ids = st.lists(st.integers(0, n), min_size=1, max_size=n).map(
        lambda xs: [f"s3://bucket/obj-{x}#etag=e" for x in xs]
    )
    return ids.flatmap(st.permutations)


@dataclass
class BatchHistory:
    """What a stream's callers were told, for :func:`check_batches`: the arrivals handed to the
    batcher, each add's answer, the sealed batches handed out (by an add or by ``seal_due``), what
    each operator's abandon answered and each load reported.

    Fill it with :meth:`watch` (every call through a watched :class:`~patterns.batcher.Batcher`
    is recorded as its caller got it), by hand (:meth:`told`, :meth:`handed`), or both; then say
    which arrivals must be members (:attr:`delivered`: those whose delivery completed)."""

    attempted: set[str] = field(default_factory=set)
    """Every arrival id given to an add: nothing else may become a member."""
    delivered: set[str] = field(default_factory=set)
    """Arrival ids whose delivery completed: each must be a member of exactly one batch."""
    adds: list[tuple[str, AddResult]] = field(default_factory=list)
    """Each add's answer, as (arrival id, result), in the order the callers got them."""
    sealed: list[Batch | str] = field(default_factory=list)
    """Every sealed batch handed to a caller: the batch as told, or only its id when that is
    all the caller passed on (from another process, say)."""
    abandons: list[tuple[str, str]] = field(default_factory=list)
    """(batch id, what :func:`~patterns.batcher.abandon.abandon_batch` answered)."""
    loads: list[tuple[str, str]] = field(default_factory=list)
    """(batch id, what :meth:`~patterns.pipeline.S3ToRedshift.load` answered)."""

    def told(self, arrival_id: str, result: AddResult) -> None:
        """Record one add's answer (and the batch it sealed, if it did)."""
        self.attempted.add(arrival_id)
        self.adds.append((arrival_id, result))
        if result.sealed is not None:
            self.sealed.append(result.sealed)

    def handed(self, batch: Batch | str) -> None:
        """Record a sealed batch handed to a caller by something other than an add."""
        self.sealed.append(batch)

    def watch(self, batcher: Batcher) -> Batcher:
        """Record every ``add``, ``add_many`` and ``seal_due`` answer of ``batcher`` (this one
        instance; the partial answers of an :class:`~patterns.batcher.IncompleteAdd` too) as its
        caller gets it. Returns ``batcher``."""
        from .batcher import IncompleteAdd

        add, add_many, seal_due = batcher.add, batcher.add_many, batcher.seal_due

        def watched_add(arrival: Arrival, **kwargs: Any) -> AddResult:
            self.attempted.add(arrival.id)
            result = add(arrival, **kwargs)
            self.told(arrival.id, result)
            return result

        def watched_add_many(arrivals: Sequence[Arrival], **kwargs: Any) -> list[AddResult]:
            arrivals = list(arrivals)
            self.attempted.update(a.id for a in arrivals)
            try:
                results = add_many(arrivals, **kwargs)
            except IncompleteAdd as e:
                for a, r in zip(arrivals, e.results, strict=True):
                    if r is not None:
                        self.told(a.id, r)
                raise
            for a, r in zip(arrivals, results, strict=True):
                self.told(a.id, r)
            return results

        def watched_seal_due(*args: Any, **kwargs: Any) -> list[Batch]:
            batches = seal_due(*args, **kwargs)
            self.sealed.extend(batches)
            return batches

        # Instance attributes shadow the methods for this batcher only.
        batcher.add = watched_add  # type: ignore[method-assign]
        batcher.add_many = watched_add_many  # type: ignore[method-assign]
        batcher.seal_due = watched_seal_due  # type: ignore[method-assign]
        return batcher


def check_batches(
    batcher: Batcher,
    history: BatchHistory,
    *,
    commits: Mapping[str, int] | None = None,
    complete: bool = True,
) -> None:
    """Assert the batcher's guarantees over what ``history`` recorded and what is stored in
    ``batcher``'s stream (strongly consistent reads), and, given ``commits`` (batch id → how many
    times the warehouse committed its rows; absent means never), the loads' guarantees:

    * every delivered arrival is a member of exactly one batch, no arrival that was not given
      to an add is a member, and each batch's count and bytes are the sum over its members;
    * each arrival was added (not a duplicate) at most once, and every add's answer names the
      batch the arrival is in;
    * no batch holds more members than the count threshold; one sealed by count holds exactly
      that many; an open one fewer; at most one batch per lane is open;
    * every sealed batch handed to a caller is handed out once and equals the one stored
      (count, bytes, reason, when it was sealed);
    * with ``complete`` (no caller died between a write and its answer: no crash, no timeout),
      every delivered arrival was answered "added" exactly once, and every batch that was
      sealed was handed out as sealed;
    * with ``commits``, what :func:`check_commits` asserts.

    Raises ``AssertionError`` naming the first broken invariant and the batch or arrival."""
    stored = {b.id: b for b in batcher.batches()}
    where = _membership(batcher, stored, history)
    _answers(history, where, complete=complete)
    _thresholds(batcher.thresholds.count, stored)
    _handed_out(history, stored, complete=complete)
    if commits is not None:
        check_commits(stored.values(), history, commits, complete=complete)


def _membership(
    batcher: Batcher, stored: Mapping[str, Batch], history: BatchHistory
) -> dict[str, list[str]]:
    """Arrival id → the batches it is a member of, after checking each is in exactly one."""
    where: dict[str, list[str]] = {}
    for bid, b in stored.items():
        ms = batcher.members(bid)
        for m in ms:
            where.setdefault(m.id, []).append(bid)
        assert b.count == len(ms), f"{bid}: count {b.count} != {len(ms)} members"
        assert b.bytes == sum(m.size for m in ms), f"{bid}: bytes differ from its members'"
    missing = history.delivered - set(where)
    assert not missing, f"delivered arrivals in no batch: {sorted(missing)}"
    phantom = set(where) - history.attempted - history.delivered
    assert not phantom, f"members no add was given: {sorted(phantom)}"
    twice = {a: bids for a, bids in where.items() if len(bids) > 1}
    assert not twice, f"arrivals in more than one batch: {twice}"
    return where


def _answers(history: BatchHistory, where: Mapping[str, list[str]], *, complete: bool) -> None:
    firsts = Counter(a for a, r in history.adds if not r.duplicate)
    again = {a: n for a, n in firsts.items() if n > 1}
    assert not again, f"arrivals added (not as duplicates) more than once: {again}"
    if complete:
        unanswered = (history.delivered | {a for a, _ in history.adds}) - set(firsts)
        assert not unanswered, f"arrivals never answered 'added': {sorted(unanswered)}"
    for a, r in history.adds:
        assert where.get(a) == [r.batch_id], f"{a} told {r.batch_id} but is in {where.get(a)}"


def _thresholds(limit: int | None, stored: Mapping[str, Batch]) -> None:
    open_lanes = Counter(b.lane for b in stored.values() if b.state == BatchState.OPEN)
    crowded = {lane: n for lane, n in open_lanes.items() if n > 1}
    assert not crowded, f"lanes with more than one open batch: {crowded}"
    if limit is None:
        return
    for bid, b in stored.items():
        assert b.count <= limit, f"{bid}: {b.count} members, beyond the count threshold {limit}"
        if b.state == BatchState.OPEN:
            assert b.count < limit, f"{bid}: open at {b.count} members, threshold {limit}"
        elif b.seal_reason == "count":
            assert b.count == limit, f"{bid}: sealed by count at {b.count}, not {limit}"


def _handed_out(history: BatchHistory, stored: Mapping[str, Batch], *, complete: bool) -> None:
    told_ids = [s if isinstance(s, str) else s.id for s in history.sealed]
    dup = [bid for bid, n in Counter(told_ids).items() if n > 1]
    assert not dup, f"sealed batches handed out more than once: {dup}"
    for s in history.sealed:
        kept = stored.get(s if isinstance(s, str) else s.id)
        assert kept is not None, f"{s} handed out as sealed but not stored"
        assert kept.state != BatchState.OPEN, f"{kept.id} handed out as sealed but open"
        if isinstance(s, str):
            continue
        told = (s.count, s.bytes, s.seal_reason, s.sealed_at)
        have = (kept.count, kept.bytes, kept.seal_reason, kept.sealed_at)
        assert told == have, (
            f"{s.id}: the caller was told (count, bytes, reason, sealed_at) {told}, "
            f"the batch stored is {have}"
        )
    if complete:
        # an operator may abandon a batch while it is open: never sealed, never handed out
        closed = {bid for bid, b in stored.items() if b.seal_reason is not None}
        untold = closed - set(told_ids)
        assert not untold, f"sealed batches handed to no caller: {sorted(untold)}"


def check_commits(
    batches: Iterable[Batch],
    history: BatchHistory,
    commits: Mapping[str, int],
    *,
    complete: bool = True,
) -> None:
    """Assert the loads' guarantees over the stored ``batches``, ``history`` and ``commits``
    (batch id → how many times the warehouse committed its rows; absent means never): each
    batch committed at most once; one that an abandon answered ``abandoned`` for never, and
    with ``complete`` (no caller died mid-call) one stored ``abandoned`` never either; one
    stored ``loaded``, or that a load answered ``loaded`` for, exactly once. Raises
    ``AssertionError`` naming the batch.

    Why a stored ``abandoned`` needs ``complete``: an abandon writes DynamoDB first and then
    the warehouse, and when the warehouse shows a load committed first it marks the batch
    ``loaded``; an operator who dies in between leaves it ``abandoned`` over committed rows
    until the abandon is run again (it is safe to repeat), without having answered anything."""
    for bid, n in commits.items():
        assert n <= 1, f"{bid}: committed {n} times"
    stored = list(batches)
    abandoned = {b.id for b in stored if complete and b.state == BatchState.ABANDONED}
    abandoned |= {bid for bid, said in history.abandons if said == "abandoned"}
    for bid in sorted(abandoned):
        assert commits.get(bid, 0) == 0, f"{bid}: abandoned, yet committed"
    loaded = {b.id for b in stored if b.state == BatchState.LOADED}
    loaded |= {bid for bid, said in history.loads if said == "loaded"}
    for bid in sorted(loaded):
        assert commits.get(bid, 0) == 1, f"{bid}: loaded, committed {commits.get(bid, 0)} times"
