"""Idempotency keys: run a body once per key, replay its stored result to every duplicate.

One item per key, ``pk=idem#<sha256 of the key's preimage>, sk=idem``: ``status``
(``in_progress`` | ``completed`` | ``released``), ``owner`` (a random nonce per claim), ``fence``
(1 for a record's first claim, one more with every takeover), ``lease_until`` (when an
in-progress claim may be taken over), ``hash`` (of the validated payload), ``result`` (JSON),
``ttl``, ``namespace`` and, for a string key, ``key``.

Typed keys: a string key's preimage is ``keys.join(namespace, key)``, as in every earlier
version, so string-keyed records stay valid across upgrades. Any other key (a number, a bool,
a list or an object selected from an event) has the preimage ``keys.join(namespace, "json",
canonical JSON)`` (see :func:`canonical_key`). :func:`~stateless_state.keys.join` escapes every
part so that it contains no ``#`` and can be unescaped back: splitting a preimage on ``#`` gives
back its parts. A string key's preimage has two parts, a typed key's three, so no typed key
ever shares a record with a string key (``1`` and ``"1"`` are two records, and so are ``{"a":
1}`` and the hex of any hash of it); two typed keys share one exactly when their canonical JSON
is equal.

Fenced: completing and releasing are conditional on ``owner`` still being this claim's nonce, so
an invocation that outlived its lease (a zombie) can neither overwrite nor delete the record of
the invocation that took over. That closes the hole where Powertools' unconditional success update
and delete let a late first attempt clobber a newer owner.

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
import contextvars
import functools
import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypedDict, TypeVar

from . import domain, keys
from .codec import to_item, to_json
from .errors import (
    AlreadyInProgress,
    InvalidArgument,
    ItemTooLarge,
    LeaseLost,
    NotSerializable,
    PayloadMismatch,
)
from .expressions import Attr, Condition, Update, render
from .retry import LambdaContext, retrying, transient
from .table import ConditionFailed, Table, TransactionCanceled
from .transaction import MAX_ACTIONS, Transaction, check_actions, own_write

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = [
    "Claim",
    "Idempotency",
    "IdempotencyKey",
    "IdempotencyOptions",
    "IdempotentOptions",
    "canonical_key",
    "commit_with_completion",
    "from_powertools",
    "idempotent",
    "selector",
]

IdempotencyKey: TypeAlias = "str | int | float | bool | Decimal | Sequence[Any] | Mapping[str, Any]"
"""What identifies a request: a non-empty string, or a JSON value of another type (see
:func:`canonical_key`); the two never share a record."""

P = ParamSpec("P")
R = TypeVar("R")

MAX_RESULT_BYTES = 350_000
DEFAULT_EXPIRES_AFTER = timedelta(hours=1)
DEFAULT_IN_PROGRESS_TIMEOUT = timedelta(minutes=15)
_IN_PROGRESS, _COMPLETED, _RELEASED = "in_progress", "completed", "released"


def payload_hash(payload: Any) -> str:
    """SHA-256 of the payload's canonical JSON (non-JSON leaves hashed by their repr)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


_MAX_DEPTH = 64
# Python's own bound on int-to-text conversion: a number longer than this written out is
# refused rather than turned into megabytes of key text.
_MAX_DIGITS = 4_300


def canonical_key(value: Any) -> str:
    """The canonical JSON that a typed (non-string) idempotency key is recorded under: equal
    keys give equal text, distinct keys distinct text.

    Objects' members are sorted by name, no spaces, strings escaped to ASCII, tuples are
    lists. Numbers are the decimal numbers JSON writes, so ``1``, ``1.0`` and ``Decimal("1.00")``
    are one key (as DynamoDB's own numbers are) and a float is the shortest decimal that reads
    back as it (``repr``): ``0.1`` is JSON's ``0.1``. Powertools hashes ``json.dumps`` of the
    key, so there ``1`` and ``1.0`` are two keys (and a ``Decimal`` key is its string); here a
    number means its value whatever a producer's serializer did to it. ``True`` is not ``1``.

    Raises :class:`InvalidArgument` for NaN or an infinity, an object member name that is not a
    string, a number over 4,300 digits written out, nesting deeper than 64 levels (a value
    containing itself included), or a leaf that is not JSON (a datetime, bytes...). Cost: CPU
    only, linear in the key's size.
    """
    return _canonical(value, 0)


