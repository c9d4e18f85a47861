"""An embedded warehouse for local runs: SQLite, with the same ledger semantics as Redshift.

Why SQLite rather than DuckDB: several worker processes load at once, and SQLite lets many
processes write one database file safely (writers take turns under its file lock), while DuckDB
allows a single writing process per file. SQLite also ships with Python: nothing to install.

A load reads the manifest's objects from S3 (as the loader's ``file_format`` says, refusing a
file that is not so; without one by content: JSON lines or CSV by the key's suffix, gzip
detected by its magic bytes), each by the version id or ETag its entry names, so exactly the
members' own content, then in **one** ``BEGIN IMMEDIATE`` transaction checks the ledger for
the batch, inserts the rows, and inserts the ledger row. Two loaders on one batch serialize on
the write lock; the second sees the ledger row and inserts nothing, so every row is committed
once. An abandoned batch has a ledger row too (``status = 'abandoned'``), so no loader commits
it afterwards.

One file holds any number of tables (``table``, default ``rows``: one per feed, say), each with
the same columns, and **one** ledger, ``ledger``, for all of them: SQLite lets one writer at a
time into a file whatever the table, so a ledger per table would let no load run sooner, and a
batch id (its stream's) names one batch whatever table it loads into.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stateless_state import InvalidArgument, clock

from ..batcher.manifest import Manifest
from ..sql import sqlite_field, sqlite_identifier
from .base import AbandonOutcome, FileFormat, LoadOutcome, Ticket, read_records

__all__ = ["DEFAULT_TABLE", "LEDGER", "LocalWarehouseLoader", "table_identifier"]

DEFAULT_TABLE = "rows"
"""The table a loader loads into when none is named."""

LEDGER = "ledger"
"""The file's one ledger table, shared by every table of the file."""

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS ledger (
    batch_id TEXT PRIMARY KEY,
    fence INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    loaded_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'loaded'
);
"""


def table_identifier(table: str) -> str:
    """``table`` quoted for SQL (:func:`patterns.sql.sqlite_identifier`), or
    :class:`~stateless_state.InvalidArgument` when SQLite would refuse it or it is the file's
    ledger (SQLite folds ASCII case: ``LEDGER`` is the ledger too). No I/O."""
    quoted = sqlite_identifier(table, what="local warehouse table")
    if table.encode("utf-8").lower() == LEDGER.encode():
        raise InvalidArgument(
            f"local warehouse table {table!r} is the file's ledger table: every load would "
            "write its rows into the ledger; give another table name"
        )
    return quoted


@dataclass
class LocalWarehouseLoader:
    """Loads batches into ``table`` of a SQLite file at ``path`` (both created if missing),
    reading objects with ``s3`` (a boto3 S3 client). ``table`` holds every loaded record with
    its object URL and line number; ``ledger`` one row per committed batch of the file.
    ``file_format``: what every file is (:class:`~patterns.loaders.base.FileFormat`), a file
    that is not failing its batch's load as a COPY would; None reads each file by its content."""

    path: str | Path
    s3: Any
    timeout: float = 60.0
    table: str = DEFAULT_TABLE
    file_format: FileFormat | None = None

    def __post_init__(self) -> None:
        self._table = table_identifier(self.table)
        index = sqlite_identifier(f"{self.table}_by_object", what="local warehouse index")
        with contextlib.closing(self._connect()) as conn:
            conn.executescript(
                f"CREATE TABLE IF NOT EXISTS {self._table} (batch_id TEXT NOT NULL, "
                "object_url TEXT NOT NULL, line_no INTEGER NOT NULL, payload TEXT NOT NULL);"
                f"CREATE INDEX IF NOT EXISTS {index} ON {self._table} (object_url);" + _LEDGER_DDL
            )

    @property
    def target(self) -> str:
        """The database file this loader commits into: the key the sweeper groups loads by
        (:mod:`patterns.sweeper`; one file has one writer at a time, whatever its tables)."""
        return f"sqlite:{self.path}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        rows: list[tuple[str, str, int, str]] = []
        for entry in manifest.entries:
            rows.extend(
                (manifest.batch_id, entry.url, n, payload)
                for n, payload in enumerate(read_records(self.s3, entry, self.file_format))
            )
        with self._transaction() as conn:
            done = conn.execute(
                "SELECT status FROM ledger WHERE batch_id = ?", (manifest.batch_id,)
            ).fetchone()
            if done:
                abandoned = done[0] == "abandoned"
                return LoadOutcome(manifest.batch_id, False, None, 0, abandoned=abandoned)
            conn.executemany(f"INSERT INTO {self._table} VALUES (?, ?, ?, ?)", rows)
            conn.execute(
                "INSERT INTO ledger VALUES (?, ?, ?, ?, 'loaded')",
                (manifest.batch_id, ticket.fence, len(rows), clock.now()),
            )
        return LoadOutcome(manifest.batch_id, True, None, len(rows))

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        """The ledger's answer for the ticket's batch: committed before (or abandoned), so this
        load commits nothing; None when the ledger has no row for it. One ``SELECT``, no lock
        (a load racing this read is answered by its own locked check)."""
        batch_id = ticket.batch.id
        with contextlib.closing(self._connect()) as conn:
            row = conn.execute("SELECT status FROM ledger WHERE batch_id = ?", (batch_id,))
            found = row.fetchone()
        if found is None:
            return None
        return LoadOutcome(batch_id, False, None, 0, abandoned=found[0] == "abandoned")

    def abandon(self, batch_id: str) -> AbandonOutcome:
        """Make sure no load of ``batch_id`` commits from now on: one transaction under the
        same write lock as the loads. ``loaded`` when a load had already committed it (its
        rows stay; nothing changed)."""
        with self._transaction() as conn:
            done = conn.execute("SELECT status FROM ledger WHERE batch_id = ?", (batch_id,))
            row = done.fetchone()
            if row is not None:
                return "loaded" if row[0] == "loaded" else "abandoned"
            conn.execute(
                "INSERT INTO ledger VALUES (?, 0, 0, ?, 'abandoned')", (batch_id, clock.now())
            )
        return "abandoned"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: the write lock first, so reading the
        ledger and writing it cannot interleave with another loader's), committed on exit."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            if conn.in_transaction:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def counts_by_object(self) -> dict[str, int]:
        """Rows of the table per object URL, for checking that every object was loaded exactly
        once."""
        query = f"SELECT object_url, COUNT(*) FROM {self._table} GROUP BY object_url"
        with contextlib.closing(self._connect()) as conn:
            return dict(conn.execute(query).fetchall())

    def counts_by(self, *fields: str) -> dict[tuple[str, ...], int]:
        """Rows of the table per value of these fields of the loaded records (as text: CSV
        fields are text), for checking that every object version was loaded exactly once."""
        if not fields:
            raise InvalidArgument("counts_by needs at least one field")
        keys = [sqlite_field(f) for f in fields]
        # Each field is a bound parameter, the key a json_each join matches: no field name is
        # ever SQL or JSON-path text, so any key ('#', quotes, '.', emoji) counts as itself.
        n = range(len(keys))
        values = ", ".join(f"CAST(j{i}.value AS TEXT)" for i in n)
        joins = " ".join(f"LEFT JOIN json_each(t.payload) AS j{i} ON j{i}.key = ?" for i in n)
        groups = ", ".join(str(i + 1) for i in n)
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT {values}, COUNT(*) FROM {self._table} AS t {joins} GROUP BY {groups}",
                keys,
            )
            return {tuple(r[:-1]): int(r[-1]) for r in rows.fetchall()}

    def ledger(self) -> dict[str, int]:
        """Committed batches of the file, whatever their table, and their row counts
        (abandoned batches are not listed)."""
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute("SELECT batch_id, rows FROM ledger WHERE status = 'loaded'")
            return dict(rows.fetchall())
