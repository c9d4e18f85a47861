"""Idempotency keys' records: claiming a key, taking over an ended claim, replaying a result.

One item per key, ``pk=idem#<sha256 of the key's preimage>, sk=idem``: ``status``
(``in_progress`` | ``completed`` | ``released``), ``owner`` (a random nonce per claim), ``fence``
(1 for a record's first claim, one more with every takeover), ``lease_until`` (when an
in-progress claim may be taken over), ``hash`` (of the validated payload), ``result`` (JSON),
``ttl``, ``namespace`` and, for a string key, ``key``. The preimage is
:func:`~stateless_state.idempotency.request_keys.preimage`; the claim is the record's
:class:`~stateless_state.fencing.FencedClaim` (holder ``owner``, expiry ``lease_until``).

Clocks: a claim's lease and a record's expiry compare wall-clock times written by one Lambda host
with the clock of another, so they are exact only to the hosts' clock skew (NTP-synchronised,
typically milliseconds). A host whose clock runs ahead sees a lease end early and may take over
a claim that is still running: give ``in_progress_timeout`` (or the Lambda timeout) a margin over
the skew you expect. Safety does not rest on it: a taken-over claim can no longer complete or
release (its nonce is gone), so the zombie's result is never stored over the new owner's.
Expiry is rounded up to the next whole second: a completed record is replayed for at least
``expires_after``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack

from .. import clock, domain
from ..errors import AlreadyInProgress, PayloadMismatch
from ..expressions import Attr, Condition
from ..fencing import FencedClaim
from ..retry import LambdaContext
from ..table import ConditionFailed, Table
from .claim import COMPLETED, IN_PROGRESS, RELEASED, Claim
from .request_keys import IdempotencyKey, payload_hash, record_key

if TYPE_CHECKING:
    from .cache import ResultCache

__all__ = [
    "DEFAULT_EXPIRES_AFTER",
    "DEFAULT_IN_PROGRESS_TIMEOUT",
    "Idempotency",
    "IdempotencyOptions",
    "IdempotencySettings",
]

DEFAULT_EXPIRES_AFTER = timedelta(hours=1)
"""How long a completed record is replayed when ``expires_after`` is not given."""
DEFAULT_IN_PROGRESS_TIMEOUT = timedelta(minutes=15)
"""The in-progress claim's lease without a Lambda context (Lambda's longest timeout)."""


class IdempotencyOptions(TypedDict, total=False):
    """The options of :class:`Idempotency`, as ``store.idempotency(namespace, **options)``
    takes them (defaults and rules: :meth:`IdempotencySettings.of`)."""

    expires_after: timedelta | float
    in_progress_timeout: timedelta | float
    cache_size: int


class IdempotencySettings(NamedTuple):
    """:class:`IdempotencyOptions` checked, in seconds, with their defaults filled in (a
    NamedTuple, not a dataclass: it loads in every idempotent handler's cold start)."""

    expires_after: float
    in_progress_timeout: float
    cache_size: int

    @classmethod
    def of(cls, options: IdempotencyOptions) -> IdempotencySettings:
        """Each option's default and rule, the one place they are written: results kept an
        hour, a 15-minute in-progress lease (without a Lambda context), no cache (at most ten
        million entries). Raises :class:`~stateless_state.errors.InvalidArgument` naming the
        first bad option, and :class:`TypeError` for an option that does not exist."""
        unknown = sorted(set(options) - set(IdempotencyOptions.__annotations__))
        if unknown:
            raise TypeError(f"Idempotency got unexpected options {', '.join(unknown)}")
        return cls(
            expires_after=domain.duration(
                options.get("expires_after", DEFAULT_EXPIRES_AFTER), "expires_after"
            ),
            in_progress_timeout=domain.duration(
                options.get("in_progress_timeout", DEFAULT_IN_PROGRESS_TIMEOUT),
                "in_progress_timeout",
            ),
            cache_size=domain.integer(
                options.get("cache_size", 0), "cache_size", minimum=0, maximum=10**7
            ),
        )


def _claimable(old: Mapping[str, Any], now: float, digest: str | None = None) -> bool:
    """:func:`_claimable_at` evaluated on a record as read: never claimed, expired, or released
    or in progress under a lease that has ended with the same payload (or none recorded)."""
    status = old.get("status")
    if status is None or float(old.get("ttl", math.inf)) <= now:
        return True
    if digest is not None and old.get("hash") not in (None, digest):
        return False
    return status == RELEASED or (
        status == IN_PROGRESS and float(old.get("lease_until", math.inf)) <= now
    )


def _claimable_at(now: float, digest: str | None = None) -> Condition:
    """The takeover's condition. :func:`_claimable` is this condition on an ALL_OLD: keep the
    two alike. A record a request with another payload started stays that payload's until it
    expires: a takeover by another payload would be the key reused for another request."""
    status = Attr("status")
    ended = status.eq(RELEASED) | (status.eq(IN_PROGRESS) & Attr("lease_until").le(now))
    if digest is not None:
        ended = ended & (Attr("hash").not_exists() | Attr("hash").eq(digest))
    return status.not_exists() | Attr("ttl").le(now) | ended


def _mismatch(key: IdempotencyKey) -> PayloadMismatch:
    return PayloadMismatch(
        f"idempotency key {key!r} was used before with a different payload; use a new "
        "key for a new request, or narrow `validate` to the fields that identify it"
    )


class Idempotency:
    """Claims on keys in one namespace. Build it with ``store.idempotency(namespace, ...)``, or
    use the :func:`~stateless_state.idempotency.idempotent` decorator, which drives it.

    Guarantee: while a key's record lives (``expires_after`` from completion), its body runs at
    most once to completion, whatever the interleaving of duplicates, retries and crashes; an
    in-progress claim can be taken over only after its lease (the Lambda's remaining time, or
    ``in_progress_timeout``) ends, and the stale claimant can then no longer complete or release.

    Cost: a first call is 2 writes (a conditional ``PutItem`` claim, and a ``PutItem`` of the
    completed record conditional on the claim's nonce) of 1 WCU each for small results; a
    replay of a completed key is 1 request (the failed conditional claim returns the record),
    or none from the optional in-process cache; taking over a released or expired claim is
    one more ``UpdateItem``.
    """

    def __init__(self, table: Table, namespace: str, **options: Unpack[IdempotencyOptions]) -> None:
        settings = IdempotencySettings.of(options)
        self.namespace = domain.name("namespace", namespace)
        self.expires_after = settings.expires_after
        self.in_progress_timeout = settings.in_progress_timeout
        self.table = table
        self._cache: ResultCache | None = None
        if settings.cache_size:
            # Loaded only when asked for: the cache is off by default.
            from .cache import ResultCache

            self._cache = ResultCache(settings.cache_size, settings.expires_after)

    def _key(self, key: IdempotencyKey) -> dict[str, str]:
        return record_key(self.namespace, key)

    def claim(
        self,
        key: IdempotencyKey,
        *,
        payload: Any = None,
        context: LambdaContext | None = None,
    ) -> Claim:
        """Claim ``key``, or get its stored result.

        Args:
            key: a non-empty string, or a JSON value of another type (a number, a bool, a list
                or an object): typed keys never share a record with string keys, and equal
                ones (``1`` and ``1.0``) share one (see
                :func:`~stateless_state.idempotency.canonical_key`).
            payload: when given, its hash is stored and compared: reusing the key with a
                different payload raises :class:`PayloadMismatch`.
            context: the Lambda context; the claim's lease ends when the invocation's time does
                (0 ms left is a lease that has already ended).

        Raises :class:`AlreadyInProgress` while another invocation holds an unexpired claim.

        Concurrency: of any number of concurrent first claims exactly one gets the key (the
        ``PutItem`` is conditional on the record being absent); a record that exists is taken
        over by an ``UpdateItem`` conditional on it being claimable (expired, or released or in
        progress under an ended lease, and then with the same payload hash or none: a crashed
        request's key is never taken over by another payload) that adds 1 to its fence, so
        fences strictly increase while a record lives. Deciding to take over on the failed
        ``PutItem``'s ``ALL_OLD`` is safe: the ``UpdateItem`` carries the whole claimable
        condition itself, and if the record changed in between its own ``ALL_OLD`` is judged
        instead. A record that TTL deleted starts again at fence 1: harmless, since completing
        and releasing are conditional on the claim's random nonce, never on the fence alone.

        Cost: the first claim of a key is one conditional ``PutItem`` (1 WCU for a small
        record); a replay or a claim still in progress is the same request failing its
        condition (billed 1 WCU); a takeover adds one conditional ``UpdateItem`` (1 WCU).
        """
        record = FencedClaim(
            self.table, self._key(key), holder_attr="owner", expiry_attr="lease_until"
        )
        digest = payload_hash(payload) if payload is not None else None
        cached = self._cache.get(record.key["pk"]) if self._cache is not None else None
        if cached is not None:
            if digest is not None and cached.digest not in (None, digest):
                raise _mismatch(key)
            return Claim.replayed(key, cached.result)
        now = clock.now()
        lease = (
            context.get_remaining_time_in_millis() / 1000.0
            if context is not None
            else self.in_progress_timeout
        )
        nonce = clock.token_hex(8)
        mine = Claim.owned(
            key,
            record,
            nonce=nonce,
            fence=1,
            lease_until=now + lease,
            digest=digest,
            expires_after=self.expires_after,
            cache=self._cache,
        )
        try:
            values = self._values(key, digest, now + lease)
            item = self._take(record, nonce, now, now + lease, values)
        except ConditionFailed as e:
            old = e.old or {}
        except Exception:
            # The claim may have been applied with its response lost for good; undo it if so, or
            # the key would stay in progress until the lease ends.
            with contextlib.suppress(Exception):
                mine.release()
            raise
        else:
            mine._took(item)
            return mine
        return self._existing(key, digest, record, old)

    def record(self, key: IdempotencyKey) -> dict[str, Any] | None:
        """The key's record as stored now (``status``, ``result`` as JSON, ``fence``...), or
        None: for operators and tests. One consistent ``GetItem``; claims nothing."""
        return self.table.get(self._key(key))

    def _values(self, key: IdempotencyKey, digest: str | None, until: float) -> dict[str, Any]:
        """What a claim writes besides the owner, its lease and the fence."""
        values: dict[str, Any] = {
            "status": IN_PROGRESS,
            "ttl": math.ceil(until + self.expires_after),
            "namespace": self.namespace,
        }
        if isinstance(key, str):
            values["key"] = key
        if digest:
            values["hash"] = digest
        return values

    @staticmethod
    def _take(
        record: FencedClaim, nonce: str, now: float, until: float, values: dict[str, Any]
    ) -> dict[str, Any]:
        """The record as the claim ``nonce`` took it: created at fence 1 where it is absent, else
        taken over where it is claimable. Raises ConditionFailed with the record where it is
        not."""
        try:
            return record.create(nonce=nonce, until=until, also_set=values)
        except ConditionFailed as e:
            if not _claimable(e.old or {}, now, values.get("hash")):
                raise
        dropped = ("result",) if "hash" in values else ("result", "hash")
        return record.take(
            nonce=nonce,
            until=until,
            claimable=_claimable_at(now, values.get("hash")),
            also_set=values,
            also_remove=dropped,
        )

    def _existing(
        self, key: IdempotencyKey, digest: str | None, record: FencedClaim, old: dict[str, Any]
    ) -> Claim:
        """The claim of a record someone else holds or completed: a replay, or an error."""
        if digest is not None and old.get("hash") not in (None, digest):
            raise _mismatch(key)
        if old.get("status") == COMPLETED:
            result = json.loads(old["result"])
            if self._cache is not None:
                ttl = float(old.get("ttl", 0))
                self._cache.put(record.key["pk"], old["result"], old.get("hash"), ttl)
            return Claim.replayed(key, result, int(old.get("fence", 0)))
        raise AlreadyInProgress(
            f"idempotency key {key!r} is being processed by another invocation (claim "
            f"{old.get('fence')}, lease until {clock.describe(old.get('lease_until'))}); retry "
            "later"
        )
