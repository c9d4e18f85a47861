"""The thin layer between the primitives and DynamoDB's low-level client.

It owns three things: translation of DynamoDB's error codes into the library's answers (a failed
condition is a value, not a crash: :class:`ConditionFailed` with the item as it was), cost
accounting on every call (``store.metrics``), and the request shapes the primitives share (a
``put``, an ``update_item``, a ``delete``, a consistent ``get``, a paged ``query`` and its
one-item form ``query_one``, a ``batch_get``, ``retry``), so no primitive builds a request or
reads an attribute value by hand. Values are converted by :mod:`stateless_state.codec`,
expressions built by :mod:`stateless_state.expressions`. It also keeps each primitive's
per-container :class:`Hints`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from .keys import INDEX_NAME, INDEX_PK, INDEX_SK
from .metrics import Metrics

if TYPE_CHECKING:
    from .retry import LambdaContext

T = TypeVar("T")

__all__ = [
    "INDEX_NAME",
    "INDEX_PK",
    "INDEX_SK",
    "MAX_BATCH_GET",
    "ConditionFailed",
    "Hints",
    "Table",
    "TransactionCanceled",
]

MAX_BATCH_GET = 100
"""Keys per ``BatchGetItem`` request (DynamoDB's limit)."""
_MAX_HINTS = 100_000

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


class Hints:
    """One primitive's per-container guesses: the last value this container saw, per key, that
    makes a first conditional write cheaper. A wrong guess costs a cancelled write, never a
    wrong answer, so threads may share them without a lock (each operation is one dict step).
    Bounded: past ``limit`` keys the guesses start over, so a container that sees very many
    keys does not grow without end."""

    def __init__(self, limit: int = _MAX_HINTS) -> None:
        self._values: dict[str, int] = {}
        self._limit = limit

    def get(self, key: str) -> int | None:
        return self._values.get(key)

    def put(self, key: str, value: int) -> None:
        if len(self._values) >= self._limit and key not in self._values:
            self._values.clear()
        self._values[key] = value

    def forget(self, key: str) -> None:
        self._values.pop(key, None)


class Table:
    """One table, one client, one metrics sink. Thread-safe (boto3 clients are)."""

    def __init__(self, client: Any, name: str, metrics: Metrics) -> None:
        self.client = client
        self.name = name
        self.metrics = metrics
        self._hints: dict[str, Hints] = {}

    def hints(self, primitive: str) -> Hints:
        """The :class:`Hints` of ``primitive`` (a word such as ``counter``): kept apart per
        primitive, so one primitive's bound or reset never clears another's guesses."""
        found = self._hints.get(primitive)
        return found if found is not None else self._hints.setdefault(primitive, Hints())

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run one DynamoDB operation, account for it, and translate its errors.

        Raises :class:`ConditionFailed`, :class:`TransactionCanceled`, ``TableNotFound``,
        ``ItemTooLarge`` or ``InvalidArgument`` (a number out of DynamoDB's range); other
        botocore errors pass through unchanged.
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

    def query(
        self,
        key_condition: Condition | None = None,
        *,
        index: bool = False,
        consistent: bool = False,
        reverse: bool = False,
        **request: Any,
    ) -> Iterator[Item]:
        """Every item whose key matches ``key_condition``, in sort-key order (``reverse``:
        descending), decoded, page after page: one request per 1 MB page, 0.5 RCU per 4 KB read
        (1 when ``consistent``). ``index`` queries the sparse index (:data:`INDEX_NAME`), which
        is never consistent. ``request``: further ``Query`` parameters as the client takes them.
        """
        request = self._query_request(key_condition, index, consistent, reverse, request)
        while True:
            r = self.call("Query", **request)
            for item in r.get("Items", []):
                yield from_item(item) or {}
            if "LastEvaluatedKey" not in r:
                return
            request["ExclusiveStartKey"] = r["LastEvaluatedKey"]

    def query_one(
        self, key_condition: Condition, *, consistent: bool = False, reverse: bool = False
    ) -> Item | None:
        """The first item (``reverse``: the last) in sort-key order whose key matches
        ``key_condition``, or None. One ``Query`` request of one item (``Limit=1``)."""
        r = self.call(
            "Query", Limit=1, **self._query_request(key_condition, False, consistent, reverse, {})
        )
        items = r.get("Items", [])
        return from_item(items[0]) if items else None

    def _query_request(
        self,
        key_condition: Condition | None,
        index: bool,
        consistent: bool,
        reverse: bool,
        request: dict[str, Any],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"TableName": self.name, **request}
        if key_condition is not None:
            out.update(render(key_condition=key_condition))
        if index:
            out["IndexName"] = INDEX_NAME
        if consistent:
            out["ConsistentRead"] = True
        if reverse:
            out["ScanIndexForward"] = False
        return out

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

    def put(self, item: Mapping[str, Any], *, condition: Condition | None = None) -> None:
        """One ``PutItem`` of ``item`` whole (only if ``condition`` holds): 1 WCU per KB. A
        failed condition raises :class:`ConditionFailed` carrying the item as it was."""
        kwargs: dict[str, Any] = {}
        if condition is not None:
            kwargs = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        self.call(
            "PutItem",
            TableName=self.name,
            Item=to_item(item),
            **render(condition=condition),
            **kwargs,
        )

    def delete(self, key: Mapping[str, Any]) -> None:
        """One unconditional ``DeleteItem`` of the item at ``key`` (1 WCU per KB it held; a
        missing item costs 1 WCU too)."""
        self.call("DeleteItem", TableName=self.name, Key=to_item(key))

    def get(self, key: Mapping[str, Any], *, consistent: bool = True) -> Item | None:
        """The item at ``key``, decoded, or None. One ``GetItem``: 1 RCU per 4 KB consistent,
        0.5 not."""
        return from_item(self.get_stored(key, consistent=consistent))

    def get_stored(self, key: Mapping[str, Any], *, consistent: bool = True) -> Item | None:
        """The item at ``key`` as DynamoDB stores it (typed attribute values, not decoded), or
        None: for audits that compare stored bytes. One ``GetItem``, as :meth:`get`."""
        r = self.call("GetItem", TableName=self.name, Key=to_item(key), ConsistentRead=consistent)
        item: Item | None = r.get("Item")
        return item

    def batch_get(
        self, keys: Iterable[Mapping[str, Any]], *, consistent: bool = True
    ) -> list[Item]:
        """The items at ``keys`` that exist, decoded, in no particular order. One
        ``BatchGetItem`` per :data:`MAX_BATCH_GET` keys, and one more (at once) for each round
        of keys DynamoDB leaves unprocessed; 1 RCU per 4 KB item consistent, 0.5 not."""
        wanted = [to_item(k) for k in keys]
        found: list[Item] = []
        for start in range(0, len(wanted), MAX_BATCH_GET):
            chunk = wanted[start : start + MAX_BATCH_GET]
            request: dict[str, Any] = {self.name: {"Keys": chunk, "ConsistentRead": consistent}}
            while request:
                r = self.call("BatchGetItem", RequestItems=request)
                found.extend(from_item(i) or {} for i in r.get("Responses", {}).get(self.name, []))
                request = r.get("UnprocessedKeys") or {}
        return found


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
