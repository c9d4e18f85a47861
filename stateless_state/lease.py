"""Leases with fencing tokens: who may do this now, and proof of it for downstream writes.

One item per lease, ``pk=lease#<name>, sk=lease``, never deleted: it carries the fence, which
must keep increasing across every acquisition for as long as the name is used. No background
threads (they freeze between Lambda invocations): a holder renews explicitly.

Clocks: expiry compares wall-clock times of different machines, so a lease is only as exact as
their clock skew (Lambda hosts are NTP-synchronised, typically within milliseconds). Safety does not
rest on it: every write a holder makes downstream should check the fence (see :meth:`Held.write`),
and a stale holder's fenced writes fail however wrong its clock is.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, TypedDict

from . import domain, keys
from .errors import LeaseLost, LeaseUnavailable
from .expressions import Attr, Condition, Update
from .retry import LambdaContext
from .table import ConditionFailed, Table, TransactionCanceled
from .transaction import Transaction, own_write

__all__ = ["DEFAULT_DURATION", "FencedClaim", "Held", "Lease", "LeaseOptions", "LeaseState"]

DEFAULT_DURATION = timedelta(minutes=1)


def default_owner() -> str:
    """A readable owner name: host, process and a random suffix."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseOptions(TypedDict, total=False):
    """The options of :class:`Lease`, as ``store.lease(name, **options)`` takes them: how long
    an acquisition lasts (default one minute) and the owner name recorded (default host:pid)."""

    duration: timedelta | float
    owner: str | None


