"""Copy-on-write versioned objects: every write creates a new immutable version.

Layout: a head item ``pk=versioned#<name>, sk=head`` holding the latest version (number, value or
S3 pointer, the writer's nonce), and one history item per version ``sk=v#<number:012d>``, written
once and never modified. A write is one ``TransactWriteItems``: the head, conditional on holding
the expected version, and the new history item, conditional on not existing. So a version cannot
be lost (no lost update: the head moves only from the version the writer read) nor changed.

Why a head item (2 items, 4 WCU) rather than history items alone (1 PutItem, 1 WCU): retention by
age needs a TTL on history items, and TTL must be set when an item is written (setting it later
would modify a version). Without a head, the latest version would expire too and the object
would vanish. The head never expires, so ``get`` always finds the current value, while superseded
versions age out.

Values are JSON documents. Over ``inline_limit`` bytes the body goes to S3 under
``<prefix><object>/<sha256>.json`` (content-addressed: equal bodies share a key, and a put there
rewrites the same bytes); the items keep the pointer. A crash between
the S3 put and the transaction leaves an unreferenced body and no version;
:meth:`Versioned.collect_garbage` deletes bodies that no retained version references.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict, Unpack

from . import clock, domain, keys
from .codec import to_json
from .errors import InvalidArgument, VersionConflict
from .expressions import Attr, Update
from .retry import LambdaContext
from .table import Table, TransactionCanceled
from .transaction import Transaction, own_write

__all__ = ["MISSING", "Version", "Versioned", "VersionedOptions", "VersionedSettings"]

MISSING: Any = object()
"""No value: ``update(fn)`` without ``create=`` refuses an object that has no version
yet."""
DEFAULT_INLINE_LIMIT = 64 * 1024
MAX_INLINE_LIMIT = 350_000


class VersionedOptions(TypedDict, total=False):
    """The options of :class:`Versioned`, as ``store.versioned(name, **options)`` takes them:
    retention of superseded versions (``keep_last`` / ``keep_for``; the latest is always kept)
    and where values over ``inline_limit`` bytes go (``s3``, ``bucket``, ``prefix``). Their
    defaults and checks are :meth:`VersionedSettings.of`."""

    keep_last: int | None
    keep_for: timedelta | float | None
    s3: Any
    bucket: str | None
    prefix: str
    inline_limit: int


@dataclass(frozen=True, slots=True)
class VersionedSettings:
    """A versioned object's options checked and completed with their defaults (the one place
    of both): keep every version (no ``keep_last``, no ``keep_for``), no S3, ``prefix``
    ``versioned/``, ``inline_limit`` 64 KiB. ``keep_for`` is in seconds."""

    keep_last: int | None
    keep_for: float | None
    s3: Any
    bucket: str | None
    prefix: str
    inline_limit: int

    @classmethod
    def of(cls, options: VersionedOptions) -> VersionedSettings:
        """The settings ``options`` ask for; :class:`InvalidArgument` for a bad value,
        :class:`TypeError` for an option versioned objects do not take."""
        domain.options(options, VersionedOptions.__optional_keys__, "a versioned object")
        keep_last = options.get("keep_last")
        if keep_last is not None:
            domain.integer(keep_last, "keep_last", minimum=1, maximum=10**12 - 1)
        keep_for = options.get("keep_for")
        inline_limit = options.get("inline_limit", DEFAULT_INLINE_LIMIT)
        if not 1 <= inline_limit <= MAX_INLINE_LIMIT:
            raise InvalidArgument(f"inline_limit must be between 1 and {MAX_INLINE_LIMIT:,} bytes")
        return cls(
            keep_last=keep_last,
            keep_for=None if keep_for is None else domain.duration(keep_for, "keep_for"),
            s3=options.get("s3"),
            bucket=options.get("bucket"),
            prefix=options.get("prefix", "versioned/"),
            inline_limit=inline_limit,
        )


@dataclass(frozen=True, slots=True)
class Version:
    """One immutable version. ``created_at`` is epoch seconds."""

    number: int
    value: Any
    created_at: float


class _Retry(Exception):
    """The head moved under us (or a transaction conflicted): re-read and re-apply."""


class Versioned:
    """A named object with an append-only history. Build it with ``store.versioned(name)``.

    Guarantees under concurrency: a write succeeds only from the version it names, so concurrent
    writers never lose each other's updates; every version is written once and never changed;
    numbers are consecutive from 1. Reads are strongly consistent.

    Cost: ``put``/``update`` one ``TransactWriteItems`` of two small items (4 WCU on AWS) plus,
    for ``update``, one consistent ``GetItem`` (1 RCU) per attempt (two on a retry: whether the
    attempt before landed unseen), and with ``keep_last`` one
    ``DeleteItem`` of the version it retires; ``get`` one ``GetItem``, ``at`` one for the latest
    version and two for an older one; ``history`` one ``GetItem`` and one ``Query``. Large
    values add one S3 PUT (and GET on read).
    """

    def __init__(self, table: Table, name: str, **options: Unpack[VersionedOptions]) -> None:
        settings = VersionedSettings.of(options)
        self.name = domain.name("versioned object name", name)
        self.keep_last = settings.keep_last
        self.keep_for = settings.keep_for
        self._t = table
        self._s3 = settings.s3
        self._bucket = settings.bucket
        self._inline_limit = settings.inline_limit
        self._pk = keys.versioned_head(name).pk
        # Per object, so garbage collection of one object never touches another's bodies.
        self._body_prefix = f"{settings.prefix}{hashlib.sha256(name.encode()).hexdigest()[:24]}/"

    def __repr__(self) -> str:
        return f"Versioned({self.name!r})"

    # reading

    def _head(self) -> dict[str, Any] | None:
        return self._t.get(keys.versioned_head(self.name).item())

    def _value(self, item: dict[str, Any]) -> Any:
        if "s3_key" in item:
            body = self._require_s3().get_object(Bucket=self._bucket, Key=item["s3_key"])
            return json.loads(body["Body"].read())
        return json.loads(item["value"])

    def get(self) -> Version | None:
        """The latest version, or None if the object was never written. One ``GetItem``."""
        head = self._head()
        if head is None:
            return None
        return Version(int(head["number"]), self._value(head), float(head["created_at"]))

    def _retained(self, number: int, item: dict[str, Any], latest: int, now: float) -> bool:
        if number == latest:
            return True
        if self.keep_last is not None and number <= latest - self.keep_last:
            return False
        return not ("ttl" in item and float(item["ttl"]) <= now)

    def at(self, number: int) -> Version | None:
        """Version ``number``, or None if it does not exist or has expired under the retention
        policy (even before DynamoDB's TTL deletes it)."""
        domain.integer(number, "number")
        head = self._head()
        if head is None or not 1 <= number <= int(head["number"]):
            return None
        if number == int(head["number"]):
            return Version(number, self._value(head), float(head["created_at"]))
        item = self._t.get(keys.versioned_version(self.name, number).item())
        if item is None or not self._retained(number, item, int(head["number"]), clock.now()):
            return None
        return Version(number, self._value(item), float(item["created_at"]))

    def history(self) -> list[Version]:
        """Every retained version, oldest first (one consistent ``Query``, plus the head)."""
        head = self._head()
        if head is None:
            return []
        latest, now = int(head["number"]), clock.now()
        out: list[Version] = []
        for item in self._t.query(
            Attr("pk").eq(self._pk) & Attr("sk").begins_with("v#"), consistent=True
        ):
            number = int(item["number"])
            if number <= latest and self._retained(number, item, latest, now):
                out.append(Version(number, self._value(item), float(item["created_at"])))
        return out

    def raw_item(self, number: int) -> dict[str, Any] | None:
        """The stored history item of a version, as DynamoDB returns it (typed attribute
        values), or None: for audits and tests. One consistent ``GetItem``."""
        return self._t.get_stored(keys.versioned_version(self.name, number).item())

    # writing

    def _require_s3(self) -> Any:
        if self._s3 is None or not self._bucket:
            raise InvalidArgument(
                f"versioned object {self.name!r} holds a value over {self._inline_limit} bytes: "
                "pass s3= and bucket= to store.versioned() so large values can go to S3"
            )
        return self._s3

    def _body(self, text: str) -> dict[str, Any]:
        data = text.encode()
        if len(data) <= self._inline_limit:
            return {"value": text}
        s3 = self._require_s3()
        key = f"{self._body_prefix}{hashlib.sha256(data).hexdigest()}.json"
        # Content-addressed, so a put rewrites the same bytes; it is made even when the body is
        # there, because the fresh LastModified is what keeps collect_garbage's grace from
        # deleting a body an orphaned older version left, which this write is about to name.
        s3.put_object(Bucket=self._bucket, Key=key, Body=data)
        return {"s3_key": key, "size": len(data)}

    def put(self, value: Any, *, expected: int | None) -> Version:
        """Write ``value`` as the next version, only if the latest is ``expected``.

        ``expected=None`` creates the object: it must not exist yet. Raises
        :class:`VersionConflict` when the latest version is another (after two ``GetItem`` s:
        one finds the version this put would have made was not its own, one names the latest).
        One transaction.
        """
        if expected is not None:
            domain.integer(expected, "expected", minimum=1, maximum=10**12 - 2)
        text = to_json(value, "the value")
        nonce = clock.token_hex(8)
        try:
            return self._write(value, text, expected, nonce)
        except _Retry:
            landed = self._landed((expected or 0) + 1, nonce)
            if landed is not None:
                return landed
            head = self._head()
            raise VersionConflict(
                self.name, expected, int(head["number"]) if head else None
            ) from None

    def _write(self, value: Any, text: str, expected: int | None, nonce: str) -> Version:
        number = (expected or 0) + 1
        now = clock.now()
        body = self._body(text)
        version_item: dict[str, Any] = {
            **keys.versioned_version(self.name, number).item(),
            "number": number,
            "created_at": now,
            "writer": nonce,
            **body,
        }
        if self.keep_for is not None:
            # Set once, at creation: a version is never modified afterwards.
            version_item["ttl"] = math.ceil(now + self.keep_for)
        head = Update().set_all({"number": number, "created_at": now, "writer": nonce})
        for attr in ("value", "s3_key", "size"):
            if attr in body:
                head.set(attr, body[attr])
            else:
                head.remove(attr)
        current = Attr("number")
        tx = Transaction(self._t)
        head_action = tx.update(
            keys.versioned_head(self.name).item(),
            head,
            condition=current.not_exists() if expected is None else current.eq(expected),
            return_old=True,
        )
        tx.put(version_item, condition=Attr("sk").not_exists())
        try:
            tx.commit()
        except TransactionCanceled as e:
            old = e.reasons[head_action].item or {}
            if own_write(old, nonce, attribute="writer") and int(old.get("number", 0)) == number:
                # Our own write, applied with its response lost and retried: it stands.
                return Version(number, value, now)
            if e.conflict or e.condition_failed:
                raise _Retry() from e
            raise
        self._expire_beyond_keep_last(number)
        return Version(number, value, now)

    def _landed(self, number: int, nonce: str) -> Version | None:
        """Version ``number`` if the write carrying ``nonce`` made it: a transaction applied
        with its response lost whose retry was then cancelled (a conflict) tells nothing, and
        another writer may have moved the head on since. One consistent ``GetItem``."""
        item = self._t.get(keys.versioned_version(self.name, number).item())
        if item is None or not own_write(item, nonce, attribute="writer"):
            return None
        return Version(number, self._value(item), float(item["created_at"]))

    def _expire_beyond_keep_last(self, number: int) -> None:
        if self.keep_last is None or number - self.keep_last < 1:
            return
        # Deleting, never modifying: reads already hide it; this only frees the space.
        self._t.delete(keys.versioned_version(self.name, number - self.keep_last).item())

    def update(
        self,
        fn: Callable[[Any], Any],
        *,
        create: Any = MISSING,
        context: LambdaContext | None = None,
        attempts: int = 50,
    ) -> Version:
        """Read, apply ``fn`` to a deep copy of the value, write it from that version; retry
        with full-jitter backoff when another writer got there first.

        ``create``: the value ``fn`` starts from when the object does not exist yet (without it
        a missing object raises :class:`InvalidArgument`). Bounded by ``attempts`` and by the
        Lambda's remaining time; raises :class:`ConflictRetriesExhausted` when they run out.
        """
        # One nonce for the whole call: if an attempt was applied but reported as failed (its
        # response lost, then a conflict on the retry), the next read recognises it as ours
        # instead of applying fn a second time.
        nonce = clock.token_hex(8)
        tried: list[int] = []  # the version number each attempt wrote

        def attempt() -> Version:
            # The last attempt may have landed unseen; an earlier one would have been found by
            # the attempt after it.
            landed = self._landed(tried[-1], nonce) if tried else None
            if landed is not None:
                return landed
            head = self._head()
            current = (
                None
                if head is None
                else Version(int(head["number"]), self._value(head), float(head["created_at"]))
            )
            if current is not None and own_write(head, nonce, attribute="writer"):
                return current
            if current is None:
                if create is MISSING:
                    raise InvalidArgument(
                        f"versioned object {self.name!r} does not exist; create it with "
                        "put(value, expected=None) or pass create=<initial value>"
                    )
                base, expected = copy.deepcopy(create), None
            else:
                base, expected = copy.deepcopy(current.value), current.number
            new = fn(base)
            tried.append((expected or 0) + 1)
            return self._write(new, to_json(new, "the value"), expected, nonce)

        return self._t.retry(
            attempt,
            retry_on=(_Retry,),
            what=f"versioned {self.name!r} update",
            attempts=attempts,
            context=context,
            operation="versioned.update",
        )

    def collect_garbage(self, *, grace: timedelta | float = timedelta(hours=1)) -> int:
        """Delete S3 bodies under this object's prefix that no retained version references and
        that are older than ``grace``. Every write puts its body, even one already there, so a
        write in flight keeps its body as long as it commits within ``grace`` of its put.
        Returns how many. One ``Query``, one ``ListObjectsV2`` per 1,000 bodies, one
        ``DeleteObject`` per body deleted."""
        s3 = self._require_s3()
        referenced = {item.get("s3_key") for item in self._all_items() if item.get("s3_key")}
        cutoff = clock.now() - domain.duration(grace, "grace", allow_zero=True)
        deleted = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._body_prefix
        ):
            for obj in page.get("Contents", []):
                if obj["Key"] in referenced or obj["LastModified"].timestamp() > cutoff:
                    continue
                s3.delete_object(Bucket=self._bucket, Key=obj["Key"])
                deleted += 1
        return deleted

    def _all_items(self) -> list[dict[str, Any]]:
        return list(self._t.query(Attr("pk").eq(self._pk), consistent=True))
