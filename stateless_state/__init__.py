"""stateless_state: correct state for stateless AWS Lambda handlers, kept in DynamoDB."""

from __future__ import annotations

from .counter import Count, Counter, ShardedCounter
from .errors import (
    AlreadyInProgress,
    ConflictRetriesExhausted,
    InvalidArgument,
    ItemTooLarge,
    LeaseLost,
    LeaseUnavailable,
    LimitExceeded,
    MalformedEvent,
    NotSerializable,
    PayloadMismatch,
    StatelessStateError,
    TableNotFound,
    VersionConflict,
)
from .metrics import Metrics, OperationStats
from .store import Store

__all__ = [
    "AlreadyInProgress",
    "ConflictRetriesExhausted",
    "Count",
    "Counter",
    "InvalidArgument",
    "ItemTooLarge",
    "LeaseLost",
    "LeaseUnavailable",
    "LimitExceeded",
    "MalformedEvent",
    "Metrics",
    "NotSerializable",
    "OperationStats",
    "PayloadMismatch",
    "ShardedCounter",
    "StatelessStateError",
    "Store",
    "TableNotFound",
    "VersionConflict",
]
__version__ = "0.1.0"
