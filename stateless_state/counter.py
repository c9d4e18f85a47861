"""Conditional-write counters: exact under concurrency, once per token, never past a limit.

Item layout (single table, keys from :mod:`stateless_state.keys`): the counter is
``pk=counter#<name>, sk=counter`` with the value in ``v``; each token is
``pk=counter#<name>, sk=token#<token>`` and records the Count it produced, so a replay is answered
from it. Token items expire by TTL after ``token_ttl``. A counter that has ever gone down carries
``fell`` (until :meth:`Counter.reset`): from then on its crossings are not unique, and
:meth:`Count.crossed` says so instead of answering wrongly.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict, Unpack

from . import clock, domain, keys
from .errors import InvalidArgument, LimitExceeded
from .expressions import Attr, Update
from .retry import LambdaContext
from .table import ConditionFailed, Table, TransactionCanceled
from .transaction import Transaction, check_actions, own_write

__all__ = ["Count", "Counter", "CounterOptions", "CounterSettings", "ShardedCounter"]

MAX_SHARDS = 100
DEFAULT_TOKEN_TTL = timedelta(days=7)


class CounterOptions(TypedDict, total=False):
    """The options of :class:`Counter` and :class:`ShardedCounter`, as the store's
    ``counter(name, **options)`` takes them: how long a token is remembered (``token_ttl``,
    default 7 days). Their defaults and checks are :meth:`CounterSettings.of`."""

    token_ttl: timedelta | float


@dataclass(frozen=True, slots=True)
class CounterSettings:
    """A counter's options checked and completed with their defaults (the one place of both):
    ``token_ttl`` in seconds."""

    token_ttl: float

    @classmethod
    def of(cls, options: CounterOptions) -> CounterSettings:
        """The settings ``options`` ask for; :class:`InvalidArgument` for a bad value,
        :class:`TypeError` for an option counters do not take."""
        domain.options(options, CounterOptions.__optional_keys__, "a counter")
        return cls(domain.duration(options.get("token_ttl", DEFAULT_TOKEN_TTL), "token_ttl"))

    def token_expiry(self) -> int:
        """The ``ttl`` of a token record written now: rounded up, so a token is never
        forgotten before ``token_ttl`` has passed."""
        return math.ceil(clock.now() + self.token_ttl)


@dataclass(frozen=True, slots=True)
class Count:
    """The result of :meth:`Counter.add`.

    ``value`` is the counter right after this add, ``previous`` right before it. ``applied`` is
    False when the token had already been counted: nothing was added by this call, and
    ``value``/``previous`` are the ones recorded when the token was first counted.
    ``monotone`` is False once the counter has gone down (a negative amount) since it was last
    reset: its ranges may then overlap, and :meth:`crossed` raises instead of answering.
    """

    value: int
    previous: int
    applied: bool = True
    monotone: bool = True

    def crossed(self, threshold: int) -> bool:
        """True when this add took the counter from below ``threshold`` to at least it.

        Across all concurrent adds to one counter, exactly one add sees True for any threshold the
        counter rises through (adds are serialized by DynamoDB, so their ranges
        ``(previous, value]`` never overlap). A replay of a token reports the original add's
        range, so a retried invocation whose first attempt crossed (and then crashed or timed
        out) sees the crossing again and can finish the work; no other token ever sees it.

        That uniqueness needs a counter that only rises: once a negative amount took it down
        (and until :meth:`Counter.reset`), a later add can cross ``threshold`` a second time, so
        this raises :class:`InvalidArgument` rather than give a crossing that is not unique.
        Keep thresholds on a counter of their own and count decrements elsewhere.
        """
        if not self.monotone:
            raise InvalidArgument(
                f"this counter went down (a negative add) before this add: crossing "
                f"{threshold} is not unique on it. Use a counter that only rises for "
                "thresholds, or reset() it to start a new sequence of crossings"
            )
        return self.previous < threshold <= self.value


def _check_amount(amount: object, what: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidArgument(
            f"{what} must be an int, got {type(amount).__name__} {amount!r}; "
            "counters are exact integers (scale fractional quantities, e.g. to cents)"
        )
    return domain.integer(amount, what)


def _value(item: Mapping[str, Any] | None) -> int | None:
    """A counter item's value, or None when the item (or its value) does not exist yet."""
    return int(item["v"]) if item and "v" in item else None


