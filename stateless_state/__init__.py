"""stateless_state: correct state for stateless AWS Lambda handlers, kept in DynamoDB."""

from __future__ import annotations

from . import domain, keys
from .counter import Count, Counter, ShardedCounter
from .errors import (
    AlreadyInProgress,
    CancellationReason,
    ConditionFailed,
    ConflictRetriesExhausted,
    CorruptState,
    InvalidArgument,
    ItemTooLarge,
    LeaseLost,
    LeaseUnavailable,
    LimitExceeded,
    MalformedEvent,
    NotSerializable,
    PayloadMismatch,
    StateConflict,
    StatelessStateError,
    TableNotFound,
    TransactionCanceled,
    VersionConflict,
)
from .idempotency import Claim, Idempotency, idempotent
from .lease import Held, Lease, LeaseState
from .metrics import Metrics, OperationStats
from .sessions import Session, SessionUpdate, SessionWindows, TumblingWindows
from .store import Store
from .versioned import Version, Versioned

__all__ = [
    "AlreadyInProgress",
    "CancellationReason",
    "Claim",
    "ConditionFailed",
    "ConflictRetriesExhausted",
    "CorruptState",
    "Count",
    "Counter",
    "Held",
    "Idempotency",
    "InvalidArgument",
    "ItemTooLarge",
    "Lease",
    "LeaseLost",
    "LeaseState",
    "LeaseUnavailable",
    "LimitExceeded",
    "MalformedEvent",
    "Metrics",
    "NotSerializable",
    "OperationStats",
    "PayloadMismatch",
    "Session",
    "SessionUpdate",
    "SessionWindows",
    "ShardedCounter",
    "StateConflict",
    "StatelessStateError",
    "Store",
    "TableNotFound",
    "TransactionCanceled",
    "TumblingWindows",
    "Version",
    "VersionConflict",
    "Versioned",
    "domain",
    "idempotent",
    "keys",
]
__version__ = "0.1.0"
