"""Leases with fencing tokens: who may do this now, and proof of it for downstream writes.

One item per lease, ``pk=lease#<name>, sk=lease``, never deleted: it carries the fence, which
must keep increasing across every acquisition for as long as the name is used. No background
threads (they freeze between Lambda invocations): a holder renews explicitly. The claim on the
item is a :class:`~stateless_state.fencing.FencedClaim` (also importable from here), the one
mechanism under leases, the batcher's load claims and idempotency claims.

Clocks: expiry compares wall-clock times of different machines, so a lease is only as exact as
their clock skew (Lambda hosts are NTP-synchronised, typically within milliseconds). Safety does not
rest on it: every write a holder makes downstream should check the fence (see :meth:`Held.write`),
and a stale holder's fenced writes fail however wrong its clock is.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, TypedDict, Unpack

from . import clock, domain, keys
from .errors import LeaseLost, LeaseUnavailable
from .expressions import Attr, Condition, Update
from .fencing import FencedClaim
from .retry import LambdaContext
from .table import ConditionFailed, Table, TransactionCanceled
from .transaction import Transaction

__all__ = [
    "DEFAULT_DURATION",
    "FencedClaim",
    "Held",
    "Lease",
    "LeaseOptions",
    "LeaseSettings",
    "LeaseState",
    "lease_seconds",
]

DEFAULT_DURATION = timedelta(minutes=1)
"""How long a lease lasts when ``duration`` is not given (capped by the invocation's remaining
time)."""


def default_owner() -> str:
    """A readable owner name: host, process (:func:`stateless_state.clock.identity`) and a
    random suffix."""
    return f"{clock.identity()}:{clock.token_hex(3)}"


class LeaseOptions(TypedDict, total=False):
    """The options of :class:`Lease`, as ``store.lease(name, **options)`` takes them: how long
    an acquisition lasts and the owner name recorded (defaults and rules:
    :meth:`LeaseSettings.of`)."""

    duration: timedelta | float
    owner: str | None


class LeaseSettings(NamedTuple):
    """:class:`LeaseOptions` checked, the duration in seconds, with their defaults filled in."""

    duration: float
    owner: str

    @classmethod
    def of(cls, options: LeaseOptions) -> LeaseSettings:
        """Each option's default and rule, the one place they are written: an acquisition lasts
        one minute (:func:`lease_seconds`), the owner is a valid name or None for host:pid and a
        random suffix. Raises :class:`~stateless_state.errors.InvalidArgument` naming the first
        bad option, and :class:`TypeError` for an option that does not exist."""
        unknown = sorted(set(options) - set(LeaseOptions.__annotations__))
        if unknown:
            raise TypeError(f"Lease got unexpected options {', '.join(unknown)}")
        owner = options.get("owner")
        return cls(
            owner=default_owner() if owner is None else domain.name("owner", owner),
            duration=lease_seconds(options.get("duration", DEFAULT_DURATION)),
        )


def lease_seconds(value: timedelta | float) -> float:
    """A lease duration (an acquisition's, or a renewal's) in seconds: positive and finite."""
    return domain.duration(value, "duration")


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
        return self.expires_at - clock.now()

    def renew(self, duration: timedelta | float | None = None) -> Held:
        """Extend the lease from now. One conditional ``UpdateItem`` (1 WCU).

        Succeeds while no one else has acquired since (even if the lease ran out meanwhile,
        which is safe: no one else got a fence). Raises :class:`LeaseLost` otherwise.
        """
        seconds = self.lease.duration if duration is None else lease_seconds(duration)
        expires = clock.now() + seconds
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

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lease:
    """A named lease. Build it with ``store.lease(name, duration=..., owner=None)``.

    Mutual exclusion: at most one holder at a time, as long as holders stop using the lease when it
    expires (or renew it first). Fencing: :attr:`Held.fence` increases strictly with every
    acquisition, so downstream writes that check it reject a stale holder even if it does not
    know it is stale.
    """

    def __init__(self, table: Table, name: str, **options: Unpack[LeaseOptions]) -> None:
        self.name = domain.name("lease name", name)
        settings = LeaseSettings.of(options)
        self.owner = settings.owner
        self._duration = settings.duration
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
        nonce = clock.token_hex(8)
        now = clock.now()
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
            "holder" in item and expires > clock.now(),
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
        broken = {"who": who, "why": why, "at": clock.now()}
        try:
            self._t.update_item(
                self._key,
                Update().set_all({"expires_at": 0, "broken": broken}).remove("holder", "owner"),
                condition=condition,
            )
        except ConditionFailed:
            return False
        return True
