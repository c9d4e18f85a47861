"""The thin layer between the primitives and DynamoDB's low-level client.

It owns three things: translation of DynamoDB's error codes into the library's answers (a failed
condition is a value, not a crash: :class:`ConditionFailed` with the item as it was), cost
accounting on every call (``store.metrics``), and the few request shapes every primitive shares
(a conditional ``update_item``, a paged ``query``, a consistent ``get``, ``retry``). Values are
converted by :mod:`stateless_state.codec`, expressions built by :mod:`stateless_state.expressions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from .codec import Item, from_item, to_item
from .errors import (
    CancellationReason,
    ConditionFailed,
    InvalidArgument,
    ItemTooLarge,
    TableNotFound,
    TransactionCanceled,
)
from .expressions import Condition, Update, render
from .metrics import Metrics

if TYPE_CHECKING:
    from .retry import LambdaContext

T = TypeVar("T")

__all__ = [
    "INDEX_NAME",
    "INDEX_PK",
    "INDEX_SK",
    "ConditionFailed",
    "Table",
    "TransactionCanceled",
]

# The one sparse global secondary index of the single-table design.
INDEX_NAME, INDEX_PK, INDEX_SK = "gsi1", "gsi1pk", "gsi1sk"

_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def _value_size(av: Mapping[str, Any]) -> int:
    ((tag, v),) = av.items()
    if tag in ("S", "B"):
        return len(v.encode()) if isinstance(v, str) else len(v)
    if tag == "N":
        return 1 + (len(v.lstrip("-").replace(".", "")) + 1) // 2
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(x) for k, x in v.items())
    if tag == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    return sum(len(str(x).encode()) for x in v)


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size as DynamoDB counts it (attribute names plus values), in bytes."""
    return sum(len(name.encode()) + _value_size(av) for name, av in item.items())


