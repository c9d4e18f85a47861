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

Cost: 2 WCU per item per started KB on AWS (the metrics apply that rule). At most 100 actions
and 4 MB; a commit past that raises :class:`~stateless_state.errors.InvalidArgument` before any
request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .codec import to_item
from .errors import InvalidArgument
from .expressions import Attr, Condition, Update, render
from .table import Table

__all__ = ["ACTION_KINDS", "MAX_ACTIONS", "Transaction", "check_actions", "own_write"]

MAX_ACTIONS = 100
ACTION_KINDS = ("ConditionCheck", "Put", "Delete", "Update")


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
        self.actions.extend(check_actions(actions))
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
        self._t.call("TransactWriteItems", TransactItems=self.actions)
