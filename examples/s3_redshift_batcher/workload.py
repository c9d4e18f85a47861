"""The demo's bucket and what happens to it, and the exact check of the warehouse against it.

Objects are written at *places* (:class:`Place`): one per feed (:data:`FEEDS`: gzipped CSV,
JSON lines, JSON lines rewritten in rounds), or one for the single stream (:data:`ONE_STREAM`),
and a few where no feed is (:data:`UNROUTED`); the check runs per place, so a row in another
feed's table is a row of no version written there.

Objects get ordinary keys (spaces, ``+``, ``%2B``, unicode) or, with ``--long-keys``, hostile
ones of 1,000 to 1,024 UTF-8 bytes (S3's limit), built of multi-byte characters, spaces, ``%``,
``+``, ``#``, ``?`` and unicode look-alikes: keys in threes that differ only in normalisation
(NFC, NFD, and the ANGSTROM SIGN that NFC folds into ``Å``), so they look the same and must
stay three objects. Each version's rows carry its object and version number, so the warehouse
shows exactly whose content it holds.

Versions are written, rewritten (``--rewrites``), and with ``--deletions`` deleted after their
arrival at moments spread over the run, whatever their batch is doing then: half by a delete
marker (the version stays in the versioned bucket, so it must still load), half by deleting
the version itself (a purge: it loads if its batch read it first, else its batch reports it
superseded); half of the deleted objects are written again later, a new version to load.
"""

from __future__ import annotations

import gzip
import json
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from patterns import Batch, Member
from patterns.batcher.object_pins import S3_KEY_LIMIT
from patterns.testing import put_object, s3_record

__all__ = [
    "FEEDS",
    "ONE_STREAM",
    "UNROUTED",
    "Bucket",
    "Check",
    "Deletions",
    "Place",
    "Version",
    "check_versions",
    "version_ids",
]


@dataclass(frozen=True)
class Place:
    """Where some of the demo's objects are written: a feed's location (``prefix``), the key
    shapes under it (``{i}`` the object's number) and the extensions of its long keys; and the
    ``format`` (``csv`` with a header, or ``json`` lines) and ``gzip`` its files are written in,
    as its feed's target declares them (none: each file's by its key's suffix)."""

    name: str
    prefix: str
    shapes: tuple[str, ...]
    extensions: tuple[str, ...]
    what: str = ""
    format: str | None = None
    gzip: bool = False


ONE_STREAM = (
    Place(
        "events",
        "demo-input/",
        (
            "plain/{i:05d}.jsonl",
            "with space & plus+{i:05d}.jsonl.gz",
            "ünïcødé/データ-{i:05d}.jsonl",
            "percent%2B{i:05d}.csv",
            "nested/a=b/c=d/{i:05d}.csv.gz",
        ),
        (".jsonl", ".csv.gz", ".jsonl.gz", ".csv"),
        "JSON lines and CSV, some gzipped",
    ),
)
"""One stream: every object in one place, of every format (the local warehouses read each
file by its extension)."""

# Each feed's files are of one format, which its target declares (format, gzip): its loader
# reads every file as that says, as one COPY (FORMAT, GZIP) reads a whole manifest.
FEEDS = (
    Place(
        "orders",
        "demo-input/orders/",
        (
            "plain/{i:05d}.csv.gz",
            "percent%2B{i:05d}.csv.gz",
            "nested/a=b/c=d/{i:05d}.csv.gz",
            "with space & plus+{i:05d}.csv.gz",
            # No suffix, as exporters name their parts: only the target's format says it is
            # gzipped CSV, so a load that lost it cannot read the file by its name.
            "exports/part-{i:05d}",
        ),
        (".csv.gz",),
        "gzipped CSV with a header",
        "csv",
        gzip=True,
    ),
    Place(
        "events",
        "demo-input/events/",
        ("plain/{i:05d}.jsonl", "ünïcødé/データ-{i:05d}.jsonl", "with space+{i:05d}.jsonl"),
        (".jsonl",),
        "JSON lines",
        "json",
    ),
    Place(
        "catalog",
        "demo-input/catalog/",
        ("items/{i:05d}.jsonl", "ünïcødé/品目 {i:05d}.jsonl"),
        (".jsonl",),
        "JSON lines, every key rewritten in 4 rounds",
        "json",
    ),
)
"""Three feeds: CSV (gzipped, with a header), JSON lines, and JSON lines whose keys are
rewritten again and again (the demo's ``catalog`` rounds)."""

