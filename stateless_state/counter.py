"""Conditional-write counters: exact under concurrency, once per token, never past a limit.

Item layout (single table): the counter is ``pk=counter#<name>, sk=counter`` with the value in
``v``; each token is ``pk=counter#<name>, sk=token#<token>`` and records the Count it produced, so
a replay is answered from it. Token items expire by TTL after ``token_ttl``.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ._retry import LambdaContext, deadline_from, retrying
from ._table import ConditionFailed, Table, TransactionCanceled, check_name, serialize, to_item
from .errors import ConflictRetriesExhausted, InvalidArgument, LimitExceeded

__all__ = ["Count", "Counter", "ShardedCounter"]

MAX_SHARDS = 100


@dataclass(frozen=True, slots=True)
class Count:
    """The result of :meth:`Counter.add`.

    ``value`` is the counter right after this add, ``previous`` right before it. ``applied`` is
    False when the token had already been counted: nothing was added by this call, and
    ``value``/``previous`` are the ones recorded when the token was first counted.
    """

    value: int
    previous: int
    applied: bool = True

    def crossed(self, threshold: int) -> bool:
        """True when this add took the counter from below ``threshold`` to at least it.

        Across all concurrent adds to one counter, exactly one add sees True for any threshold the
        counter rises through (adds are serialized by DynamoDB, so their ranges
        ``(previous, value]`` never overlap). A replay of a token reports the original add's
        range, so a retried invocation whose first attempt crossed (and then crashed or timed
        out) sees the crossing again and can finish the work; no other token ever sees it.
        """
        return self.previous < threshold <= self.value


def _check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidArgument(
            f"amount must be an int, got {type(amount).__name__} {amount!r}; "
            "counters are exact integers (scale fractional quantities, e.g. to cents)"
        )
    return amount


def _ttl(token_ttl: timedelta) -> int:
    return int(time.time() + token_ttl.total_seconds())


class _Moved(Exception):
    """The counter was not at the value our conditional write assumed."""

    def __init__(self, value: int | None = None, *, unknown: bool = False) -> None:
        super().__init__("counter moved")
        self.value = value
        self.unknown = unknown


class Counter:
    """An integer counter in one DynamoDB item. Build it with ``store.counter(name)``.

    Concurrency: every add is atomic. Two kinds of add, by cost and guarantee:

    * ``add(n)`` without a token: one ``UpdateItem`` (1 request, 1 WCU). **At least once** under
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

    def __init__(self, table: Table, name: str, *, token_ttl: timedelta) -> None:
        self.name = name
        self._t = table
        self._key = {"pk": f"counter#{name}", "sk": "counter"}
        self._token_ttl = token_ttl

    def __repr__(self) -> str:
        return f"Counter({self.name!r})"

    def add(
        self,
        amount: int = 1,
        *,
        token: str | None = None,
        limit: int | None = None,
        context: LambdaContext | None = None,
    ) -> Count:
        """Add ``amount`` (may be negative) and return the :class:`Count` this add produced.

        Args:
            token: makes the add exactly-once: the same token is counted once, however often it
                is retried, and a later call with it returns ``applied=False``.
            limit: the value never exceeds it; raises :class:`LimitExceeded` instead.
            context: the Lambda context; bounds the token path's retry loop by the time left.
        """
        amount = _check_amount(amount)
        if limit is not None:
            limit = _check_amount(limit)
        if token is None:
            return self._add_plain(amount, limit)
        return self._add_once(amount, check_name("token", token), limit, context)

    def _add_plain(self, amount: int, limit: int | None) -> Count:
        kwargs: dict[str, Any] = {}
        if limit is not None:
            room = limit - amount
            kwargs["ConditionExpression"] = (
                "attribute_not_exists(v) OR v <= :room" if room >= 0 else "v <= :room"
            )
            kwargs["ExpressionAttributeValues"] = {":room": serialize(room)}
        try:
            r = self._t.call(
                "UpdateItem",
                TableName=self._t.name,
                Key=to_item(self._key),
                UpdateExpression="ADD v :a",
                ExpressionAttributeValues={
                    ":a": serialize(amount),
                    **kwargs.pop("ExpressionAttributeValues", {}),
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **kwargs,
            )
        except ConditionFailed as e:
            value = int((e.old or {}).get("v", 0))
            raise LimitExceeded(self.name, value, amount, limit or 0) from None
        value = int(r["Attributes"]["v"]["N"])
        self._t.hints[self._key["pk"]] = value
        return Count(value, value - amount, True)

    def _add_once(
        self, amount: int, token: str, limit: int | None, context: LambdaContext | None
    ) -> Count:
        nonce = secrets.token_hex(8)
        token_key = {"pk": self._key["pk"], "sk": f"token#{token}"}
        # The value this container last saw is a good guess for the next conditional write: when
        # it is right the add costs one request; when it is wrong the cancelled transaction hands
        # back the current value (ALL_OLD), so a retry never needs a separate read.
        hint = self._t.hints.get(self._key["pk"])
        seen: list[int | None] = [] if hint is None else [hint]
        attempts = 0
        try:
            for attempt in retrying(
                (_Moved,),
                attempts=40,
                deadline=deadline_from(context, margin=0.5),
                on_retry=lambda _s: self._t.metrics.record_retry("counter.add"),
            ):
                with attempt:
                    attempts += 1
                    if not seen:
                        current = self._t.get(self._key)
                        seen.append(int(current["v"]) if current and "v" in current else None)
                    try:
                        count = self._try_once(amount, token_key, limit, nonce, seen[-1])
                    except _Moved as moved:
                        seen[:] = [] if moved.unknown else [moved.value]
                        raise
                    if count.applied:
                        self._t.hints[self._key["pk"]] = count.value
                    return count
        except _Moved as e:
            raise ConflictRetriesExhausted(f"counter {self.name!r} add", attempts, e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _try_once(
        self,
        amount: int,
        token_key: dict[str, str],
        limit: int | None,
        nonce: str,
        seen: int | None,
    ) -> Count:
        value = (seen or 0) + amount
        if limit is not None and value > limit:
            done = self._t.get(token_key)
            if done is not None:
                return Count(int(done["value"]), int(done["previous"]), False)
            current = self._t.get(self._key)
            actual = int(current["v"]) if current and "v" in current else None
            if actual != seen:
                raise _Moved(actual)
            raise LimitExceeded(self.name, seen or 0, amount, limit)
        record = {
            **token_key,
            "value": value,
            "previous": seen or 0,
            "nonce": nonce,
            "ttl": _ttl(self._token_ttl),
        }
        values = {":new": serialize(value)}
        if seen is None:
            condition = "attribute_not_exists(v)"
        else:
            condition = "v = :seen"
            values[":seen"] = serialize(seen)
        try:
            self._t.call(
                "TransactWriteItems",
                TransactItems=[
                    self._t.put_if_absent(record),
                    {
                        "Update": {
                            "TableName": self._t.name,
                            "Key": to_item(self._key),
                            "UpdateExpression": "SET v = :new",
                            "ConditionExpression": condition,
                            "ExpressionAttributeValues": values,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ],
            )
        except TransactionCanceled as e:
            if e.codes[0] == "ConditionalCheckFailed":
                old = e.old[0] or {}
                # Our own earlier attempt (same nonce) was applied and its response lost.
                return Count(int(old["value"]), int(old["previous"]), old.get("nonce") == nonce)
            if e.codes[1] == "ConditionalCheckFailed":
                current = e.old[1]
                raise _Moved(int(current["v"]) if current and "v" in current else None) from e
            if e.conflict:
                raise _Moved(unknown=True) from e
            raise
        return Count(value, seen or 0, True)

    def get(self, *, consistent: bool = True) -> int:
        """The current value (0 if never added to). One ``GetItem``: 1 RCU consistent, 0.5 not."""
        item = self._t.get(self._key, consistent=consistent)
        return int(item["v"]) if item and "v" in item else 0

    def reset(self, value: int = 0) -> None:
        """Set the value (default 0). One unconditional ``PutItem``, 1 WCU.

        Tokens already counted stay counted: replaying one after a reset does not add it again.
        """
        self._t.call(
            "PutItem",
            TableName=self._t.name,
            Item=to_item({**self._key, "v": _check_amount(value)}),
        )


class ShardedCounter:
    """A counter spread over ``shards`` items, for keys hotter than one item's ~1,000 writes/s.

    Build it with ``store.sharded_counter(name, shards=N)``. Each add goes to a random shard;
    :meth:`get` sums them. It has no ``limit`` and returns no exact ``previous`` (no single item
    sees every add): use :class:`Counter` where a threshold must be crossed exactly once.

    Cost: ``add`` without token 1 ``UpdateItem`` (1 WCU); with a token one two-item
    ``TransactWriteItems`` (4 WCU on AWS), exactly once per token. ``get`` is one consistent
    ``BatchGetItem`` of all shards (1 RCU per shard). The shard count may grow, never shrink.
    """

    def __init__(self, table: Table, name: str, shards: int, *, token_ttl: timedelta) -> None:
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
            raise InvalidArgument(f"shards must be an int from 1 to {MAX_SHARDS}, got {shards!r}")
        self.name = name
        self.shards = shards
        self._t = table
        self._token_ttl = token_ttl

    def __repr__(self) -> str:
        return f"ShardedCounter({self.name!r}, shards={self.shards})"

    def _shard_key(self, i: int) -> dict[str, str]:
        # The shard number first: digits then '#', so no name can collide with another's shard.
        return {"pk": f"shardcounter#{i}#{self.name}", "sk": "counter"}

    def add(self, amount: int = 1, *, token: str | None = None) -> bool:
        """Add ``amount`` to a random shard. Returns False when ``token`` was already counted."""
        amount = _check_amount(amount)
        shard = to_item(self._shard_key(random.randrange(self.shards)))
        update = {
            "TableName": self._t.name,
            "Key": shard,
            "UpdateExpression": "ADD v :a",
            "ExpressionAttributeValues": {":a": serialize(amount)},
        }
        if token is None:
            self._t.call("UpdateItem", **update)
            return True
        token = check_name("token", token)
        digest = hashlib.sha256(f"{self.name}\0{token}".encode()).hexdigest()
        nonce = secrets.token_hex(8)
        record = {
            "pk": f"shardtoken#{digest}",
            "sk": "token",
            "nonce": nonce,
            "ttl": _ttl(self._token_ttl),
        }
        try:
            for attempt in retrying((_Moved,), attempts=20):
                with attempt:
                    try:
                        self._t.call(
                            "TransactWriteItems",
                            TransactItems=[
                                self._t.put_if_absent(record),
                                {"Update": update},
                            ],
                        )
                    except TransactionCanceled as e:
                        if e.codes[0] == "ConditionalCheckFailed":
                            return (e.old[0] or {}).get("nonce") == nonce
                        if e.conflict:
                            raise _Moved() from e
                        raise
        except _Moved as e:
            raise ConflictRetriesExhausted(f"sharded counter {self.name!r} add", 20, e) from None
        return True

    def get(self) -> int:
        """The sum of all shards (strongly consistent reads of every shard)."""
        keys = [to_item(self._shard_key(i)) for i in range(self.shards)]
        total = 0
        request: dict[str, Any] = {self._t.name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            r = self._t.call("BatchGetItem", RequestItems=request)
            for item in r.get("Responses", {}).get(self._t.name, []):
                total += int(item.get("v", {}).get("N", "0"))
            request = r.get("UnprocessedKeys") or {}
        return total
