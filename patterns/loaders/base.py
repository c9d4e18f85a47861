"""The loader contract: what the pipeline asks of a warehouse, and the ledger every loader keeps.

A loader commits a batch's rows **at most once** whatever the concurrency, and says what it did.
All three loaders (:mod:`.redshift`, :mod:`.postgres`, :mod:`.sqlite`) keep the same **ledger**:

* one ledger row per batch, keyed by the batch id, inserted in the **same warehouse
  transaction** as the batch's rows, with ``status`` ``loaded`` and the load ticket's fence;
* a load inserts its rows and its ledger row only when the batch has no ledger row, and the
  check and the inserts are serialized against every other load **of the same batch**, so two
  loaders of one batch (a zombie past its lease and its successor) commit it once, and the
  second commits nothing. What serializes them is each engine's narrowest lock that keeps
  that true: PostgreSQL's ledger primary key (the ledger row is inserted first, and a second
  insert of the same key waits for it: no other batch waits), Redshift's ``LOCK`` on a ledger
  kept per target table (it enforces no unique key: loads into other targets do not wait),
  SQLite's ``BEGIN IMMEDIATE`` (one writer per database file, as SQLite always has);
* an operator's abandon inserts a ledger row with ``status`` ``abandoned`` (a tombstone) in
  the same way, unless a row exists: no load commits the batch afterwards, and an abandon that
  finds a ``loaded`` row changes nothing and says ``loaded``.

Loaders read a load ticket only through :class:`Ticket` and the batch's manifest, so no loader
depends on the batcher, and none on another loader. A loader may also name its ``target`` (a
``str`` property without secrets: what it commits into), which the sweeper groups loads by
(:mod:`patterns.sweeper`): different targets load at once, and a failing one stops only its
own loads; a loader without one is its own target.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from stateless_state import InvalidArgument, StatelessStateError

if TYPE_CHECKING:
    from ..batcher.batches import Batch
    from ..batcher.manifest import Manifest, ManifestEntry

__all__ = [
    "AbandonOutcome",
    "FileFormat",
    "FileKind",
    "LoadOutcome",
    "Loader",
    "Ticket",
    "read_records",
]


@dataclass(frozen=True)
class LoadOutcome:
    """``committed``: this load committed the batch's rows; False when the ledger showed another
    load had already committed them (the rows are there once either way), or, with
    ``abandoned``, that an operator abandoned the batch (no rows of it are there)."""

    batch_id: str
    committed: bool
    statement_id: str | None = None
    rows: int | None = None
    abandoned: bool = False


AbandonOutcome = Literal["abandoned", "loaded"]
"""What a loader's ``abandon`` found: the batch is now abandoned in the warehouse, or a load had
already committed it."""


class Ticket(Protocol):
    """What a loader may use of its load ticket (:class:`patterns.batcher.load_ticket.LoadTicket`):
    the batch, the fence it holds, and the one write a loader makes to the batch before it waits
    on the warehouse (the statement id, so a successor asks instead of loading again)."""

    @property
    def batch(self) -> Batch: ...

    @property
    def fence(self) -> int: ...

    def record_statement(self, statement_id: str) -> None: ...


class Loader(Protocol):
    """What the pipeline needs of a warehouse loader."""

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome: ...

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        """Whether an earlier attempt at the ticket's batch committed it (or found it
        abandoned), as far as the warehouse can tell without loading: then an outcome that
        committed nothing; None to load (the pipeline then pins the members again). Asked
        first by a takeover, so a successor records nothing over the superseded members of a
        load that committed. The ledger keeps a load after a None from committing twice."""
        ...

    def abandon(self, batch_id: str) -> AbandonOutcome:
        """Record in the warehouse, atomically with respect to loads, that ``batch_id`` must
        never be committed; ``loaded`` (nothing changed) when a load already committed it."""
        ...


def _split_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


FileKind = Literal["csv", "json"]
"""What a file is read as: ``csv``, CSV whose first row names the columns (Redshift's ``FORMAT
AS CSV IGNOREHEADER 1``), or ``json``, JSON lines of one object each (``FORMAT AS JSON``)."""


@dataclass(frozen=True)
class FileFormat:
    """What every file of a target is, as a Redshift COPY's ``FORMAT`` and ``GZIP`` say it for a
    whole manifest. A file that is not is refused, naming it, so the load fails as that COPY
    would instead of loading the file by another reading."""

    kind: FileKind
    gzip: bool = False

    def __post_init__(self) -> None:
        if self.kind not in get_args(FileKind):
            raise InvalidArgument(
                f"file format {self.kind!r} is not one of {', '.join(get_args(FileKind))}"
            )
        if not isinstance(self.gzip, bool):
            raise InvalidArgument(f"file format gzip must be true or false, not {self.gzip!r}")


def read_records(
    s3: Any, entry: ManifestEntry, file_format: FileFormat | None = None
) -> Iterator[str]:
    """The records of a manifest entry's object, each as canonical JSON: its own content, by
    version id or If-Match (COPY cannot, hence staging). As ``mandatory: true`` in the
    manifest, a missing object or a changed ETag fails the whole load, and the next attempt pins
    the members again. One ``GetObject``. Read as ``file_format`` says (a file that is not so
    raises :class:`~stateless_state.StatelessStateError`), or without one by its content: JSON
    lines or CSV by the key's suffix, gzip detected by its magic bytes."""
    bucket, key = _split_url(entry.url)
    exact: dict[str, str] = {}
    if entry.version_id:
        exact["VersionId"] = entry.version_id
    elif entry.etag:
        exact["IfMatch"] = _quoted(entry.etag)
    body = s3.get_object(Bucket=bucket, Key=key, **exact)["Body"].read()
    if file_format is None:
        return _records(key, body)
    return _declared(entry.url, body, file_format)


_GZIP_MAGIC = b"\x1f\x8b"


def _records(key: str, body: bytes) -> Iterator[str]:
    if body[:2] == _GZIP_MAGIC:
        body = gzip.decompress(body)
    text = body.decode("utf-8")
    name = key.removesuffix(".gz")
    if name.endswith(".csv"):
        for row in csv.DictReader(io.StringIO(text)):
            yield json.dumps(row, sort_keys=True)
        return
    for line in text.splitlines():
        if line.strip():
            yield json.dumps(json.loads(line), sort_keys=True)


def _declared(url: str, body: bytes, file_format: FileFormat) -> Iterator[str]:
    """The records of ``body`` read as ``file_format``, all of them before the first is given,
    so a file refused halfway loads none of its rows."""
    if (body[:2] == _GZIP_MAGIC) != file_format.gzip:
        said = "gzipped" if file_format.gzip else "not gzipped"
        raise StatelessStateError(f"{url} is not {file_format.kind}, {said}, as its target says")
    if file_format.gzip:
        body = gzip.decompress(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StatelessStateError(f"{url} is not UTF-8 text ({e}): not {file_format.kind}") from e
    records: list[str] = []
    if file_format.kind == "csv":
        rows = csv.DictReader(io.StringIO(text))
        for n, row in enumerate(rows, start=2):
            # DictReader files extra fields under None and fills missing ones with None: a row
            # of another width than the header is not this CSV (COPY refuses it too).
            if None in row or None in row.values():
                raise StatelessStateError(
                    f"{url} line {n} has another number of fields than its header "
                    f"{rows.fieldnames}: not the CSV its target says"
                )
            records.append(json.dumps(row, sort_keys=True))
        return iter(records)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise StatelessStateError(
                f"{url} line {n} is not a JSON object: not the JSON lines its target says"
            )
        records.append(json.dumps(record, sort_keys=True))
    return iter(records)
