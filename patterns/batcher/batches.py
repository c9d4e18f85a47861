"""What the batcher stores and hands out: arrivals, batches, their states and thresholds.

Plain, validated, immutable values, with no I/O: an :class:`Arrival` validates itself when built
(so a bad one never reaches a write), a :class:`Batch` is a batch item as read, and batch ids
are ``<stream>/<lane>/<seq>``.

The dataclasses are frozen but not slotted: ``slots=True`` builds each class twice, and this
module is in every handler's cold start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stateless_state import InvalidArgument, domain

__all__ = [
    "MAX_ARRIVAL_ID_BYTES",
    "MAX_ARRIVAL_SIZE",
    "MAX_DATA_BYTES",
    "AddResult",
    "Arrival",
    "Batch",
    "BatchState",
    "Member",
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


MAX_ARRIVAL_ID_BYTES = 4096
MAX_ARRIVAL_SIZE = 2**63 - 1
MAX_DATA_BYTES = 65_536
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
class Arrival:
    """Something that arrived: a file, usually. ``id`` identifies it globally (for S3: bucket,
    key and version or ETag, so a rewritten object is a new arrival and a redelivered event is
    not); ``size`` in bytes; ``at`` its event time (an aware datetime or epoch seconds, kept as
    epoch seconds); ``data`` what the loader needs (JSON-compatible).

    Validated when built, so a bad arrival never reaches a write: ``id`` a non-empty str of at
    most 4,096 bytes, ``size`` an int from 0 to 2**63 - 1, ``at`` an instant (years 1 to 9999),
    ``data`` a JSON object of at most 64 KiB whose numbers DynamoDB can store. Raises
    :class:`InvalidArgument` naming the field.
    """

    id: str
    size: int
    at: float | datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidArgument(f"Arrival.id must be a non-empty str, got {self.id!r}")
        try:
            id_bytes = len(self.id.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument(f"Arrival.id {self.id!r} contains a lone surrogate") from None
        if id_bytes > MAX_ARRIVAL_ID_BYTES:
            raise InvalidArgument(
                f"Arrival.id is {id_bytes} bytes; the limit is {MAX_ARRIVAL_ID_BYTES}"
            )
        domain.integer(self.size, "Arrival.size", minimum=0, maximum=MAX_ARRIVAL_SIZE)
        object.__setattr__(self, "at", domain.instant(self.at, "Arrival.at"))
        if not isinstance(self.data, Mapping):
            raise InvalidArgument(f"Arrival.data must be a mapping, got {type(self.data).__name__}")
        domain.check_storable(self.data, "Arrival.data")
        try:
            data_bytes = len(json.dumps(self.data, allow_nan=False).encode())
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"Arrival.data is not JSON-compatible ({e})") from None
        if data_bytes > MAX_DATA_BYTES:
            raise InvalidArgument(
                f"Arrival.data is {data_bytes} bytes of JSON; the limit is {MAX_DATA_BYTES} "
                "(keep what the loader needs; store the rest elsewhere)"
            )


@dataclass(frozen=True)
class Member:
    """One arrival as recorded in its batch."""

    id: str
    size: int
    at: float
    data: Mapping[str, Any]


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
    )