UNROUTED = Place(
    "unrouted", "demo-input/elsewhere/", ("{i:05d}.jsonl",), (".jsonl",), "at no feed's location"
)
"""Where no feed is: these objects are recorded unrouted, never batched."""

_LOOK_ALIKE = "Café Ångström"
LOOK_ALIKES = (
    unicodedata.normalize("NFC", _LOOK_ALIKE),
    unicodedata.normalize("NFD", _LOOK_ALIKE),
    unicodedata.normalize("NFC", _LOOK_ALIKE).replace("Å", "\u212b"),
)
"""Three keys' worth of one visible text: distinct strings, distinct UTF-8 bytes."""

_PIECES = ["データ", " ", "%", "%2B", "+", "ünï", "😀", "#", "?", "&x=1", "€", "'", "~", "a b"]


def _pad(rng: random.Random, size: int, *, deep: bool) -> str:
    """``size`` UTF-8 bytes of hostile pieces (with a ``/`` every 60-odd bytes when ``deep``)."""
    out: list[str] = []
    used = since_slash = 0
    while True:
        piece = "/" if deep and since_slash > 60 else rng.choice(_PIECES)
        n = len(piece.encode())
        if used + n > size:
            break
        out.append(piece)
        used += n
        since_slash = 0 if piece == "/" else since_slash + n
    return "".join(out) + "x" * (size - used)


def long_key(family: int, variant: int, rng: random.Random, place: Place = ONE_STREAM[0]) -> str:
    """Object key ``variant`` (0-2, see :data:`LOOK_ALIKES`) of look-alike ``family`` at
    ``place``: between 1,000 and 1,024 UTF-8 bytes for the family's longest variant, the same
    padding for all three. ``rng`` must be the family's own, so its three keys share everything
    else."""
    ext = place.extensions[family % len(place.extensions)]
    deep = family % 2 == 1  # a long file name, or a long path of short directories

    def around(word: str) -> tuple[str, str]:
        return f"{place.prefix}long/{word}/", f" {word}-{family:05d}{ext}"

    fixed = max(len("".join(around(w)).encode()) for w in LOOK_ALIKES)
    pad = _pad(rng, rng.randint(1000, S3_KEY_LIMIT) - fixed, deep=deep)
    head, tail = around(LOOK_ALIKES[variant])
    key = head + pad + tail
    assert len(key.encode()) <= S3_KEY_LIMIT
    return key


@dataclass
class Version:
    """One object version the demo wrote, and what became of it: ``kept``, ``marked`` (a delete
    marker over it: the version still exists) or ``purged`` (the version itself deleted)."""

    obj: int
    number: int
    key: str
    version_id: str
    rows: int
    arrived: bool = False
    fate: str = "kept"
    deleted_at: float | None = None

    @property
    def exists(self) -> bool:
        return self.fate != "purged"


