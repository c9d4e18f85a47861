"""The error hierarchy.

Every error the library raises on purpose derives from :class:`StatelessStateError`, so a handler
can catch the library's failures without catching botocore's. Each subclass is narrow: it names one
situation and its message says what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import clock

__all__ = [
    "AccessDenied",
    "AlreadyInProgress",
    "CancellationReason",
    "ConditionFailed",
    "ConflictRetriesExhausted",
    "CorruptState",
    "InvalidArgument",
    "ItemTooLarge",
    "LeaseLost",
    "LeaseUnavailable",
    "LimitExceeded",
    "MalformedEvent",
    "NotSerializable",
    "OtherTableNotFound",
    "PayloadMismatch",
    "StateConflict",
    "StatelessStateError",
    "TableNotFound",
    "TransactionCanceled",
    "VersionConflict",
    "WriteRefused",
]


class StatelessStateError(Exception):
    """Base class of every error raised by stateless_state."""


class InvalidArgument(StatelessStateError, ValueError):
    """An argument is out of range or of the wrong type; nothing was written."""


class TableNotFound(StatelessStateError):
    """The DynamoDB table does not exist in the account, region or endpoint in use."""

    def __init__(self, table_name: str, endpoint: str | None = None) -> None:
        where = f" at {endpoint}" if endpoint else ""
        super().__init__(
            f"DynamoDB table {table_name!r} does not exist{where}. Create it once, outside your "
            f"handlers: `stateless-state init --table {table_name}` (or, with "
            "--print-cloudformation, a resource for your template), the SAM template, or "
            f"Store({table_name!r}).create_table() in a setup script. And check that AWS_REGION "
            "/ AWS_ENDPOINT_URL_DYNAMODB point where you expect."
        )
        self.table_name = table_name


class OtherTableNotFound(TableNotFound):
    """A table named by one of your own writes (``also=``, ``Held.write``) does not exist; the
    state table is fine. Nothing was written."""

    def __init__(
        self, table_name: str, entries: Sequence[str], endpoint: str | None = None
    ) -> None:
        where = f" at {endpoint}" if endpoint else ""
        StatelessStateError.__init__(
            self,
            f"DynamoDB table {table_name!r}, named by {', '.join(entries)}, does not exist{where}; "
            "nothing was written. Create that table (or fix the TableName in those writes), and "
            "check that AWS_REGION / AWS_ENDPOINT_URL_DYNAMODB point where you expect.",
        )
        self.table_name = table_name
        self.entries = tuple(entries)


class WriteRefused(InvalidArgument):
    """DynamoDB refuses (or would refuse) a transaction as a whole because of one or more of its
    entries: two actions on one item, a key that does not match the table's key schema, an
    action on one of the library's own items, the 4 MB limit. ``entries`` names the entries at
    fault (as the caller knows them, e.g. ``extra action 2``); nothing was written."""

    def __init__(self, message: str, entries: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.entries = tuple(entries)


class ItemTooLarge(StatelessStateError):
    """An item would exceed DynamoDB's 400 KB item limit; nothing was written."""


class NotSerializable(StatelessStateError, TypeError):
    """A value cannot be stored as JSON; nothing was written."""


class LimitExceeded(StatelessStateError):
    """A counter add would take the value past its limit; nothing was applied."""

    def __init__(self, name: str, value: int, amount: int, limit: int) -> None:
        super().__init__(
            f"counter {name!r} is at {value}; adding {amount} would exceed its limit of {limit}. "
            "Nothing was applied."
        )
        self.name = name
        self.value = value
        self.amount = amount
        self.limit = limit


class VersionConflict(StatelessStateError):
    """A compare-and-set write found a different version than the one expected."""

    def __init__(self, name: str, expected: int | None, actual: int | None) -> None:
        super().__init__(
            f"versioned object {name!r}: expected version {expected}, found {actual}. "
            "Re-read with get() and retry, or use update(fn) which does that for you."
        )
        self.name = name
        self.expected = expected
        self.actual = actual


class LeaseUnavailable(StatelessStateError):
    """The lease is held by another owner and has not expired."""

    def __init__(self, name: str, owner: str | None, expires_at: float | None) -> None:
        super().__init__(
            f"lease {name!r} is held by {owner!r} until {clock.describe(expires_at)}; try again "
            "after it expires."
        )
        self.name = name
        self.owner = owner
        self.expires_at = expires_at


class LeaseLost(StatelessStateError):
    """A renew, release or fenced write found that this holder no longer owns the lease."""


class AlreadyInProgress(StatelessStateError):
    """Another invocation holds the idempotency claim for this key and its lease has not expired."""


class PayloadMismatch(StatelessStateError):
    """The same idempotency key was used with a different payload."""


class MalformedEvent(StatelessStateError):
    """An event does not have the shape the parser expects."""


class ConflictRetriesExhausted(StatelessStateError):
    """An optimistic loop or transaction kept conflicting until its attempts or time ran out."""

    def __init__(self, what: str, attempts: int, last: BaseException | None = None) -> None:
        super().__init__(f"{what}: still conflicting after {attempts} attempts")
        self.attempts = attempts
        self.last: Any = last


class AccessDenied(StatelessStateError):
    """AWS refused a request for want of a permission (HTTP 403). The message names the
    permission and the resource; grant it to the function's role. Never read as "not found"."""


class CorruptState(StatelessStateError):
    """Stored state contradicts itself (a batch whose count disagrees with its members, say):
    a bug or an edit made outside the library. Nothing more is done with it; tell an operator."""


class StateConflict(StatelessStateError):
    """The state changed under you: what a conditional write assumed no longer held (another
    writer got there first). Re-read and decide again; never retry the same write blindly."""


class ConditionFailed(StateConflict):
    """A conditional write's condition was false; nothing was written. ``old`` is the item as it
    was (DynamoDB's ``ALL_OLD`` on failure), or None when it did not exist."""

    def __init__(self, old: Mapping[str, Any] | None, what: str = "conditional write") -> None:
        super().__init__(f"{what}: the condition no longer held; nothing was written")
        self.old = dict(old) if old is not None else None


@dataclass(frozen=True)
class CancellationReason:
    """Why DynamoDB cancelled one action of a transaction: ``code`` is DynamoDB's
    (``None`` when this action was fine and another one failed, ``ConditionalCheckFailed``,
    ``TransactionConflict``, ...), ``item`` the action's item before the transaction (``ALL_OLD``,
    when the action asked for it and its condition failed)."""

    code: str
    message: str | None = None
    item: Mapping[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.code != "None"


class TransactionCanceled(StateConflict):
    """A transaction was cancelled and nothing in it was written. ``reasons[i]`` explains the
    i-th action, in the order the actions were given."""

    def __init__(self, reasons: Sequence[CancellationReason]) -> None:
        self.reasons: tuple[CancellationReason, ...] = tuple(reasons)
        super().__init__(f"transaction cancelled: {list(self.codes)}; nothing was written")

    @property
    def codes(self) -> list[str]:
        """The cancellation code of each action, aligned with the actions."""
        return [r.code for r in self.reasons]

    @property
    def old(self) -> list[dict[str, Any] | None]:
        """The ``ALL_OLD`` item of each action (None where there is none), aligned likewise."""
        return [dict(r.item) if r.item is not None else None for r in self.reasons]

    @property
    def conflict(self) -> bool:
        """True when another request raced this one: retrying (after backoff) is the answer."""
        return "TransactionConflict" in self.codes

    @property
    def condition_failed(self) -> bool:
        return "ConditionalCheckFailed" in self.codes