def _canonical(value: Any, depth: int) -> str:
    if depth > _MAX_DEPTH:
        raise InvalidArgument(
            f"an idempotency key nests deeper than {_MAX_DEPTH} levels (or contains itself); "
            "select a flatter key"
        )
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        names = list(value)
        if not all(isinstance(name, str) for name in names):
            raise InvalidArgument(
                f"an idempotency key's object has member names {names[:5]!r} that are not all "
                "strings; JSON names are strings (1 and '1' would be one name): convert them"
            )
        members = (f"{json.dumps(n)}:{_canonical(value[n], depth + 1)}" for n in sorted(names))
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v, depth + 1) for v in value) + "]"
    return _number(value)


def _number(value: Any) -> str:
    """A number as positional decimal text without trailing zeros: one text per value."""
    # Only a typed key pays for decimal (boto3 has usually imported it already).
    from decimal import Decimal

    if isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float) and math.isfinite(value):
        d = Decimal(repr(value))
    elif isinstance(value, Decimal) and value.is_finite():
        d = value
    elif isinstance(value, float | Decimal):
        raise InvalidArgument(
            f"an idempotency key cannot be (or contain) {value!r}: NaN and infinities equal no "
            "request; select a field that identifies one"
        )
    else:
        raise InvalidArgument(
            f"an idempotency key cannot contain a {type(value).__name__}: select or return a "
            "str, int, float, bool, or lists and dicts of them (and None)"
        )
    _, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if len(digits) + abs(exponent) > _MAX_DIGITS:
        raise InvalidArgument(
            f"an idempotency key holds a number of more than {_MAX_DIGITS} digits written "
            "out; select a shorter field, or pass it as a string"
        )
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _preimage(namespace: str, key: Any) -> str:
    """What a key's record digest is taken of (the module docstring proves it injective)."""
    if isinstance(key, str):
        if not key:
            raise InvalidArgument("idempotency key must be a non-empty str or a JSON value")
        return keys.join(namespace, key)
    if key is None:
        raise InvalidArgument("idempotency key must be a non-empty str or a JSON value, not None")
    return keys.join(namespace, "json", canonical_key(key))