def _replayed(record: dict[str, Any], *, applied: bool = False) -> Count:
    return Count(
        int(record["value"]),
        int(record["previous"]),
        applied,
        bool(record.get("monotone", True)),
    )


class _Moved(Exception):
    """The counter was not at the value our conditional write assumed."""

    def __init__(self, value: int | None = None, *, unknown: bool = False) -> None:
        super().__init__("counter moved")
        self.value = value
        self.unknown = unknown


class Counter:
    """An integer counter in one DynamoDB item. Build it with ``store.counter(name)``.

    Concurrency: every add is atomic. Two kinds of add, by cost and guarantee:

    * ``add(n)`` without a token: one conditional ``UpdateItem`` (1 request, 1 WCU; the
      condition keeps ``limit`` and the 38-digit range, at no extra cost). **At least once** under
      ambiguous failures: if the request is applied but the response is lost, botocore retries it
      and the amount is counted twice. Use it for metrics where a rare over-count is acceptable.
    * ``add(n, token=t)``: **exactly once per token** across retries, duplicate events and
      ambiguous writes. A two-item ``TransactWriteItems`` (the token item, and the counter
      conditional on the value last seen): 4 WCU on AWS (transactions cost two units per item).
      One request when this container's last-seen value is current; a first add in a new
      container reads first (1 RCU); under contention a cancelled attempt returns the current
      value and the transaction is repeated, with jittered backoff.

    ``limit`` holds under either kind: the value never exceeds it, and an add that would raises
    :class:`LimitExceeded` having applied nothing.
    """

    def __init__(self, table: Table, name: str, **options: Unpack[CounterOptions]) -> None:
        self.name = domain.name("counter name", name)
        self._t = table
        self._settings = CounterSettings.of(options)
        self._key = keys.counter(name).item()
        self._pk = self._key["pk"]
        # The value this container last saw, and (1) whether it saw the counter go down
        # (``fell``): guesses that make the next conditional write cheaper.
        self._seen = table.hints("counter")
        self._fell = table.hints("counter.fell")

    def __repr__(self) -> str:
        return f"Counter({self.name!r})"

    def add(
        self,
        amount: int = 1,
        *,
        token: str | None = None,
        limit: int | None = None,
        context: LambdaContext | None = None,
        also: Sequence[Mapping[str, Any]] = (),
    ) -> Count:
        """Add ``amount`` (may be negative) and return the :class:`Count` this add produced.

        Args:
            token: makes the add exactly-once: the same token is counted once, however often it
                is retried, and a later call with it returns ``applied=False``.
            limit: the value never exceeds it; raises :class:`LimitExceeded` instead.
            context: the Lambda context; bounds the token path's retry loop by the time left.
            also: your own ``TransactWriteItems`` entries (any table, at most 98), committed in
                the add's transaction: written exactly when the add is applied, so once per
                token (a replayed token writes none of them). Needs ``token``. If one of them
                fails its condition, nothing is written and
                :class:`~stateless_state.errors.TransactionCanceled` is raised
                (``reasons[i + 2]`` explains your i-th entry).

        Cost: without a token one ``UpdateItem`` (1 WCU); with one, one ``TransactWriteItems``
        of the token record and the counter (4 WCU), plus 2 WCU per KB of each ``also`` entry;
        a retry when another add moved the counter first.
        """
        amount = _check_amount(amount)
        if limit is not None:
            limit = _check_amount(limit, "limit")
        extra = check_actions(also)
        if token is None:
            if extra:
                raise InvalidArgument(
                    f"counter {self.name!r}: also= needs a token, so that your writes are "
                    "committed once however often the add is retried"
                )
            return self._add_plain(amount, limit)
        return self._add_once(amount, domain.name("token", token), limit, context, extra)

    def _add_plain(self, amount: int, limit: int | None) -> Count:
        # The condition carries both the user's limit and the exact-integer range, so neither
        # can be passed without a read (the failed condition hands back the value: ALL_OLD).
        high = domain.MAX_INTEGER if limit is None else min(limit, domain.MAX_INTEGER)
        # v never exceeds MAX_INTEGER, so a larger room is the same condition.
        room = min(high - amount, domain.MAX_INTEGER)
        floor = -domain.MAX_INTEGER - amount
        if room < -domain.MAX_INTEGER:
            raise self._refused(self.get(), amount, limit)
        v = Attr("v")
        condition = v.le(room)
        if amount < 0:
            condition = condition & v.ge(floor)
        if floor <= 0 <= room:
            condition = v.not_exists() | condition
        update = Update().add("v", amount)
        if amount < 0:
            update.set("fell", True)
        try:
            # ALL_NEW: the counter is two small attributes, and ``fell`` must be seen.
            after = self._t.update_item(self._key, update, condition=condition, returns="ALL_NEW")
        except ConditionFailed as e:
            raise self._refused(int((e.old or {}).get("v", 0)), amount, limit) from None
        after = after or {}
        value = int(after["v"])
        self._seen.put(self._pk, value)
        return Count(value, value - amount, True, "fell" not in after)

    def _refused(self, value: int, amount: int, limit: int | None) -> Exception:
        if limit is not None and value + amount > limit:
            return LimitExceeded(self.name, value, amount, limit)
        return InvalidArgument(
            f"counter {self.name!r}: {value} + {amount} leaves the range of an exact counter "
            f"(at most {domain.MAX_INTEGER} in magnitude); nothing was applied"
        )

    def _add_once(
        self,
        amount: int,
        token: str,
        limit: int | None,
        context: LambdaContext | None,
        also: list[dict[str, Any]],
    ) -> Count:
        nonce = clock.token_hex(8)
        token_key = keys.counter_token(self.name, token).item()
        # The value this container last saw is a good guess for the next conditional write: when
        # it is right the add costs one request; when it is wrong the cancelled transaction hands
        # back the current value (ALL_OLD), so a retry never needs a separate read.
        hint = self._seen.get(self._pk)
        seen: list[int | None] = [] if hint is None else [hint]

        def attempt() -> Count:
            if not seen:
                seen.append(_value(self._t.get(self._key)))
            try:
                count = self._try_once(amount, token_key, limit, nonce, seen[-1], also)
            except _Moved as moved:
                seen[:] = [] if moved.unknown else [moved.value]
                raise
            if count.applied:
                self._seen.put(self._pk, count.value)
            return count

        return self._t.retry(
            attempt,
            retry_on=(_Moved,),
            what=f"counter {self.name!r} add",
            attempts=40,
            context=context,
            operation="counter.add",
        )

    def _try_once(
        self,
        amount: int,
        token_key: dict[str, str],
        limit: int | None,
        nonce: str,
        seen: int | None,
        also: list[dict[str, Any]],
    ) -> Count:
        value = (seen or 0) + amount
        if abs(value) > domain.MAX_INTEGER:
            raise self._refused(seen or 0, amount, None)
        if limit is not None and value > limit:
            done = self._t.get(token_key)
            if done is not None:
                # This very add, if an earlier attempt was applied with its response lost: the
                # counter then sits at or past the limit because of it.
                return _replayed(done, applied=own_write(done, nonce))
            actual = _value(self._t.get(self._key))
            if actual != seen:
                raise _Moved(actual)
            raise LimitExceeded(self.name, seen or 0, amount, limit)
        fallen = self._fell.get(self._pk) == 1
        record = {
            **token_key,
            "value": value,
            "previous": seen or 0,
            "nonce": nonce,
            "ttl": self._settings.token_expiry(),
            "monotone": not fallen and amount >= 0,
        }
        v = Attr("v")
        update = Update().set("v", value)
        condition = v.not_exists() if seen is None else v.eq(seen)
        if amount < 0:
            update.set("fell", True)
        elif not fallen:
            # The token record says whether the counter had gone down: pin that it had not.
            condition = condition & Attr("fell").not_exists()
        tx = Transaction(self._t)
        token_action = tx.put_if_absent(record)
        counter_action = tx.update(self._key, update, condition=condition, return_old=True)
        tx.raw(*also)
        try:
            tx.commit()
        except TransactionCanceled as e:
            token_reason, counter_reason = e.reasons[token_action], e.reasons[counter_action]
            if token_reason.code == "ConditionalCheckFailed":
                old = dict(token_reason.item or {})
                # Our own earlier attempt (same nonce) was applied and its response lost.
                return _replayed(old, applied=own_write(old, nonce))
            if counter_reason.code == "ConditionalCheckFailed":
                stored = counter_reason.item or {}
                if "fell" in stored:
                    self._fell.put(self._pk, 1)
                raise _Moved(_value(stored)) from e
            if e.conflict:
                raise _Moved(unknown=True) from e
            raise
        return Count(value, seen or 0, True, bool(record["monotone"]))

    def get(self, *, consistent: bool = True) -> int:
        """The current value (0 if never added to). One ``GetItem``: 1 RCU consistent, 0.5 not."""
        return _value(self._t.get(self._key, consistent=consistent)) or 0

    def get_or_none(self, *, consistent: bool = True) -> int | None:
        """The current value, or None when the counter was never added to nor reset (where
        :meth:`get` says 0). One ``GetItem``: 1 RCU consistent, 0.5 not."""
        return _value(self._t.get(self._key, consistent=consistent))

    def reset(self, value: int = 0) -> None:
        """Set the value (default 0). One unconditional ``PutItem``, 1 WCU.

        Tokens already counted stay counted: replaying one after a reset does not add it again.
        A reset starts a new sequence of crossings: the counter counts as never having gone
        down (see :meth:`Count.crossed`) until its next negative add.
        """
        self._t.put({**self._key, "v": _check_amount(value, "value")})
        self._fell.forget(self._pk)


