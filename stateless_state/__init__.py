"""stateless_state: correct state for stateless AWS Lambda handlers, kept in DynamoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import domain, keys
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
from .lazy import lazy_attributes
from .store import Store

if TYPE_CHECKING:
    from .counter import Count, Counter, ShardedCounter
    from .idempotency import Claim, Idempotency, commit_with_completion, idempotent
    from .lease import Held, Lease, LeaseState
    from .metrics import Metrics, OperationStats
    from .sessions import Session, SessionUpdate, SessionWindows
    from .tumbling import TumblingWindows
    from .versioned import Version, Versioned

# The primitives load when first named (PEP 562): a handler's cold start pays only for the
# ones it uses. The errors, the Store and the kernel's key and domain rules load at once.
_LAZY = {
    "Count": "counter",
    "Counter": "counter",
    "ShardedCounter": "counter",
    "Claim": "idempotency",
    "Idempotency": "idempotency",
    "idempotent": "idempotency",
    "commit_with_completion": "idempotency",
    "Held": "lease",
    "Lease": "lease",
    "LeaseState": "lease",
    "Metrics": "metrics",
    "OperationStats": "metrics",
    "Session": "sessions",
    "SessionUpdate": "sessions",
    "SessionWindows": "sessions",
    "TumblingWindows": "tumbling",
    "Version": "versioned",
    "Versioned": "versioned",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

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
    "commit_with_completion",
    "domain",
    "idempotent",
    "keys",
]
__version__ = "0.1.0"