@dataclass(slots=True)
class Claim:
    """The outcome of :meth:`Idempotency.claim`.

    ``replay`` True: the key was completed earlier and ``result`` is the stored result (falsy
    results included); call nothing else. ``replay`` False: this caller owns the key and must
    end the claim with :meth:`complete` or :meth:`release`.
    """

    key: IdempotencyKey
    replay: bool
    result: Any = None
    fence: int = 0
    lease_until: float = 0.0
    _owner: Idempotency | None = field(default=None, repr=False)
    _nonce: str = field(default="", repr=False)
    _hash: str | None = field(default=None, repr=False)
    _record: dict[str, str] = field(default_factory=dict, repr=False)

    def complete(self, result: Any, *, also: Sequence[Mapping[str, Any]] = ()) -> None:
        """Store ``result`` and mark the key completed; with ``also``, commit those writes in the
        same transaction, so they happen exactly once per key: if the claim was taken over, or
        one of them fails its condition, nothing is written at all.

        Args:
            also: your own ``TransactWriteItems`` entries (any table; at most 99, DynamoDB's
                100-action limit less the completion), e.g. built from PynamoDB models by
                :mod:`stateless_state.pynamodb`.

        Cost: one conditional ``UpdateItem`` (1 WCU for small results); with ``also``, one
        ``TransactWriteItems`` of ``1 + len(also)`` items (2 WCU per item per started KB).

        Raises :class:`NotSerializable` or :class:`ItemTooLarge` (the claim is released, nothing
        is stored: the record, its key included, must fit DynamoDB's 400 KB), or
        :class:`LeaseLost` when another invocation took the key over. When one of ``also``'s
        conditions fails, :class:`~stateless_state.errors.TransactionCanceled` (``reasons[i +
        1]`` explains your i-th write) and the claim is released, so a retry can run the body
        again. Transient failures and transaction conflicts that outlast botocore's retries are
        retried (up to 4 times, within the lease): losing this write would let the body run
        again once the lease ends. An ambiguous write is recognised by the claim's nonce, never
        applied twice.
        """
        owner = self._require_owner()
        try:
            text = to_json(result, "the result")
        except NotSerializable:
            self.release()
            raise
        if len(text.encode()) > MAX_RESULT_BYTES:
            self.release()
            raise ItemTooLarge(
                f"the result for key {self.key!r} is {len(text.encode())} bytes of JSON; at most "
                f"{MAX_RESULT_BYTES} fit in a DynamoDB item. Store it in S3 and return its key."
            )
        # The one write whose loss would make the body run twice (the key would be taken over
        # when the lease ends), and it is safe to repeat (conditional on this claim's nonce): so
        # it gets a few more tries after botocore gives up, within the claim's lease.
        lease_left = self.lease_until - time.time()
        try:
            tx = owner._completion(self, text, also) if also else None

            def write() -> None:
                if tx is not None:
                    owner._commit_completion(self, tx)
                else:
                    owner._complete(self, text)

            try:
                write()
            except Exception as e:
                # tenacity is imported only for a second attempt, never on the common path.
                if not transient(e):
                    raise
                for attempt in retrying((), attempts=3, deadline=time.monotonic() + lease_left):
                    with attempt:
                        write()
        except LeaseLost:
            raise
        except Exception:
            # Refused (a write DynamoDB rejects as a whole, a missing table, a failed condition
            # of yours) or still failing after the retries: nothing of this completion is
            # stored, and keeping the claim would answer every retry with AlreadyInProgress
            # until the lease ends. The release is conditional on this claim's nonce and on
            # the record being in progress, so it never undoes a completion that landed.
            self.release()
            raise
        owner._cache_put(self._record, result, self._hash)

    def release(self) -> bool:
        """Give the key up so a retry can run the body. One conditional ``UpdateItem``.

        Returns False when the key had already passed to another invocation (nothing changed).
        """
        return self._require_owner()._release(self)

    @property
    def owner_token(self) -> str:
        """The random token this claim wrote as the record's ``owner``: a write conditional on
        ``owner`` being this token (and ``status`` being ``in_progress``) happens only while
        this claim owns the key. Empty for a replay."""
        return "" if self.replay else self._nonce

    @property
    def record_key(self) -> dict[str, str]:
        """The key (``pk``, ``sk``) of the key's record in the state table."""
        self._require_owner()
        return dict(self._record)

    @property
    def table_name(self) -> str:
        """The state table that holds the record."""
        return self._require_owner()._t.name

    def condition_check(self) -> dict[str, Any]:
        """A ``TransactWriteItems`` ``ConditionCheck`` entry that holds only while this claim
        owns the key, for a transaction you build yourself: your writes then never land
        from an invocation whose claim was taken over. (For exactly-once writes commit them
        with the completion instead: ``complete(result, also=...)``.)"""
        tx = Transaction(self._require_owner()._t)
        tx.check(self.record_key, _owned(self._nonce))
        return tx.actions[0]

    def _require_owner(self) -> Idempotency:
        if self._owner is None or self.replay:
            raise InvalidArgument(
                "this claim is a replay of a completed key; there is nothing to end"
            )
        return self._owner


class IdempotencyOptions(TypedDict, total=False):
    """The options of :class:`Idempotency`, as ``store.idempotency(namespace, **options)``
    takes them (defaults: results kept an hour, a 15-minute in-progress lease, no cache)."""

    expires_after: timedelta | float
    in_progress_timeout: timedelta | float
    cache_size: int


def _claimable(old: Mapping[str, Any], now: float) -> bool:
    """The takeover's condition (:meth:`Idempotency._take_over`) on a record as read: never
    claimed, released, expired, or in progress under a lease that has ended."""
    status = old.get("status")
    return (
        status is None
        or status == _RELEASED
        or float(old.get("ttl", math.inf)) <= now
        or (status == _IN_PROGRESS and float(old.get("lease_until", math.inf)) <= now)
    )


def _owned(nonce: str) -> Condition:
    return Attr("owner").eq(nonce) & Attr("status").eq(_IN_PROGRESS)


class IdempotentOptions(TypedDict, total=False):
    """The keyword arguments of :func:`idempotent` (after ``store``)."""

    key: str | Callable[..., IdempotencyKey | None] | None
    validate: bool | str | Callable[..., Any] | None
    expires_after: timedelta | float
    in_progress_timeout: timedelta | float
    namespace: str | None
    cache_size: int
    raise_on_missing_key: bool


