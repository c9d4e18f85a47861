"""The fenced claim: at most one holder of an item at a time, and proof of it for every write.

One mechanism under leases (:mod:`stateless_state.lease`), the batcher's load claims and
idempotency claims (:mod:`stateless_state.idempotency`): the holder's random nonce in a holder
attribute, the claim's end in an expiry attribute, and a ``fence`` that grows by one with every
claim taken, so every holder's fence exceeds all earlier ones while the item lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .expressions import Attr, Condition, Update
from .table import ConditionFailed, Table
from .transaction import Transaction, own_write

__all__ = ["FencedClaim"]


class FencedClaim:
    """A fenced claim on one item: the mechanism under :class:`~stateless_state.lease.Lease`,
    for any item that must have at most one holder at a time (the batcher's load claim on a
    batch item, an idempotency key's record).

    Taking the claim writes the holder's nonce into ``holder_attr`` and the claim's end into
    ``expiry_attr``: on an item that does not exist yet with fence 1 (:meth:`create`, one
    conditional ``PutItem``), on one that does by adding 1 to its ``fence`` (:meth:`take`, one
    conditional ``UpdateItem``). A holder's later writes are conditional on its fence
    (:meth:`update`) or, where the item may be deleted and created again at fence 1 (by TTL), on
    its nonce (:meth:`update_held`): either way a holder whose claim was taken over writes
    nothing. Thread-safe; holds no state beyond the item's key and attribute names.
    """

    def __init__(
        self,
        table: Table,
        key: Mapping[str, Any],
        *,
        holder_attr: str = "holder",
        expiry_attr: str = "expires_at",
    ) -> None:
        self.table = table
        self.key = dict(key)
        self.holder_attr = holder_attr
        self.expiry_attr = expiry_attr

    def create(
        self, *, nonce: str, until: float, also_set: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Take the claim on an item that does not exist: one ``PutItem`` of the key, ``also_set``,
        the holder, the expiry and fence 1, conditional on no item having the key. Returns the
        item as written.

        Raises :class:`~stateless_state.errors.ConditionFailed` with the item that exists
        (``ALL_OLD``, at no extra cost), except when that item shows this very claim (``nonce``)
        applied by an earlier attempt whose response was lost: then it is returned as taken.
        """
        item = {**self.key, **(also_set or {}), self.holder_attr: nonce, self.expiry_attr: until}
        item["fence"] = 1
        try:
            self.table.put(item, condition=Attr("pk").not_exists())
        except ConditionFailed as e:
            if self.is_holder(e.old, nonce):
                return dict(e.old or {})
            raise
        return item

    def take(
        self,
        *,
        nonce: str,
        until: float,
        claimable: Condition,
        also_set: Mapping[str, Any] | None = None,
        also_add: Mapping[str, Any] | None = None,
        also_remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Take the claim where ``claimable`` holds; returns the item after (``ALL_NEW``). One
        conditional ``UpdateItem`` that also sets ``also_set``, adds ``also_add`` and removes
        ``also_remove``.

        Raises :class:`~stateless_state.errors.ConditionFailed` with the item as it was, except
        when that item shows this very claim (``nonce``) applied by an earlier attempt whose
        response was lost: then it is returned as taken.
        """
        update = Update().set_all({self.holder_attr: nonce, self.expiry_attr: until})
        update.set_all(also_set or {}).add("fence", 1)
        for attribute, amount in (also_add or {}).items():
            update.add(attribute, amount)
        if also_remove:
            update.remove(*also_remove)
        try:
            after = self.table.update_item(self.key, update, condition=claimable, returns="ALL_NEW")
        except ConditionFailed as e:
            if self.is_holder(e.old, nonce):
                return dict(e.old or {})
            raise
        return after or {}

    def is_holder(self, item: Mapping[str, Any] | None, nonce: str) -> bool:
        """True when ``item`` (as read, or an ``ALL_OLD``) is held by the claim ``nonce`` took:
        how a retry recognises its own earlier write (:func:`~stateless_state.transaction.
        own_write`)."""
        return own_write(item, nonce, attribute=self.holder_attr)

    def held(self, nonce: str, condition: Condition | None = None) -> Condition:
        """The condition that the claim ``nonce`` took still holds the item (and ``condition``)."""
        holding = Attr(self.holder_attr).eq(nonce)
        return holding if condition is None else holding & condition

    def update(self, fence: int, update: Update, *, condition: Condition | None = None) -> None:
        """Apply ``update`` only while ``fence`` is the item's current fence (and ``condition``
        holds). Raises :class:`~stateless_state.errors.ConditionFailed` (with the item as it
        is) otherwise. One conditional ``UpdateItem``, 1 WCU."""
        fenced = Attr("fence").eq(fence)
        self.table.update_item(
            self.key, update, condition=fenced if condition is None else fenced & condition
        )

    def update_held(
        self, nonce: str, update: Update, *, condition: Condition | None = None
    ) -> None:
        """Apply ``update`` only while the claim ``nonce`` took holds the item (and ``condition``
        holds): the check for items whose fence restarts at 1 when they are deleted and created
        again. Raises :class:`~stateless_state.errors.ConditionFailed` (with the item as it is)
        otherwise. One conditional ``UpdateItem``, 1 WCU for a small item."""
        self.table.update_item(self.key, update, condition=self.held(nonce, condition))

    def put_held(
        self, nonce: str, item: Mapping[str, Any], *, condition: Condition | None = None
    ) -> None:
        """Write ``item`` whole over the item only while the claim ``nonce`` took holds it (and
        ``condition`` holds): for a holder that knows the whole item, since nothing but the
        holder writes a held item. Raises :class:`~stateless_state.errors.ConditionFailed`
        (with the item as it is) otherwise. One conditional ``PutItem``, 1 WCU for a small
        item (DynamoDB Local serves it faster than the ``UpdateItem`` of :meth:`update_held`)."""
        self.table.put({**item, **self.key}, condition=self.held(nonce, condition))

    def update_held_in(
        self,
        tx: Transaction,
        nonce: str,
        update: Update,
        *,
        condition: Condition | None = None,
    ) -> int:
        """Add :meth:`update_held` to ``tx`` as one of its actions; returns its index. Its
        cancellation reason carries the item as it was (``ALL_OLD``), so the caller can tell
        a claim taken over from its own earlier commit (:meth:`is_holder`)."""
        return tx.update(self.key, update, condition=self.held(nonce, condition), return_old=True)

    def check_held_in(
        self, tx: Transaction, nonce: str, *, condition: Condition | None = None
    ) -> int:
        """Add to ``tx`` a ``ConditionCheck`` that the claim ``nonce`` took holds the item (and
        ``condition``): ``tx`` then commits only while the claim holds. Returns its index."""
        return tx.check(self.key, self.held(nonce, condition))

    def give_back(self, nonce: str) -> None:
        """Undo a claim whose outcome is unknown (its response lost for good), if it was taken:
        conditional on ``nonce``, so it never touches another holder's claim."""
        self.update_held(nonce, Update().set(self.expiry_attr, 0).remove(self.holder_attr))
