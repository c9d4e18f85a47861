"""One ``TransactWriteItems`` as an object: collect actions, commit once, and when DynamoDB
cancels it, read each action's outcome by the index its builder method returned.

.. code-block:: python

    tx = Transaction(table)
    token = tx.put_if_absent({**keys.counter_token(name, t).item(), "nonce": nonce})
    counter = tx.update(keys.counter(name).item(), Update().set("v", 5), condition=Attr("v").eq(4))
    try:
        tx.commit()
    except TransactionCanceled as e:
        if e.reasons[token].failed:
            ...  # the token existed: e.reasons[token].item is its record (ALL_OLD)
        if own_write(e.reasons[token].item, nonce):
            ...  # ... and it was this call's own earlier attempt (an ambiguous write)

Cost: 2 WCU per item per started KB on AWS (the metrics apply that rule).

Refused writes. What DynamoDB would refuse as a whole is refused here before any request, as
:class:`~stateless_state.errors.WriteRefused` (an ``InvalidArgument``) naming the entry: more
than 100 actions, more than 4 MB (counted from the request: whole ``Put`` items, keys and
expression values of the others, a lower bound of what DynamoDB counts), a ``Put`` item over
400 KB (``ItemTooLarge``), two actions on one item (keys compared exactly; a ``Put`` on a table
of yours is compared by the key attributes another action of the same transaction names, since
its key schema is not known without ``DescribeTable``, a control-plane call kept off the hot
path), and a raw entry on the state table whose key is not ``pk`` and ``sk`` strings (that schema
is known; an entry on one of the transaction's own items is the duplicate case). The rest
only DynamoDB knows (the key schema of your tables): its
``ValidationException`` becomes ``WriteRefused`` naming the entries it may concern, and a
missing table of yours is :class:`~stateless_state.errors.OtherTableNotFound` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from .codec import to_item
from .errors import InvalidArgument, ItemTooLarge, OtherTableNotFound, TableNotFound, WriteRefused
from .expressions import Attr, Condition, Update, render
from .table import Table, item_size

__all__ = ["ACTION_KINDS", "MAX_ACTIONS", "Transaction", "check_actions", "own_write"]

MAX_ACTIONS = 100
"""DynamoDB's limit of actions in one ``TransactWriteItems``."""
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_ITEM_BYTES = 400 * 1024
ACTION_KINDS = ("ConditionCheck", "Put", "Delete", "Update")
"""The kinds of action a ``TransactWriteItems`` entry may hold (its one key)."""


def check_actions(actions: Iterable[object]) -> list[dict[str, Any]]:
    """``actions`` as ``TransactWriteItems`` entries, each checked for shape: an
    :class:`InvalidArgument` naming the first malformed one, before any request."""
    return [_checked(a, i) for i, a in enumerate(actions)]


def _checked(action: object, index: int) -> dict[str, Any]:
    """``action`` as a ``TransactWriteItems`` entry, or :class:`InvalidArgument` saying what is
    wrong with it (before any request, so nothing is half-written)."""
    where = f"extra action {index}"
    if not isinstance(action, Mapping) or len(action) != 1:
        raise InvalidArgument(
            f"{where} must be one TransactWriteItems entry, a mapping with exactly one of "
            f"{', '.join(ACTION_KINDS)}, got {action!r:.200}"
        )
    ((kind, body),) = action.items()
    if kind not in ACTION_KINDS:
        raise InvalidArgument(f"{where}: {kind!r} is not one of {', '.join(ACTION_KINDS)}")
    needed = "Item" if kind == "Put" else "Key"
    if not isinstance(body, Mapping) or "TableName" not in body or needed not in body:
        raise InvalidArgument(
            f"{where}: a {kind} needs TableName and {needed} (low-level attribute values, as "
            "the client takes them); stateless_state.pynamodb builds them from a model"
        )
    return {kind: dict(body)}