def from_powertools(config: Any) -> IdempotentOptions:
    """The :func:`idempotent` options that mean what a Powertools ``IdempotencyConfig`` means:
    ``@idempotent(store, **from_powertools(config))``.

    ``event_key_jmespath`` becomes ``key`` and ``payload_validation_jmespath`` ``validate`` (the
    same JMESPath, Powertools' ``powertools_json`` and friends included; empty means the whole
    event and no validation, as there), ``raise_on_no_idempotency_key`` becomes
    ``raise_on_missing_key`` (Powertools' default, False, kept), ``expires_after_seconds``
    ``expires_after``, and ``use_local_cache``/``local_cache_max_items`` ``cache_size``.
    ``hash_function`` is not needed (keys and payloads are hashed with SHA-256). A config with
    ``jmespath_options`` or a ``response_hook`` raises :class:`InvalidArgument`: neither has a
    counterpart; use a key function, or wrap the decorated function.
    """
    if getattr(config, "jmespath_options", None):
        raise InvalidArgument(
            "IdempotencyConfig.jmespath_options has no counterpart here; pass key= a function "
            "of the event that does what your custom JMESPath functions do"
        )
    if getattr(config, "response_hook", None) is not None:
        raise InvalidArgument(
            "IdempotencyConfig.response_hook has no counterpart here; wrap the decorated "
            "function to see (or change) what a replay returns"
        )
    try:
        key = config.event_key_jmespath or None
        validate = config.payload_validation_jmespath or None
        options = IdempotentOptions(
            key=key,
            validate=validate,
            raise_on_missing_key=bool(config.raise_on_no_idempotency_key),
            expires_after=float(config.expires_after_seconds),
            cache_size=int(config.local_cache_max_items) if config.use_local_cache else 0,
        )
    except AttributeError as e:
        raise InvalidArgument(
            f"from_powertools() takes a Powertools IdempotencyConfig; {e}"
        ) from None
    for expression in (key, validate):
        if expression is not None:
            selector(expression, "event_key_jmespath")
    return options


def _mismatch(key: IdempotencyKey) -> PayloadMismatch:
    return PayloadMismatch(
        f"idempotency key {key!r} was used before with a different payload; use a new "
        "key for a new request, or narrow `validate` to the fields that identify it"
    )


