"""The key layout: every partition and sort key of every primitive and pattern, built here.

**The encoding rule.** A key is a list of parts joined by ``#``. A part that comes from the user
(a name, a key, a token) is escaped first: ``%`` becomes ``%25`` and ``#`` becomes ``%23``, so an
escaped part never contains ``#``. Splitting a key on ``#`` therefore gives back exactly the
parts it was built from: distinct (primitive, name, key, token) tuples give distinct keys, and
since every Query in the library names one exact partition key, no Query of one tuple can
include another's items (``"a#b"`` + ``"c"`` and ``"a"`` + ``"b#c"`` become ``a%23b#c`` and
``a#b%23c``). The first part is always a fixed word naming the primitive, so two primitives never
share a partition either.

**Cost.** Nothing for names without ``#`` or ``%``; two bytes more per such character otherwise.
With names, keys and tokens of at most 255 bytes (:data:`~stateless_state.domain.MAX_NAME_BYTES`)
every key stays inside DynamoDB's limits (2,048 bytes for a partition key, 1,024 for a sort key).

**Instants in sort keys** are microseconds since 0001-01-01, zero-padded to 20 digits
(:func:`instant_part`): string order is time order, before the epoch included.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "INDEX_NAME",
    "INDEX_PK",
    "INDEX_SK",
    "Key",
    "arrival",
    "batch",
    "batch_index",
    "counter",
    "counter_token",
    "escape",
    "idempotency",
    "index_partition",
    "instant_part",
    "join",
    "lease",
    "member_partition",
    "session_due",
    "session_head",
    "session_item",
    "session_partition",
    "session_token",
    "shard",
    "shard_token",
    "stream_owner",
    "unrouted",
    "unrouted_partition",
    "versioned_head",
    "versioned_version",
]

SEP = "#"
INDEX_NAME = "gsi1"
"""The one sparse global secondary index of the single-table design."""
INDEX_PK = "gsi1pk"
"""The index's partition key attribute (a string), on the items it lists only."""
INDEX_SK = "gsi1sk"
"""The index's sort key attribute (a string)."""
# 0001-01-01T00:00:00Z in epoch microseconds, negated: the origin of instant_part.
_ORIGIN_US = 62_135_596_800_000_000


def escape(part: str) -> str:
    """A user-supplied part with ``%`` and ``#`` escaped, so it never contains ``#``."""
    return part.replace("%", "%25").replace("#", "%23")


def join(*parts: str | int) -> str:
    """Fixed words and integers as they are, strings escaped, joined by ``#``."""
    return SEP.join(str(p) if isinstance(p, int) else escape(p) for p in parts)


def instant_part(t: float) -> str:
    """An instant (epoch seconds, year 1 to 9999) as a 20-digit string in time order."""
    return f"{round(t * 1_000_000) + _ORIGIN_US:020d}"


@dataclass(frozen=True)
class Key:
    """A table key: partition key ``pk`` and sort key ``sk``."""

    pk: str
    sk: str

    def item(self) -> dict[str, str]:
        """The key as plain attributes, to merge into an item or pass as ``Key``."""
        return {"pk": self.pk, "sk": self.sk}

    def index_item(self) -> dict[str, str]:
        """The key as the sparse index's attributes (:data:`INDEX_PK`, :data:`INDEX_SK`), to
        merge into an item that should be found through the index."""
        return {INDEX_PK: self.pk, INDEX_SK: self.sk}


def counter(name: str) -> Key:
    """A counter's item."""
    return Key(join("counter", name), "counter")


def counter_token(name: str, token: str) -> Key:
    """The record of one token counted by a counter, in the counter's partition."""
    return Key(join("counter", name), join("token", token))


def shard(name: str, shard_number: int) -> Key:
    """One shard of a sharded counter, a partition of its own."""
    return Key(join("shardcounter", name, shard_number), "counter")


def shard_token(digest: str) -> Key:
    """A sharded counter's token record, keyed by a digest of :func:`join` (name, token)."""
    return Key(join("shardtoken", digest), "token")


def lease(name: str) -> Key:
    """A lease's item (its holder, expiry and fence)."""
    return Key(join("lease", name), "lease")


def idempotency(digest: str) -> Key:
    """An idempotency record, keyed by a digest of :func:`join` (namespace, key): idempotency
    keys are often long (whole payload hashes, message ids), and the digest bounds them."""
    return Key(join("idem", digest), "idem")


def versioned_head(name: str) -> Key:
    """A versioned object's head item: its latest version."""
    return Key(join("versioned", name), "head")


def versioned_version(name: str, number: int) -> Key:
    """One version of a versioned object, sorted by number in the object's partition."""
    return Key(join("versioned", name), f"v#{number:012d}")


def session_partition(kind: str, name: str, key: str) -> str:
    """The partition holding every session (or window) of one key, and its head item."""
    return join(kind, name, key)


def session_item(kind: str, name: str, key: str, start: float, session_id: str) -> Key:
    """One session: sorted by start, so the sessions an event can touch are one range."""
    return Key(session_partition(kind, name, key), f"{instant_part(start)}#{escape(session_id)}")


def session_head(kind: str, name: str, key: str) -> Key:
    """The per-key item every session add bumps, so concurrent adds of one key serialize.
    ``head`` sorts after every session's digits, outside every range of starts."""
    return Key(session_partition(kind, name, key), "head")


def session_token(kind: str, name: str, token: str) -> Key:
    """The record of one token added to session or tumbling windows (``kind``)."""
    return Key(join(f"{kind}token", name, token), "token")


def session_due(kind: str, name: str, due: float, key: str, session_id: str) -> Key:
    """The due index entry of an open session (its :meth:`Key.index_item`)."""
    return Key(join("due", kind, name), f"{instant_part(due)}#{join(key, session_id)}")


def batch(stream: str, lane: int, seq: int) -> Key:
    """A batch's item: one partition per stream and lane, the batch's sequence number its sort
    key."""
    return Key(join("batch", stream, lane), f"{seq:012d}")


def member_partition(stream: str, lane: int, seq: int) -> str:
    """The partition of a batch's member chunks."""
    return join("member", stream, lane, f"{seq:012d}")


def arrival(stream: str, digest: str) -> Key:
    """The global dedupe record of one arrival, keyed by a digest of its id."""
    return Key(join("arrival", stream, digest), "arrival")


def index_partition(word: str, *parts: str) -> str:
    """An :data:`INDEX_PK` value: a fixed word (``pending``, ``failed``, ``due``) and escaped
    parts."""
    return join(word, *parts)


def batch_index(word: str, stream: str, at: float, batch_id: str) -> Key:
    """The index entry of a batch waiting to be loaded or failed (its :meth:`Key.index_item`)."""
    return Key(index_partition(word, stream), f"{at:017.6f}#{escape(batch_id)}")


def stream_owner(stream: str) -> Key:
    """The claim on a batch stream by the one feeds configuration whose feed batches it."""
    return Key(join("streamowner", stream), "owner")


def unrouted_partition(config: str) -> str:
    """The partition of the arrivals no feed of the feeds configuration ``config`` took."""
    return join("unrouted", config)


def unrouted(config: str, at: float, digest: str) -> Key:
    """One arrival no feed took, sorted by its event time: a redelivery (same event time, same
    arrival id digest) is the same item."""
    return Key(unrouted_partition(config), f"{instant_part(at)}#{digest}")