class ShardedCounter:
    """A counter spread over ``shards`` items, for keys hotter than one item's ~1,000 writes/s.

    Build it with ``store.sharded_counter(name, shards=N)``. Each add goes to a random shard;
    :meth:`get` sums them. It has no ``limit`` and returns no exact ``previous`` (no single item
    sees every add): use :class:`Counter` where a threshold must be crossed exactly once.

    Cost: ``add`` without token 1 ``UpdateItem`` (1 WCU); with a token one two-item
    ``TransactWriteItems`` (4 WCU on AWS), exactly once per token. ``get`` is one consistent
    ``BatchGetItem`` of all shards (1 RCU per shard). Growing the shard count keeps every
    count; shrinking it leaves the counts of the dropped shards out of :meth:`get`.
    """

    def __init__(
        self, table: Table, name: str, shards: int, **options: Unpack[CounterOptions]
    ) -> None:
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise InvalidArgument(f"shards must be an int from 1 to {MAX_SHARDS}, got {shards!r}")
        self.name = domain.name("counter name", name)
        self.shards = shards
        self._t = table
        self._settings = CounterSettings.of(options)

    def __repr__(self) -> str:
        return f"ShardedCounter({self.name!r}, shards={self.shards})"

    def _shard_key(self, i: int) -> dict[str, str]:
        return keys.shard(self.name, i).item()

    def add(
        self, amount: int = 1, *, token: str | None = None, context: LambdaContext | None = None
    ) -> bool:
        """Add ``amount`` to a random shard. Returns False when ``token`` was already counted.
        A token add retries transaction conflicts (at most 20 times, and within the Lambda
        ``context``'s remaining time when given)."""
        amount = _check_amount(amount)
        shard = self._shard_key(clock.randrange(self.shards))
        update = Update().add("v", amount)
        if token is None:
            self._t.update_item(shard, update)
            return True
        token = domain.name("token", token)
        digest = hashlib.sha256(keys.join(self.name, token).encode()).hexdigest()
        nonce = clock.token_hex(8)
        record = {
            **keys.shard_token(digest).item(),
            "nonce": nonce,
            "ttl": self._settings.token_expiry(),
        }

        def attempt() -> bool:
            tx = Transaction(self._t)
            token_action = tx.put_if_absent(record)
            tx.update(shard, update)
            try:
                tx.commit()
            except TransactionCanceled as e:
                reason = e.reasons[token_action]
                if reason.code == "ConditionalCheckFailed":
                    return own_write(reason.item, nonce)
                if e.conflict:
                    raise _Moved() from e
                raise
            return True

        return self._t.retry(
            attempt,
            retry_on=(_Moved,),
            what=f"sharded counter {self.name!r} add",
            attempts=20,
            context=context,
            operation="sharded_counter.add",
        )

    def get(self) -> int:
        """The sum of all shards (strongly consistent reads of every shard): one
        ``BatchGetItem``, 1 RCU per shard, and one more request per round of shards DynamoDB
        leaves unprocessed."""
        shards = self._t.batch_get(self._shard_key(i) for i in range(self.shards))
        return sum(_value(item) or 0 for item in shards)