class Idempotency:
    """Claims on keys in one namespace. Build it with ``store.idempotency(namespace, ...)``, or
    use the :func:`idempotent` decorator, which drives it.

    Guarantee: while a key's record lives (``expires_after`` from completion), its body runs at
    most once to completion, whatever the interleaving of duplicates, retries and crashes; an
    in-progress claim can be taken over only after its lease (the Lambda's remaining time, or
    ``in_progress_timeout``) ends, and the stale claimant can then no longer complete or release.

    Cost: a first call is 2 writes (a conditional ``PutItem`` claim, an ``UpdateItem``
    completion) of 1 WCU each for small results; a replay of a completed key is 1 request (the
    failed conditional claim returns the record), or none from the optional in-process cache;
    taking over a released or expired claim is one more ``UpdateItem``.
    """

    def __init__(
        self,
        table: Table,
        namespace: str,
        *,
        expires_after: timedelta | float = DEFAULT_EXPIRES_AFTER,
        in_progress_timeout: timedelta | float = DEFAULT_IN_PROGRESS_TIMEOUT,
        cache_size: int = 0,
    ) -> None:
        self.namespace = domain.name("namespace", namespace)
        self.expires_after = domain.duration(expires_after, "expires_after")
        self.in_progress_timeout = domain.duration(in_progress_timeout, "in_progress_timeout")
        self._t = table
        self._cache_size = domain.integer(cache_size, "cache_size", minimum=0, maximum=10**7)
        self._cache: OrderedDict[str, tuple[Any, float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, key: IdempotencyKey) -> dict[str, str]:
        preimage = _preimage(self.namespace, key)
        try:
            digest = hashlib.sha256(preimage.encode()).hexdigest()
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"idempotency key {key!r} contains a lone surrogate and cannot be stored"
            ) from None
        return keys.idempotency(digest).item()

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
                ones (``1`` and ``1.0``) share one (see :func:`canonical_key`).
            payload: when given, its hash is stored and compared: reusing the key with a
                different payload raises :class:`PayloadMismatch`.
            context: the Lambda context; the claim's lease ends when the invocation's time does
                (0 ms left is a lease that has already ended).

        Raises :class:`AlreadyInProgress` while another invocation holds an unexpired claim.

        Concurrency: of any number of concurrent first claims exactly one gets the key (the
        ``PutItem`` is conditional on the record being absent); a record that exists is taken
        over by an ``UpdateItem`` conditional on it being claimable (released, expired, or in
        progress under an ended lease) that adds 1 to its fence, so fences strictly increase
        while a record lives. Deciding to take over on the failed ``PutItem``'s ``ALL_OLD`` is
        safe: the ``UpdateItem`` carries the whole claimable condition itself, and if the record
        changed in between its own ``ALL_OLD`` is judged instead. A record that TTL deleted
        starts again at fence 1: harmless, since completing and releasing are conditional on
        the claim's random nonce, never on the fence alone.

        Cost: the first claim of a key is one conditional ``PutItem`` (1 WCU for a small
        record); a replay or a claim still in progress is the same request failing its
        condition (billed 1 WCU); a takeover adds one conditional ``UpdateItem`` (1 WCU).
        """
        record = self._key(key)
        digest = payload_hash(payload) if payload is not None else None
        cached = self._cache_get(record)
        if cached is not None:
            if digest is not None and cached[1] not in (None, digest):
                raise _mismatch(key)
            return Claim(key, True, cached[0], _record=record)
        now = time.time()
        lease = (
            context.get_remaining_time_in_millis() / 1000.0
            if context is not None
            else self.in_progress_timeout
        )
        nonce = secrets.token_hex(8)
        values: dict[str, Any] = {
            "status": _IN_PROGRESS,
            "owner": nonce,
            "lease_until": now + lease,
            "ttl": math.ceil(now + lease + self.expires_after),
            "namespace": self.namespace,
        }
        if isinstance(key, str):
            values["key"] = key
        if digest:
            values["hash"] = digest
        mine = Claim(key, False, None, 1, now + lease, self, nonce, digest, record)
        try:
            old = self._put_claim(record, values)
            if (
                old is not None
                and not own_write(old, nonce, attribute="owner")
                and _claimable(old, now)
            ):
                old, mine.fence = self._take_over(record, values, now)
        except Exception:
            # The claim may have been applied with its response lost for good; undo it if so, or
            # the key would stay in progress until the lease ends.
            with contextlib.suppress(Exception):
                self._release(mine)
            raise
        return mine if old is None else self._existing(mine, old)

    def record(self, key: IdempotencyKey) -> dict[str, Any] | None:
        """The key's record as stored now (``status``, ``result`` as JSON, ``fence``...), or
        None: for operators and tests. One consistent ``GetItem``; claims nothing."""
        return self._t.get(self._key(key))

    def _put_claim(self, record: dict[str, str], values: dict[str, Any]) -> dict[str, Any] | None:
        """The first claim of a record: one ``PutItem`` with fence 1, only if the record is
        absent. None when it landed, else the record as it was (``ALL_OLD``)."""
        try:
            self._t.call(
                "PutItem",
                TableName=self._t.name,
                Item=to_item({**record, **values, "fence": 1}),
                **render(condition=Attr("pk").not_exists()),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as e:
            return e.old or {}
        return None

    def _take_over(
        self, record: dict[str, str], values: dict[str, Any], now: float
    ) -> tuple[dict[str, Any] | None, int]:
        """Claim a record that exists: ``(None, new fence)`` when it was claimable, else
        ``(ALL_OLD, 0)``."""
        update = Update().set_all(values).add("fence", 1).remove("result")
        if "hash" not in values:
            update.remove("hash")
        status = Attr("status")
        # _claimable below is this condition, evaluated on an ALL_OLD: keep the two alike.
        claimable = (
            status.not_exists()
            | status.eq(_RELEASED)
            | Attr("ttl").le(now)
            | (status.eq(_IN_PROGRESS) & Attr("lease_until").le(now))
        )
        try:
            after = self._t.update_item(record, update, condition=claimable, returns="UPDATED_NEW")
        except ConditionFailed as e:
            return e.old or {}, 0
        return None, int((after or {})["fence"])

    def _existing(self, mine: Claim, old: dict[str, Any]) -> Claim:
        key, digest = mine.key, mine._hash
        if own_write(old, mine._nonce, attribute="owner"):
            # Our own claim, applied and then retried by botocore after a lost response.
            mine.fence, mine.lease_until = int(old["fence"]), float(old["lease_until"])
            return mine
        if digest is not None and old.get("hash") not in (None, digest):
            raise _mismatch(key)
        if old.get("status") == _COMPLETED:
            result = json.loads(old["result"])
            self._cache_put(mine._record, result, old.get("hash"), float(old.get("ttl", 0)))
            return Claim(key, True, result, int(old.get("fence", 0)), _record=mine._record)
        raise AlreadyInProgress(
            f"idempotency key {key!r} is being processed by another invocation (claim "
            f"{old.get('fence')}, lease until {old.get('lease_until')}); retry later"
        )

    def _fenced_update(
        self, claim: Claim, update: Update, condition: Condition | None = None
    ) -> None:
        """One ``UpdateItem`` of the claim's record, only while ``claim`` still owns it."""
        owned = Attr("owner").eq(claim._nonce)
        self._t.update_item(
            claim._record,
            update,
            condition=owned if condition is None else owned & condition,
        )

    def _complete(self, claim: Claim, text: str) -> None:
        try:
            self._fenced_update(claim, Update().set_all(self._done(text)))
        except ConditionFailed:
            raise self._lost(claim) from None

    def _completion(
        self, claim: Claim, text: str, also: Sequence[Mapping[str, Any]]
    ) -> Transaction:
        """The completion and the caller's writes as one transaction (checked before any
        request). The completion is also conditional on the record being in progress, so a
        retry that finds it completed by this very claim knows its first attempt landed."""
        tx = Transaction(self._t)
        tx.update(
            claim._record,
            Update().set_all(self._done(text)),
            condition=_owned(claim._nonce),
            return_old=True,
        )
        tx.raw(*also)
        if len(tx) > MAX_ACTIONS:
            raise InvalidArgument(
                f"idempotency key {claim.key!r}: {len(also)} extra writes and the completion "
                f"exceed DynamoDB's {MAX_ACTIONS} actions per transaction; nothing was written"
            )
        return tx

    def _commit_completion(self, claim: Claim, tx: Transaction) -> None:
        try:
            tx.commit()
        except TransactionCanceled as e:
            reason = e.reasons[0]
            if reason.code != "ConditionalCheckFailed":
                raise
            old = reason.item or {}
            if own_write(old, claim._nonce, attribute="owner") and old.get("status") == _COMPLETED:
                return
            raise self._lost(claim) from None

    def _commit_unguarded(self, writes: list[dict[str, Any]]) -> None:
        """The writes of a body run without idempotency (its event had no key), as one
        transaction of their own."""
        tx = Transaction(self._t)
        tx.raw(*writes)
        tx.commit()

    def _done(self, text: str) -> dict[str, Any]:
        return {
            "status": _COMPLETED,
            "result": text,
            "ttl": math.ceil(time.time() + self.expires_after),
        }

    @staticmethod
    def _lost(claim: Claim) -> LeaseLost:
        return LeaseLost(
            f"idempotency key {claim.key!r}: this invocation's claim expired and another took "
            "the key over; the result was not stored"
        )

    def _release(self, claim: Claim) -> bool:
        released = Update().set_all({"status": _RELEASED, "lease_until": 0})
        try:
            self._fenced_update(claim, released, Attr("status").is_in(_IN_PROGRESS, _RELEASED))
        except ConditionFailed:
            return False
        return True

    def _cache_get(self, record: dict[str, str]) -> tuple[Any, str | None] | None:
        """``(result, payload hash)`` of a cached completed key, or None. Cached by the
        record's key, not the key itself: ``1``, ``1.0`` and ``True`` are one dict key."""
        if not self._cache_size:
            return None
        key = record["pk"]
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[1] <= time.time():
                self._cache.pop(key, None)
                return None
            self._cache.move_to_end(key)
            return (hit[0], hit[2])

    def _cache_put(
        self, record: dict[str, str], result: Any, digest: str | None, until: float | None = None
    ) -> None:
        if not self._cache_size:
            return
        key = record["pk"]
        with self._lock:
            self._cache[key] = (result, until or time.time() + self.expires_after, digest)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _path(obj: Any, path: str) -> Any:
    """The value at a dotted path (``Records.0.messageId``), None where it leads nowhere."""
    for part in path.split("."):
        try:
            obj = obj[int(part)] if isinstance(obj, list) else obj[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return obj


_DOTTED = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+)*")
# A validate expression that selects nothing compares as this value (as Powertools hashes
# null), distinct from every payload a JSON event can carry.
_SELECTED_NOTHING = "\x00nothing selected"


