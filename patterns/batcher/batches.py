"""What a batch is: its states, the thresholds that seal it, a :class:`Batch` as read from its
item, what an add reports (:class:`AddResult`), and batch ids, ``<stream>/<lane>/<seq>``.

Plain, validated, immutable values, with no I/O.

The dataclasses are frozen but not slotted: ``slots=True`` builds each class twice, and this
module is in every handler's cold start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from stateless_state import InvalidArgument, domain

from .arrivals import MAX_ARRIVAL_SIZE

__all__ = [
    "AddResult",
    "Batch",
    "BatchState",
    "Thresholds",
    "batch_from_item",
    "batch_id",
    "parse_batch_id",
]


class BatchState(StrEnum):
    """The states of a batch: open → sealed → loading → loaded | failed (sealed again to retry);
    ``abandoned`` by an operator. Stored as their string values."""

    OPEN = "open"
    SEALED = "sealed"
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"
    ABANDONED = "abandoned"


_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class Thresholds:
    """When a batch seals: at ``count`` members, at ``bytes`` total size, or ``age`` after it
    opened (age is enforced by :meth:`Batcher.seal_due`, driven by a schedule). ``None`` turns a
    threshold off; at least one must be on."""

    count: int | None = 1000
    bytes: int | None = 1 << 30
    age: timedelta | float | None = timedelta(minutes=5)

    def __post_init__(self) -> None:
        for name in ("count", "bytes"):
            v = getattr(self, name)
            if v is not None:
                domain.integer(v, f"Thresholds.{name}", minimum=1, maximum=MAX_ARRIVAL_SIZE)
        if self.age is not None:
            domain.duration(self.age, "Thresholds.age")
        if self.count is None and self.bytes is None and self.age is None:
            raise InvalidArgument("at least one threshold (count, bytes or age) must be set")

    @property
    def age_seconds(self) -> float | None:
        return None if self.age is None else domain.duration(self.age, "Thresholds.age")


@dataclass(frozen=True)
class Batch:
    """A batch as stored. ``id`` is ``<stream>/<lane>/<seq>``."""

    stream: str
    lane: int
    seq: int
    state: BatchState
    count: int
    bytes: int
    opened_at: float
    sealed_at: float | None = None
    seal_reason: str | None = None
    attempts: int = 0
    fence: int = 0
    lease_until: float | None = None
    next_attempt_at: float | None = None
    statement_id: str | None = None
    error: str | None = None
    loaded_at: float | None = None
    history: tuple[Mapping[str, Any], ...] = ()
    superseded: tuple[str, ...] = ()
    """Members whose content was gone from S3 when the batch was loaded (rewritten in an
    unversioned bucket, or a deleted version): not loaded, by design; see
    :mod:`patterns.batcher.object_pins`. Bounded
    (:data:`patterns.batcher.load_ticket.SUPERSEDED_IDS_BUDGET`): the first ones, when there are
    many; ``superseded_count`` counts them all."""
    superseded_count: int = 0
    config_version: int | None = None
    """The version of the feeds' configuration (:mod:`patterns.feeds`) the batch was sealed
    under, written by the seal itself; None outside feeds (and while the batch is open). A
    batch sealed outside feeds gets one when a feed's loader first takes it
    (:meth:`patterns.batcher.Batcher.record_config_version`)."""
    config_name: str | None = None
    """The feeds' configuration whose version ``config_version`` is, recorded with it by the
    seal (or by a feed's loader taking a batch sealed outside feeds); None otherwise."""

    @property
    def id(self) -> str:
        return batch_id(self.stream, self.lane, self.seq)


@dataclass(frozen=True)
class AddResult:
    """``batch_id`` the arrival is (or already was) a member of; ``duplicate`` when it had
    arrived before (nothing was written); ``sealed`` the batch this add sealed, for exactly one
    caller per count- or bytes-sealed batch."""

    batch_id: str
    duplicate: bool
    sealed: Batch | None = None


def batch_id(stream: str, lane: int, seq: int) -> str:
    """A batch's id, ``<stream>/<lane>/<seq, 12 digits>``, as the CLI shows and takes it."""
    return f"{stream}/{lane}/{seq:012d}"


def parse_batch_id(value: str) -> tuple[str, int, int]:
    """Split a batch id into (stream, lane, seq); raises InvalidArgument unless ``value`` is
    spelt exactly as :func:`batch_id` writes it.

    One batch, one spelling: ``int()`` alone would also read ``"00"``, ``"+0"``, ``" 0"``,
    ``"0_0"`` and other scripts' digits (``"\u0660"``), so another spelling would find the
    batch in DynamoDB while the warehouse ledger, keyed by the id as written, took it for
    another batch (an abandon recorded there under it would stop no load)."""
    parts = value.rsplit("/", 2) if isinstance(value, str) else []
    if len(parts) == 3 and parts[0] and all(_DIGITS.fullmatch(p) for p in parts[1:]):
        stream, lane, seq = parts[0], int(parts[1]), int(parts[2])
        if batch_id(stream, lane, seq) == value:
            return stream, lane, seq
    raise InvalidArgument(
        f"{value!r} is not a batch id: expected <stream>/<lane>/<seq> as the batcher writes "
        "it, the lane without leading zeros and seq as 12 digits, in ASCII digits "
        "(e.g. 'clicks/0/000000000042')"
    )


def batch_from_item(item: Mapping[str, Any]) -> Batch:
    """A batch item as stored, as a :class:`Batch`."""

    def opt(name: str) -> Any:
        return item.get(name)

    return Batch(
        stream=item["stream"],
        lane=int(item["lane"]),
        seq=int(item["seq"]),
        state=BatchState(item["state"]),
        count=int(item.get("count", 0)),
        bytes=int(item.get("bytes", 0)),
        opened_at=float(item.get("opened_at", 0)),
        sealed_at=opt("sealed_at"),
        seal_reason=opt("seal_reason"),
        attempts=int(item.get("attempts", 0)),
        fence=int(item.get("fence", 0)),
        lease_until=opt("lease_until"),
        next_attempt_at=opt("next_attempt_at"),
        statement_id=opt("statement_id"),
        error=opt("last_error"),
        loaded_at=opt("loaded_at"),
        history=tuple(item.get("history", ())),
        superseded=tuple(item.get("superseded", ())),
        superseded_count=int(item.get("superseded_count", len(item.get("superseded", ())))),
        config_version=None if item.get("config_version") is None else int(item["config_version"]),
        config_name=opt("config_name"),
    )