def own_write(old: Mapping[str, Any] | None, nonce: str, *, attribute: str = "nonce") -> bool:
    """True when ``old`` (an ``ALL_OLD`` item) was written by the call that carries ``nonce``
    (kept in ``attribute``).

    The one check for "was this my own earlier write?": every write whose repetition would be
    wrong records a random nonce, so a retry that finds its write already applied (the first
    response was lost and botocore retried) recognises it and reports success instead of a
    duplicate or a conflict.
    """
    return old is not None and old.get(attribute) == nonce


class Transaction:
    """Actions of one ``TransactWriteItems``, built with generated placeholders. Each builder
    returns the action's index: ``TransactionCanceled.reasons[index]`` is its outcome."""

    def __init__(self, table: Table) -> None:
        self._t = table
        self.actions: list[dict[str, Any]] = []
        # What to call each action in an error: the caller's raw entries by their own index.
        self._labels: list[str] = []

    def __len__(self) -> int:
        return len(self.actions)

    def _append(
        self,
        kind: str,
        body: dict[str, Any],
        condition: Condition | None,
        return_old: bool,
        update: Update | None = None,
    ) -> int:
        action = {"TableName": self._t.name, **body, **render(update=update, condition=condition)}
        if return_old:
            action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self.actions.append({kind: action})
        self._labels.append(f"the library's {kind} on {self._t.name!r}")
        return len(self.actions) - 1

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: Condition | None = None,
        return_old: bool = False,
    ) -> int:
        """Write ``item`` whole (only if ``condition`` holds)."""
        return self._append("Put", {"Item": to_item(item)}, condition, return_old)

    def put_if_absent(self, item: Mapping[str, Any]) -> int:
        """Write ``item`` only if no item has its key; on failure its reason carries the
        existing item, which is how a token, claim or dedupe record tells "already there" from
        "my own earlier write" (:func:`own_write`)."""
        return self.put(item, condition=Attr("pk").not_exists(), return_old=True)

    def update(
        self,
        key: Mapping[str, Any],
        update: Update,
        *,
        condition: Condition | None = None,
        return_old: bool = False,
    ) -> int:
        """Update the item at ``key`` (only if ``condition`` holds)."""
        return self._append("Update", {"Key": to_item(key)}, condition, return_old, update)

    def delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: Condition | None = None,
        return_old: bool = False,
    ) -> int:
        """Delete the item at ``key`` (only if ``condition`` holds)."""
        return self._append("Delete", {"Key": to_item(key)}, condition, return_old)

    def check(
        self, key: Mapping[str, Any], condition: Condition, *, return_old: bool = False
    ) -> int:
        """Hold the transaction to ``condition`` on the item at ``key``, writing nothing there."""
        return self._append("ConditionCheck", {"Key": to_item(key)}, condition, return_old)

    def raw(self, *actions: Mapping[str, Any]) -> int:
        """Add ready-made ``TransactWriteItems`` entries (the caller's own writes, on any table
        of the account and region); returns the index of the first. Each is checked for shape
        here, so a malformed one raises :class:`~stateless_state.errors.InvalidArgument` before
        any request."""
        first = len(self.actions)
        checked = check_actions(actions)
        for i, action in enumerate(checked):
            ((kind, body),) = action.items()
            key = body.get("Key", body.get("Item"))
            if body["TableName"] == self._t.name and not _state_key(key, exact="Key" in body):
                raise WriteRefused(
                    f"extra action {i}: a {kind} on the state table {self._t.name!r} whose key "
                    "does not match its schema (pk and sk, both strings"
                    + (", and nothing else" if "Key" in body else "")
                    + f"), got {sorted(key) if isinstance(key, Mapping) else key!r:.200}; "
                    "DynamoDB would refuse the whole transaction",
                    [f"extra action {i}"],
                )
        self.actions.extend(checked)
        self._labels.extend(f"extra action {i}" for i in range(len(checked)))
        return first

    def commit(self) -> None:
        """Run the transaction: all actions or none. Raises
        :class:`~stateless_state.errors.TransactionCanceled` (``reasons`` aligned with the
        actions) when a condition failed or another request conflicted."""
        if not self.actions:
            return
        if len(self.actions) > MAX_ACTIONS:
            raise InvalidArgument(
                f"a transaction holds at most {MAX_ACTIONS} actions; this one has "
                f"{len(self.actions)}. Split the work (nothing was written)."
            )
        self._check_whole()
        try:
            self._t.call("TransactWriteItems", TransactItems=self.actions)
        except TableNotFound as e:
            raise self._missing_table(e) from e
        except ClientError as e:
            error = e.response.get("Error", {})
            if error.get("Code") != "ValidationException":
                raise
            theirs = [
                label
                for action, label in zip(self.actions, self._labels, strict=True)
                if _body(action)["TableName"] != self._t.name
            ]
            raise WriteRefused(
                f"DynamoDB refused the transaction: {error.get('Message')}. It does not say "
                f"which entry; the ones on tables whose key schema the library does not know "
                f"are {', '.join(theirs) or 'none'}. Nothing was written.",
                theirs,
            ) from e

    def _check_whole(self) -> None:
        """What DynamoDB refuses of the transaction as a whole, checked before the request."""
        total = 0
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        key_names: dict[str, set[str]] = {self._t.name: {"pk", "sk"}}
        for action in self.actions:
            body = _body(action)
            if "Key" in body:
                key_names.setdefault(body["TableName"], set()).update(body["Key"])
        for action, label in zip(self.actions, self._labels, strict=True):
            body = _body(action)
            table = body["TableName"]
            if "Item" in body:
                size = item_size(body["Item"])
                if size > MAX_ITEM_BYTES:
                    raise ItemTooLarge(
                        f"{label}: a Put of {size} bytes on {table!r} exceeds DynamoDB's 400 KB "
                        "item limit; nothing was written. Store large values in S3."
                    )
                names = key_names.get(table)
                key = {n: body["Item"][n] for n in names if n in body["Item"]} if names else None
            else:
                key = body["Key"]
                size = item_size(key) + item_size(body.get("ExpressionAttributeValues", {}))
            total += size
            if key:
                identity = (table, tuple(sorted((n, repr(v)) for n, v in key.items())))
                if identity in seen:
                    raise WriteRefused(
                        f"{seen[identity]} and {label} act on the same item of {table!r}; "
                        "DynamoDB refuses two actions on one item in a transaction. Merge "
                        "them into one (nothing was written).",
                        [seen[identity], label],
                    )
                seen[identity] = label
        if total > MAX_TRANSACTION_BYTES:
            raise WriteRefused(
                f"the transaction carries at least {total} bytes; DynamoDB takes at most "
                f"{MAX_TRANSACTION_BYTES} (4 MB). Split the work (nothing was written)."
            )

    def _missing_table(self, error: TableNotFound) -> TableNotFound:
        """Which table is missing: DynamoDB's message for a transaction names none, so on this
        error path (never on the hot path) each table of the transaction is described."""
        tables: dict[str, list[str]] = {}
        for action, label in zip(self.actions, self._labels, strict=True):
            tables.setdefault(_body(action)["TableName"], []).append(label)
        endpoint = getattr(self._t.client.meta, "endpoint_url", None)
        for name, labels in tables.items():
            try:
                self._t.client.describe_table(TableName=name)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if code == "ResourceNotFoundException" and name != self._t.name:
                    return OtherTableNotFound(name, labels, endpoint)
                if code == "ResourceNotFoundException":
                    return error
        return error


def _state_key(key: object, *, exact: bool) -> bool:
    """True when ``key`` (a ``Key``, or a ``Put``'s item) fits the state table's schema."""
    if not isinstance(key, Mapping) or (exact and set(key) != {"pk", "sk"}):
        return False
    return all(isinstance(key.get(n), Mapping) and set(key[n]) == {"S"} for n in ("pk", "sk"))


def _body(action: Mapping[str, Any]) -> Mapping[str, Any]:
    ((_, body),) = action.items()
    result: Mapping[str, Any] = body
    return result