def selector(expression: str, what: str = "key") -> Callable[[Any], Any]:
    """A function that picks a value out of an event by ``expression``: a JMESPath expression
    (``body.order_id``, ``Records[0].messageId``, ``powertools_json(body).id``), or one of the
    dotted paths of earlier versions (``Records.0.messageId``, ``headers.x-request-id``) where
    it is not valid JMESPath. Either selects None where the event has nothing.

    Powertools' JMESPath functions ``powertools_json``, ``powertools_base64`` and
    ``powertools_base64_gzip`` are available, so its ``event_key_jmespath`` works unchanged.
    Raises :class:`InvalidArgument` for an expression that is neither.
    """
    from . import _jmespath

    if not isinstance(expression, str) or not expression:
        raise InvalidArgument(f"{what} must be a non-empty JMESPath expression, got {expression!r}")
    try:
        compiled = _jmespath.compile(expression)
    except _jmespath.ParseError as e:
        if _DOTTED.fullmatch(expression):
            return lambda event: _path(event, expression)
        raise InvalidArgument(
            f"{what} {expression!r} is neither a JMESPath expression nor a dotted path: {e}"
        ) from None
    return compiled


_log = logging.getLogger("stateless_state.idempotency")


def _selected_key(value: Any) -> IdempotencyKey | None:
    """The idempotency key a selected value stands for (a string as it is, anything else
    typed); None when it selects nothing, which must never become one record shared by every
    such event: None, an empty string, or a list or object whose every member is null (a
    multi-select such as ``[order_id, customer]`` or ``{o: order_id}`` over an event that has
    none of them, which is what Powertools counts as missing too). A partly null multi-select
    is a key."""
    if value is None or (isinstance(value, str) and not value):
        return None
    members = value.values() if isinstance(value, Mapping) else value
    if isinstance(value, Mapping | list | tuple) and all(m is None for m in members):
        return None
    selected: IdempotencyKey = value
    return selected