class Bucket:
    """The demo's objects in one versioned bucket: their keys and every version written.

    The objects are spread over ``places`` in turn (one per feed, or one for the single
    stream); ``unrouted``, a share of them, go where no feed is (:data:`UNROUTED`)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        n: int,
        *,
        long_keys: float,
        rng: random.Random,
        seed: int,
        places: tuple[Place, ...] = ONE_STREAM,
        unrouted: float = 0.0,
    ) -> None:
        self.s3, self.name, self._rng = s3, bucket, rng
        stray = set(rng.sample(range(n), max(1, round(n * unrouted)))) if unrouted else set()
        self.place = [UNROUTED] * n
        at: dict[Place, list[int]] = defaultdict(list)
        for j, i in enumerate(i for i in range(n) if i not in stray):
            self.place[i] = places[j % len(places)]
        for i in range(n):
            at[self.place[i]].append(i)
        self.keys = [""] * n
        for place, indices in at.items():
            for j, i in enumerate(indices):
                self.keys[i] = place.prefix + place.shapes[j % len(place.shapes)].format(i=i)
        # Look-alike families of three keys, each family at one place.
        self.long_keys = families = 0
        for place in places:
            indices = at.get(place, [])
            chosen = sorted(rng.sample(indices, int(len(indices) * long_keys)))
            for j, i in enumerate(chosen):
                family, variant = families + j // len(LOOK_ALIKES), j % len(LOOK_ALIKES)
                self.keys[i] = long_key(family, variant, random.Random(f"{seed}/{family}"), place)
            families += -(-len(chosen) // len(LOOK_ALIKES))
            self.long_keys += len(chosen)
        self.versions: dict[str, Version] = {}
        self.latest: dict[int, Version] = {}
        self.removals = 0

    def versions_at(self, place: Place) -> dict[str, Version]:
        """The versions written at ``place`` (its feed's, or those no feed takes)."""
        return {vid: v for vid, v in self.versions.items() if self.place[v.obj] == place}

    def write(self, i: int) -> dict[str, Any]:
        """Write object ``i``'s next version (rows tagged with object and version number);
        return the notification S3 sends."""
        number = self.latest[i].number + 1 if i in self.latest else 1
        key, place = self.keys[i], self.place[i]
        rows = self._rng.randint(1, 20)
        if place.format is None:
            csv, gzipped = key.removesuffix(".gz").endswith(".csv"), key.endswith(".gz")
        else:
            csv, gzipped = place.format == "csv", place.gzip
        if csv:
            lines = "".join(f"{i},{number},{j},row {j}\n" for j in range(rows))
            body = ("id,v,n,note\n" + lines).encode()
        else:
            body = "".join(
                json.dumps({"id": i, "v": number, "n": j, "note": f"row {j}"}) + "\n"
                for j in range(rows)
            ).encode()
        if gzipped:
            body = gzip.compress(body)
        record = put_object(self.s3, self.name, key, body, sequencer=f"{i + 1:08X}{number:08X}")
        version = Version(i, number, key, record["s3"]["object"]["versionId"], rows)
        self.versions[version.version_id] = version
        self.latest[i] = version
        return record

    def delete(self, i: int, *, purge: bool, now: float) -> dict[str, Any]:
        """Delete object ``i``'s latest version: its version itself (``purge``) or by a delete
        marker over it. Returns the ``ObjectRemoved`` notification S3 sends (the pipeline
        ignores it)."""
        version = self.latest[i]
        if purge:
            self.s3.delete_object(Bucket=self.name, Key=version.key, VersionId=version.version_id)
            version.fate, name = "purged", "ObjectRemoved:Delete"
        else:
            self.s3.delete_object(Bucket=self.name, Key=version.key)
            version.fate, name = "marked", "ObjectRemoved:DeleteMarkerCreated"
        version.deleted_at = now
        self.removals += 1
        return s3_record(
            self.name,
            version.key,
            0,
            version=version.version_id,
            sequencer=f"{i + 1:08X}{version.number:08X}FF",
            name=name,
        )

    def arrived(self, version_ids: Iterable[str]) -> None:
        for v in version_ids:
            if v in self.versions:
                self.versions[v].arrived = True


def version_ids(event: Mapping[str, Any], failed: Iterable[str] = ()) -> list[str]:
    """The version ids an event's "object created" records name, but for the SQS messages in
    ``failed`` (a partial batch response: they were not added)."""
    skip = set(failed)
    out = []
    for r in event["Records"]:
        if r.get("messageId") in skip:
            continue
        inner = json.loads(r["body"])["Records"] if "body" in r else [r]
        out += [
            x["s3"]["object"]["versionId"]
            for x in inner
            if x["eventName"].startswith("ObjectCreated:") and "versionId" in x["s3"]["object"]
        ]
    return out


class Deletions:
    """``share`` of the objects deleted, each at a moment drawn over the run (a fraction of
    the notifications handled), of an object whose latest version has arrived; half by a
    purge, half by a delete marker; half of them written again a little later."""

    def __init__(self, bucket: Bucket, share: float, rng: random.Random) -> None:
        self._bucket, self._rng = bucket, rng
        self._plan = sorted(rng.uniform(0.05, 0.9) for _ in range(int(len(bucket.keys) * share)))
        self._recreate: list[tuple[float, int]] = []
        self.recreated = 0

    def due(self, progress: float, now: float) -> list[dict[str, Any]]:
        """Make the deletions and re-creations due at ``progress``; their notifications."""
        records = []
        while self._plan and self._plan[0] <= progress:
            candidates = [
                i for i, v in self._bucket.latest.items() if v.arrived and v.fate == "kept"
            ]
            if not candidates:
                break  # nothing arrived yet: this deletion waits for one
            self._plan.pop(0)
            i = self._rng.choice(candidates)
            records.append(self._bucket.delete(i, purge=self._rng.random() < 0.5, now=now))
            if self._rng.random() < 0.5:
                self._recreate.append((progress + self._rng.uniform(0.02, 0.1), i))
        for when, i in [r for r in self._recreate if r[0] <= progress]:
            self._recreate.remove((when, i))
            records.append(self._bucket.write(i))
            self.recreated += 1
        return records


@dataclass
class Check:
    """What the warehouse and the batches hold against what was written."""

    failures: list[str] = field(default_factory=list)
    loaded: int = 0
    superseded: int = 0
    purged_loaded: int = 0
    rows_expected: int = 0
    rows_loaded: int = 0
    deleted_when: Counter[str] = field(default_factory=Counter)


@dataclass
class _Batches:
    """The batches as the check reads them: each version's batches, the versions reported
    superseded, and per batch the superseded members counted but not listed."""

    home: dict[str, list[Batch]] = field(default_factory=lambda: defaultdict(list))
    reported: set[str] = field(default_factory=set)
    unlisted: dict[str, int] = field(default_factory=dict)


def _read_batches(
    versions: Mapping[str, Version],
    batches: list[Batch],
    members: Mapping[str, list[Member]],
    c: Check,
) -> _Batches:
    seen = _Batches()
    for b in batches:
        by_id = {m.id: m for m in members[b.id]}
        for m in by_id.values():
            vid = m.data.get("version_id")
            if not isinstance(vid, str) or vid not in versions:
                c.failures.append(f"batch {b.id} has a member no version names: {m.id[:120]}")
                continue
            seen.home[vid].append(b)
        if stray := set(b.superseded) - set(by_id):
            c.failures.append(f"batch {b.id} reports superseded non-members, e.g. {min(stray)}")
        seen.reported |= {by_id[s].data.get("version_id", "") for s in b.superseded if s in by_id}
        if b.superseded_count != len(b.superseded):
            seen.unlisted[b.id] = b.superseded_count - len(b.superseded)
    return seen


def _phase(v: Version, b: Batch) -> str:
    """What ``v``'s batch was doing when ``v`` was deleted (same machine, same clock)."""
    assert v.deleted_at is not None
    if b.loaded_at is not None and v.deleted_at >= b.loaded_at:
        return "loaded"
    return "open" if b.sealed_at is None or v.deleted_at < b.sealed_at else "sealed"


def check_versions(
    versions: Mapping[str, Version],
    batches: list[Batch],
    members: Mapping[str, list[Member]],
    counts: Mapping[tuple[str, ...], int],
) -> Check:
    """Every version of ``versions`` (those written at one place) is a member of exactly one
    batch, and either loaded exactly once (all its rows, once) or reported superseded on its
    batch, never both; superseded only if
    the version was purged (a version that still exists must load); no rows of anything else.
    A batch that keeps only the count of its superseded members (too many ids for the item)
    must account for exactly that many purged, unloaded members."""
    c = Check(rows_loaded=sum(counts.values()))
    seen = _read_batches(versions, batches, members, c)
    wrong: dict[str, list[str]] = defaultdict(list)
    written = {(str(v.obj), str(v.number)) for v in versions.values()}
    for extra in set(counts) - written:
        wrong["rows of no version written"].append(repr(extra))
    for vid, v in versions.items():
        name = f"object {v.obj} v{v.number}"
        loaded = counts.get((str(v.obj), str(v.number)), 0)
        c.rows_expected += v.rows
        if len(seen.home[vid]) != 1:
            wrong[f"in {len(seen.home[vid])} batches"].append(name)
            continue
        (b,) = seen.home[vid]
        name = f"{name} ({v.fate}, {len(v.key.encode())}-byte key, batch {b.id})"
        if v.deleted_at is not None:
            c.deleted_when[_phase(v, b)] += 1
        superseded = vid in seen.reported
        if not superseded and not loaded and not v.exists and seen.unlisted.get(b.id, 0) > 0:
            seen.unlisted[b.id] -= 1  # counted on its batch, beyond the ids the item keeps
            superseded = True
        if loaded not in (0, v.rows):
            wrong["loaded more than once or in part"].append(f"{name}: {loaded}/{v.rows} rows")
        elif loaded and superseded:
            wrong["loaded and reported superseded"].append(name)
        elif loaded:
            c.loaded += 1
            c.purged_loaded += not v.exists
        elif not superseded:
            wrong["never loaded, not reported superseded"].append(name)
        elif v.exists:
            wrong["reported superseded but still in S3"].append(name)
        else:
            c.superseded += 1
            c.rows_expected -= v.rows
    for batch, left in seen.unlisted.items():
        if left:
            c.failures.append(f"batch {batch} counts {left} superseded members it does not have")
    for what, names in sorted(wrong.items()):
        c.failures.append(f"{len(names)} object versions {what}, e.g. {names[0]}")
    return c