def transaction_units(actions: list[Mapping[str, Any]]) -> float:
    """What AWS bills a committed ``TransactWriteItems``: 2 WCU per item per started KB.

    A Put's size is known from the request; an Update, Delete or ConditionCheck is counted at
    1 KB, a lower bound (the stored item may be larger).
    """
    total = 0.0
    for action in actions:
        put = action.get("Put")
        size = item_size(put["Item"]) if put else 1
        total += 2 * max(1, -(-size // 1024))
    return total


def _size_error(message: str) -> bool:
    m = message.lower()
    return "item size" in m and "exceeded" in m


class Table:
    """One table, one client, one metrics sink. Thread-safe (boto3 clients are)."""

    def __init__(self, client: Any, name: str, metrics: Metrics) -> None:
        self.client = client
        self.name = name
        self.metrics = metrics
        # Per-container hints (last value seen, per key) that make a first guess cheaper. A wrong
        # hint costs a cancelled conditional write, never a wrong answer.
        self.hints: dict[str, int] = {}

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run one DynamoDB operation, account for it, and translate its errors.

        Raises :class:`ConditionFailed`, :class:`TransactionCanceled`, ``TableNotFound`` or
        ``ItemTooLarge``; other botocore errors pass through unchanged.
        """
        method = getattr(self.client, _snake(operation))
        kwargs.setdefault("ReturnConsumedCapacity", "TOTAL")
        try:
            response: dict[str, Any] = method(**kwargs)
        except ClientError as e:
            self._account(operation, e.response, kwargs, error=e)
            raise self._translate(e) from e
        except Exception:
            self.metrics.record(operation, error=True)
            raise
        self._account(operation, response, kwargs)
        return response

    def _account(
        self,
        operation: str,
        response: Mapping[str, Any],
        request: Mapping[str, Any],
        error: ClientError | None = None,
    ) -> None:
        units = 0.0
        consumed = response.get("ConsumedCapacity")
        for c in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            units += float(c.get("CapacityUnits", 0.0))
        if operation == "TransactWriteItems" and error is None:
            # DynamoDB Local reports a flat 2 units per transaction whatever it holds; AWS bills
            # 2 per item per started KB and reports it. Take the larger of the two.
            units = max(units, transaction_units(request.get("TransactItems", [])))
        attempts = 1 + int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        code = error.response.get("Error", {}).get("Code", "") if error else ""
        reasons = response.get("CancellationReasons", []) if error else []
        write = operation in _WRITES
        condition_failure = code == "ConditionalCheckFailedException" or any(
            r.get("Code") == "ConditionalCheckFailed" for r in reasons
        )
        conflict = any(r.get("Code") == "TransactionConflict" for r in reasons)
        self.metrics.record(
            operation,
            requests=attempts,
            wcu=units if write else 0.0,
            rcu=0.0 if write else units,
            retries=attempts - 1,
            condition_failure=condition_failure,
            conflict=conflict,
            error=error is not None and not (condition_failure or conflict),
        )

    def _translate(self, e: ClientError) -> Exception:
        err = e.response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        if code == "ConditionalCheckFailedException":
            return ConditionFailed(from_item(e.response.get("Item")))
        if code == "TransactionCanceledException":
            return TransactionCanceled(
                [
                    CancellationReason(
                        r.get("Code", "None"), r.get("Message"), from_item(r.get("Item"))
                    )
                    for r in e.response.get("CancellationReasons", [])
                ]
            )
        if code == "ResourceNotFoundException":
            return TableNotFound(self.name, getattr(self.client.meta, "endpoint_url", None))
        if code == "ValidationException" and _size_error(message):
            return ItemTooLarge(
                f"a write to table {self.name!r} would exceed DynamoDB's 400 KB item limit "
                f"({message}); nothing was written. Store large values in S3 (Versioned does "
                "this for you) or split them."
            )
        if code == "ValidationException" and "number overflow" in message.lower():
            return InvalidArgument(
                f"a number in a write to table {self.name!r} would leave DynamoDB's range (38 "
                f"significant digits, magnitude below 1E+126): {message}; nothing was written"
            )
        unchanged: Exception = e
        return unchanged

    def query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a ``Query`` matches, page after page (one request per 1 MB page)."""
        kwargs.setdefault("TableName", self.name)
        while True:
            r = self.call("Query", **kwargs)
            for item in r.get("Items", []):
                yield from_item(item) or {}
            if "LastEvaluatedKey" not in r:
                return
            kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]

    def retry(
        self,
        fn: Callable[[], T],
        *,
        retry_on: tuple[type[BaseException], ...],
        what: str,
        operation: str,
        attempts: int,
        context: LambdaContext | None = None,
        **backoff: Any,
    ) -> T:
        """:func:`~stateless_state.retry.run_with_retries` for a write on this table: retries
        counted in this table's metrics under ``operation``, and half a second of the
        invocation's remaining time kept for the caller's own last steps."""
        from .retry import run_with_retries

        return run_with_retries(
            fn,
            retry_on=retry_on,
            what=what,
            attempts=attempts,
            context=context,
            margin=0.5,
            metrics=self.metrics,
            operation=operation,
            **backoff,
        )

    def update_item(
        self,
        key: Mapping[str, Any],
        update: Update,
        *,
        condition: Condition | None = None,
        returns: str = "NONE",
    ) -> Item | None:
        """One ``UpdateItem`` of the item at ``key`` (only if ``condition`` holds): 1 WCU per KB.
        Returns the attributes ``returns`` asks for (``ALL_NEW``, ``UPDATED_NEW``...), decoded,
        or None. A failed condition raises :class:`ConditionFailed` carrying the item as it was
        (``ALL_OLD``), so the caller can tell why without a read."""
        kwargs: dict[str, Any] = {"ReturnValues": returns}
        if condition is not None:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        r = self.call(
            "UpdateItem",
            TableName=self.name,
            Key=to_item(key),
            **render(update=update, condition=condition),
            **kwargs,
        )
        return from_item(r.get("Attributes"))

    def get(self, key: Mapping[str, Any], *, consistent: bool = True) -> Item | None:
        r = self.call("GetItem", TableName=self.name, Key=to_item(key), ConsistentRead=consistent)
        return from_item(r.get("Item"))


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