_pending: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "stateless_state_completion_writes", default=None
)


def commit_with_completion(*actions: Mapping[str, Any]) -> None:
    """Inside the body of an :func:`idempotent` function: commit ``actions``
    (``TransactWriteItems`` entries, e.g. from :mod:`stateless_state.pynamodb`) in the same
    transaction as the key's completion, so they are written exactly once per key.

    Nothing is written when the body returns: if this invocation's claim was taken over
    (it outlived its lease), the completion and these writes fail together with
    :class:`LeaseLost`; if the body raises, they are dropped with the claim. Each entry is
    checked for shape now (:class:`InvalidArgument` otherwise); at most 99 in all. A body run
    without idempotency (no key in its event, ``raise_on_missing_key=False``) has no
    completion: its writes commit as one transaction of their own when it returns. Call it from
    the body's own thread or task: the pending writes live in a context variable, which work
    handed to a thread pool does not see.
    """
    pending = _pending.get()
    if pending is None:
        raise InvalidArgument(
            "commit_with_completion() adds writes to the completion of an @idempotent "
            "function and must be called inside its body; elsewhere pass them to "
            "Claim.complete(result, also=...)"
        )
    pending.extend(check_actions(actions))


def _collecting(
    fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> tuple[R, list[dict[str, Any]]]:
    """``fn``'s result and the writes its body handed to :func:`commit_with_completion`."""
    writes: list[dict[str, Any]] = []
    token = _pending.set(writes)
    try:
        return fn(*args, **kwargs), writes
    finally:
        _pending.reset(token)


def _is_context(obj: Any) -> bool:
    return callable(getattr(obj, "get_remaining_time_in_millis", None))


def idempotent(
    store: Any,
    *,
    key: str | Callable[..., IdempotencyKey | None] | None = None,
    validate: bool | str | Callable[..., Any] | None = None,
    expires_after: timedelta | float = DEFAULT_EXPIRES_AFTER,
    in_progress_timeout: timedelta | float = DEFAULT_IN_PROGRESS_TIMEOUT,
    namespace: str | None = None,
    cache_size: int = 0,
    raise_on_missing_key: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make a Lambda handler ``(event, context)`` or a plain function idempotent.

    Args:
        key: what identifies a request. A JMESPath expression into the event
            (``"requestContext.requestId"``, ``"Records[0].messageId"``,
            ``"powertools_json(body).order_id"``; dotted paths such as
            ``"Records.0.messageId"`` still work, see :func:`selector`), a callable given the
            event (handlers) or the function's arguments (plain functions), or None for a hash
            of the whole payload. A plain function's expression applies to its first argument.
            What it selects is the key: a string as it is, a number, bool, list or object typed
            (``1`` and ``"1"`` are two requests, ``1`` and ``1.0`` one: see
            :func:`canonical_key`).
        validate: also check that a repeated key carries the same payload: True for the whole
            payload, or an expression or callable selecting the part to compare (an expression
            that selects nothing compares as null). A mismatch raises
            :class:`PayloadMismatch`.
        expires_after: how long a completed result is kept and replayed.
        in_progress_timeout: the claim's lease when there is no Lambda context (with one, the
            lease ends with the invocation's remaining time).
        namespace: separates keys of different functions; defaults to the function's qualified
            name.
        cache_size: keep up to this many completed results in process memory (off by default).
            A cache hit still checks ``validate``'s payload.
        raise_on_missing_key: when ``key`` selects nothing (a missing path, JSON ``null``, an
            empty string, or a list or object all of whose members are null, such as the
            multi-select ``[order_id, customer]`` over an event with neither), raise
            :class:`InvalidArgument` (the default) rather than let unrelated events share one
            record; False runs the body without idempotency, for each such event, and logs a
            warning (Powertools' ``raise_on_no_idempotency_key=False``).

    The body runs at most once per key while the record lives; duplicates get the stored result
    (falsy ones too) or :class:`AlreadyInProgress` while the first is still running. If the body
    raises, the claim is released and the exception propagates, so a retry can run it. Writes
    the body hands to :func:`commit_with_completion` commit with the completion: exactly once
    per key, even when an invocation outlives its lease and a retry takes over.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        # Duck-typed so this primitive does not import the Store that builds it.
        if not callable(getattr(store, "idempotency", None)):
            raise InvalidArgument("idempotent(store, ...) needs a stateless_state.Store")
        keys = store.idempotency(
            namespace or f"{fn.__module__}.{fn.__qualname__}",
            expires_after=expires_after,
            in_progress_timeout=in_progress_timeout,
            cache_size=cache_size,
        )

        pick = selector(key, "key") if isinstance(key, str) else None
        check = selector(validate, "validate") if isinstance(validate, str) else None

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            handler = len(args) == 2 and not kwargs and _is_context(args[1])
            payload: Any = args[0] if handler else {"args": list(args), "kwargs": kwargs}
            context: Any = args[1] if handler else None
            event: Any = payload if handler else args[0] if args else kwargs
            selected: Any
            if key is None:
                selected = payload_hash(payload)
            elif pick is not None:
                selected = pick(event)
            else:
                assert callable(key)
                selected = key(payload) if handler else key(*args, **kwargs)
            k = _selected_key(selected)
            if k is None:
                what = f"key {key!r}" if isinstance(key, str) else "the key function"
                if raise_on_missing_key:
                    raise InvalidArgument(
                        f"{what} selects no idempotency key in this event (missing, null, "
                        "empty, or every field of a multi-select null); fix the expression, or "
                        "pass raise_on_missing_key=False to run such events without idempotency"
                    )
                _log.warning("%s selects no idempotency key; running without idempotency", what)
                unkeyed, writes = _collecting(fn, *args, **kwargs)
                # No completion to commit them with: they land as the body ran, unguarded.
                keys._commit_unguarded(writes)
                return unkeyed
            checked: Any = None
            if validate is True:
                checked = payload
            elif check is not None:
                checked = check(event)
                if checked is None:
                    checked = _SELECTED_NOTHING
            elif callable(validate):
                checked = validate(payload) if handler else validate(*args, **kwargs)
            claim = keys.claim(k, payload=checked, context=context)
            if claim.replay:
                result: R = claim.result
                return result
            try:
                result, writes = _collecting(fn, *args, **kwargs)
            except BaseException:
                claim.release()
                raise
            claim.complete(result, also=writes)
            return result

        return wrapper

    return decorate