class FencedClaim:
    """A fenced claim on one item: the mechanism under :class:`Lease`, for any item that must
    have at most one holder at a time (the batcher's load claim on a batch item, say).

    Taking the claim is one conditional ``UpdateItem`` that writes the holder's nonce into
    ``holder_attr``, the claim's end into ``expiry_attr``, and adds 1 to ``fence``: every holder's
    fence exceeds all earlier ones. Every later write of the holder is conditional on its fence
    (:meth:`update`), so a holder whose claim was taken over writes nothing.
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

    def take(
        self,
        *,
        nonce: str,
        until: float,
        claimable: Condition,
        also_set: Mapping[str, Any] | None = None,
        also_add: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Take the claim where ``claimable`` holds; returns the item after (``ALL_NEW``).

        Raises :class:`~stateless_state.errors.ConditionFailed` with the item as it was, except
        when that item shows this very claim (``nonce``) applied by an earlier attempt whose
        response was lost: then it is returned as taken.
        """
        update = Update().set_all({self.holder_attr: nonce, self.expiry_attr: until})
        update.set_all(also_set or {}).add("fence", 1)
        for attribute, amount in (also_add or {}).items():
            update.add(attribute, amount)
        try:
            after = self.table.update_item(self.key, update, condition=claimable, returns="ALL_NEW")
        except ConditionFailed as e:
            if own_write(e.old, nonce, attribute=self.holder_attr):
                return dict(e.old or {})
            raise
        return after or {}

    def update(self, fence: int, update: Update, *, condition: Condition | None = None) -> None:
        """Apply ``update`` only while ``fence`` is the item's current fence (and ``condition``
        holds). Raises :class:`~stateless_state.errors.ConditionFailed` (with the item as it
        is) otherwise. One conditional ``UpdateItem``, 1 WCU."""
        fenced = Attr("fence").eq(fence)
        self.table.update_item(
            self.key, update, condition=fenced if condition is None else fenced & condition
        )

    def give_back(self, nonce: str) -> None:
        """Undo a claim whose outcome is unknown (its response lost for good), if it was taken:
        conditional on ``nonce``, so it never touches another holder's claim."""
        self.table.update_item(
            self.key,
            Update().set(self.expiry_attr, 0).remove(self.holder_attr),
            condition=Attr(self.holder_attr).eq(nonce),
        )


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What the lease item says right now (for operators and tests)."""

    name: str
    owner: str | None
    fence: int
    expires_at: float
    held: bool


@dataclass(slots=True)
class Held:
    """A lease this process holds. ``fence`` is strictly greater than every earlier holder's.

    Use it as a context manager to release on exit. It does not renew itself.
    """

    lease: Lease
    owner: str
    fence: int
    expires_at: float
    _nonce: str = field(repr=False)
    released: bool = False

    @property
    def remaining(self) -> float:
        """Seconds until this lease expires by the local clock (negative once expired)."""
        return self.expires_at - time.time()

    def renew(self, duration: timedelta | float | None = None) -> Held:
        """Extend the lease from now. One conditional ``UpdateItem`` (1 WCU).

        Succeeds while no one else has acquired since (even if the lease ran out meanwhile,
        which is safe: no one else got a fence). Raises :class:`LeaseLost` otherwise.
        """
        seconds = self.lease.duration if duration is None else domain.duration(duration, "duration")
        expires = time.time() + seconds
        try:
            self.lease.claim.update(
                self.fence, Update().set("expires_at", expires), condition=self._holding()
            )
        except ConditionFailed:
            raise LeaseLost(
                f"lease {self.lease.name!r}: fence {self.fence} was superseded; stop working"
            ) from None
        self.expires_at = expires
        return self

    def release(self) -> bool:
        """Give the lease up. One conditional ``UpdateItem`` (1 WCU).

        Returns False (and changes nothing) when the lease had already passed to someone else.
        Safe to repeat; the fence is kept, so the next holder's is higher.
        """
        if self.released:
            return True
        try:
            self.lease.claim.update(
                self.fence,
                Update().set("expires_at", 0).remove("holder", "owner"),
                condition=self._holding() | Attr("holder").not_exists(),
            )
        except ConditionFailed:
            return False
        self.released = True
        return True

    def _holding(self) -> Condition:
        return Attr("holder").eq(self._nonce)

    def fence_check(self, tx: Transaction) -> int:
        """Add to ``tx`` the check that this fence is still current; returns its index. Put it
        in your own :class:`~stateless_state.transaction.Transaction` to make any write fenced."""
        return tx.check(self.lease.claim.key, Attr("fence").eq(self.fence))

    def condition_check(self) -> dict[str, Any]:
        """The same check as a raw ``TransactWriteItems`` entry, for a transaction you build
        yourself with the low-level client."""
        tx = Transaction(self.lease.claim.table)
        self.fence_check(tx)
        return tx.actions[0]

    def write(self, *actions: dict[str, Any]) -> None:
        """Run ``actions`` (``TransactWriteItems`` entries) only if this fence is still current.

        One transaction of ``len(actions) + 1`` items. Raises :class:`LeaseLost`, writing
        nothing, once another holder has acquired the lease. If one of your own actions fails
        its condition, :class:`~stateless_state.errors.TransactionCanceled` is raised (nothing
        written); its ``reasons[i + 1]`` explains your i-th action (the fence check is first).
        """
        tx = Transaction(self.lease.claim.table)
        fence = self.fence_check(tx)
        tx.raw(*actions)
        try:
            tx.commit()
        except TransactionCanceled as e:
            if e.reasons[fence].code == "ConditionalCheckFailed":
                raise LeaseLost(
                    f"lease {self.lease.name!r}: fence {self.fence} is no longer current; "
                    "the write was not applied"
                ) from None
            raise

    def __enter__(self) -> Held:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Lease:
    """A named lease. Build it with ``store.lease(name, duration=..., owner=None)``.

    Mutual exclusion: at most one holder at a time, as long as holders stop using the lease when it
    expires (or renew it first). Fencing: :attr:`Held.fence` increases strictly with every
    acquisition, so downstream writes that check it reject a stale holder even if it does not
    know it is stale.
    """

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        duration: timedelta | float = DEFAULT_DURATION,
        owner: str | None = None,
    ) -> None:
        self.name = domain.name("lease name", name)
        if owner is not None:
            domain.name("owner", owner)
        self.owner = owner or default_owner()
        self._duration = domain.duration(duration, "duration")
        self._t = table
        self._key = keys.lease(name).item()
        self._claim = FencedClaim(table, self._key)

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, owner={self.owner!r})"

    @property
    def duration(self) -> float:
        """Seconds an acquisition (or a renewal without a duration) lasts."""
        return self._duration

    @property
    def claim(self) -> FencedClaim:
        """The fenced claim on the lease item, through which every holder writes."""
        return self._claim

    def acquire(self, *, context: LambdaContext | None = None) -> Held:
        """Take the lease if it is free or expired, else raise :class:`LeaseUnavailable`.

        One conditional ``UpdateItem`` (1 WCU), whatever the outcome. With a Lambda ``context``
        the duration is capped by the invocation's remaining time: a lease should not outlive
        the only process that could renew it. An ambiguous write (applied, response lost, retried
        by botocore) is recognised by its nonce and returns the lease it took.
        """
        seconds = self._duration
        if context is not None:
            seconds = min(seconds, max(0.0, context.get_remaining_time_in_millis() / 1000.0))
        nonce = secrets.token_hex(8)
        now = time.time()
        try:
            item = self._claim.take(
                nonce=nonce,
                until=now + seconds,
                claimable=Attr("fence").not_exists() | Attr("expires_at").le(now),
                also_set={"owner": self.owner},
            )
        except ConditionFailed as e:
            old = e.old or {}
            raise LeaseUnavailable(self.name, old.get("owner"), old.get("expires_at")) from None
        except Exception:
            # Applied with its response lost for good? Then give it back rather than leave it held.
            with contextlib.suppress(Exception):
                self._claim.give_back(nonce)
            raise
        return Held(self, self.owner, int(item["fence"]), float(item["expires_at"]), nonce)

    def state(self) -> LeaseState:
        """The lease as stored now (one consistent ``GetItem``)."""
        item = self._t.get(self._key) or {}
        expires = float(item.get("expires_at", 0))
        return LeaseState(
            self.name,
            item.get("owner"),
            int(item.get("fence", 0)),
            expires,
            "holder" in item and expires > time.time(),
        )

    def break_(
        self, *, expect_fence: int | None = None, who: str = "unknown", why: str = ""
    ) -> bool:
        """Operator action: expire the lease now. Only if it is held, and with ``expect_fence``
        only if it is still that holder's (so it acts on what the operator saw). Records who,
        when and why on the lease item. The fence is kept, so the broken holder's fenced writes
        fail from the next acquisition on. Returns False when nothing was changed."""
        condition = Attr("holder").exists()
        if expect_fence is not None:
            condition = condition & Attr("fence").eq(expect_fence)
        broken = {"who": who, "why": why, "at": time.time()}
        try:
            self._t.update_item(
                self._key,
                Update().set_all({"expires_at": 0, "broken": broken}).remove("holder", "owner"),
                condition=condition,
            )
        except ConditionFailed:
            return False
        return True
