"""What arrives: an :class:`Arrival` (a file, usually) and a :class:`Member`, an arrival as recorded
in its batch.

Plain, validated, immutable values, with no I/O: an arrival validates itself when built, so a bad
one never reaches a write. The dataclasses are frozen but not slotted: ``slots=True`` builds each
class twice, and this module is in every handler's cold start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stateless_state import InvalidArgument, domain

__all__ = ["MAX_ARRIVAL_ID_BYTES", "MAX_ARRIVAL_SIZE", "MAX_DATA_BYTES", "Arrival", "Member"]

MAX_ARRIVAL_ID_BYTES = 4096
"""The longest arrival id, in bytes of UTF-8."""
MAX_ARRIVAL_SIZE = 2**63 - 1
"""The largest ``Arrival.size``, in bytes."""
MAX_DATA_BYTES = 65_536
"""The largest ``Arrival.data``, in bytes of JSON."""


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
