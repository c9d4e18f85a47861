"""Loading a batch into PostgreSQL (RDS, Aurora PostgreSQL) with ``COPY FROM STDIN``, exactly
once, with the same ledger semantics as the Redshift loader, and without a table lock.

One transaction per load, whose first statement **claims the batch in the ledger**: it inserts
the batch's ledger row (``status 'loaded'``) with ``ON CONFLICT (batch_id) DO NOTHING``. The
ledger's primary key makes that insert wait while another transaction holds an uncommitted row
for the same batch, and then find its row if that transaction committed (or go on, if it rolled
back). So two loaders of one batch (a zombie past its lease and its successor) serialize on that
one key, and the second finds the first's row and writes nothing; an operator's abandon is the
same insert with ``status 'abandoned'``, so of a load and an abandon racing, exactly one wins.
With the claim held, the load ``COPY``s the manifest's objects into a temporary staging table
and inserts the staged rows into the target, and commits the claim and the rows together.

Loads of different batches never wait on each other, whatever their target table and even when
they share one ledger (the default): the only lock a load takes beyond its own rows is its
ledger row's key. (Redshift enforces no unique key, so its loader locks a ledger per target
instead: :mod:`.redshift`.) At ``REPEATABLE READ`` or ``SERIALIZABLE`` a claim that waited on
a load which then committed fails with a serialization error (the committed row is outside the
transaction's snapshot); the loader then reads the ledger again in a new transaction, so the
answer is the same at every isolation level.

Each object is read by the version id or ETag its manifest entry names, so exactly the members'
own content. Records map onto the target table's columns by name, as Redshift's ``JSON 'auto'``
does: JSON lines by their keys, CSV by its header (each file as the loader's ``file_format``
says, or without one by the key's suffix); a column a record lacks is NULL, a key no
column has is ignored. Every identifier is quoted by :func:`patterns.sql.postgres_identifier`
(the DDL of :meth:`PostgresLoader.ledger_ddl` too) and every value is a parameter or COPY data:
no SQL is built from input. Requires ``psycopg`` 3 (``pip install 'psycopg[binary]'``),
imported on the first load, not when the pipeline is built.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateless_state import InvalidArgument, StatelessStateError, clock

from ..sql import postgres_identifier, postgres_name
from .base import AbandonOutcome, FileFormat, LoadOutcome, Ticket, read_records

if TYPE_CHECKING:
    from ..batcher.manifest import Manifest

__all__ = ["MAX_BATCH_ID", "PostgresLoader"]

MAX_BATCH_ID = 256
"""The characters of the ledger's ``batch_id VARCHAR(256)`` (:meth:`PostgresLoader.ledger_ddl`)."""

# A batch id is ``<stream>/<lane>/<seq:012d>``: its longest suffix is lane 255's (lanes reach
# 256, and only grow) with 12 digits, whatever the feed's lanes today.
_LONGEST_SUFFIX = len("/255/") + 12


@dataclass
class PostgresLoader:
    """Loads batches into ``table`` (``[schema.]table``) of the PostgreSQL database at ``dsn``,
    reading objects with ``s3`` (a boto3 S3 client). The ledger table must exist: run
    :meth:`ledger_ddl` once (its primary key is what keeps a batch from committing twice). It
    is ``stateless_state_ledger``, shared by every target, unless ``ledger_table`` names
    another: its row claims take no table lock, so sharing it costs no wait, and a deployment
    keeps judging its batches by the ledger it judged them by. A feed's target takes its own,
    by the loaders' one rule (:func:`~patterns.loaders.ledger.postgres_ledger`). Every
    load and abandon is one transaction at ``isolation`` (any level is safe: the ledger claim
    does not depend on it), on a connection of its own, so one loader may serve many threads.
    ``file_format``: what every file is (:class:`~patterns.loaders.base.FileFormat`), a file
    that is not failing its batch's load as a COPY would; None reads each file by its content."""

    dsn: str
    table: str
    s3: Any
    ledger_table: str = "stateless_state_ledger"
    isolation: str = "READ COMMITTED"
    connect_timeout: int = 10
    file_format: FileFormat | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dsn, str) or not self.dsn.strip():
            raise InvalidArgument("PostgresLoader dsn must be a non-empty connection string")
        postgres_name(self.table, what="PostgresLoader table")
        postgres_name(self.ledger_table, what="PostgresLoader ledger_table")
        if (
            isinstance(self.connect_timeout, bool)
            or not isinstance(self.connect_timeout, int)
            or self.connect_timeout < 1
        ):
            raise InvalidArgument(
                f"PostgresLoader connect_timeout must be a positive int of seconds, got "
                f"{self.connect_timeout!r}"
            )
        if self.isolation not in {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}:
            raise InvalidArgument(
                f"isolation {self.isolation!r}: use READ COMMITTED, REPEATABLE READ or SERIALIZABLE"
            )

    @property
    def target(self) -> str:
        """The table this loader commits into and a digest of its connection string (which may
        hold a password, so it is never shown): the key the sweeper groups loads by
        (:mod:`patterns.sweeper`)."""
        digest = hashlib.sha256(self.dsn.encode()).hexdigest()[:12]
        return f"postgresql:{digest}/{self.table}"

    def _identifier(self, name: str, *, parameterised: bool = False) -> Any:
        from psycopg import sql

        quoted = postgres_identifier(*postgres_name(name))
        # psycopg reads every '%' of a query run with parameters as a placeholder, those in a
        # quoted name too: there it must be '%%' (and stay '%' where nothing is bound).
        return sql.SQL(quoted.replace("%", "%%") if parameterised else quoted)

    def check_stream(self, stream: str) -> None:
        """Raise :class:`InvalidArgument` unless every batch id of ``stream`` fits the ledger's
        ``batch_id VARCHAR(256)`` and PostgreSQL's text (which cannot hold NUL): such a batch id
        could never be claimed, so every load of the stream would fail, forever. The pipeline
        calls it when it is built; no connection."""
        if "\x00" in stream:
            raise InvalidArgument(
                f"stream {stream[:40]!r} contains NUL, which PostgreSQL text (the ledger's "
                "batch_id) cannot hold: no batch of it could ever load; give a stream without it"
            )
        longest = len(stream) + _LONGEST_SUFFIX
        if longest > MAX_BATCH_ID:
            raise InvalidArgument(
                f"stream {stream[:40]!r}... ({len(stream)} characters) makes batch ids of up to "
                f"{longest} characters, over the {MAX_BATCH_ID} of the PostgreSQL ledger's "
                f"batch_id column: give a stream of at most {MAX_BATCH_ID - _LONGEST_SUFFIX} "
                "characters"
            )

    def ledger_ddl(self) -> str:
        """The one-time DDL for the ledger table (the same columns as the Redshift ledger's),
        its name quoted exactly as the loads quote it."""
        quoted = postgres_identifier(*postgres_name(self.ledger_table))
        return (
            f"CREATE TABLE IF NOT EXISTS {quoted} (batch_id VARCHAR(256) NOT NULL, "
            "fence BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL, "
            "status VARCHAR(16) NOT NULL DEFAULT 'loaded', PRIMARY KEY (batch_id))"
        )

    def _transaction(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
        conn.execute(f"BEGIN ISOLATION LEVEL {self.isolation}")
        return conn

    def _claim(self, conn: Any, batch_id: str, fence: int, status: str) -> str | None:
        """Insert the batch's ledger row with ``status`` as the transaction's first statement
        (the module docstring); None when this transaction now holds it, else the status of
        the row another transaction committed. Waits only on a transaction that holds an
        uncommitted row for this same batch."""
        import psycopg
        from psycopg import sql

        ledger = self._identifier(self.ledger_table, parameterised=True)
        try:
            claimed = conn.execute(
                sql.SQL(
                    "INSERT INTO {} (batch_id, fence, loaded_at, status) "
                    "VALUES (%s, %s, now(), %s) ON CONFLICT (batch_id) DO NOTHING RETURNING 1"
                ).format(ledger),
                (batch_id, fence, status),
            ).fetchone()
        except psycopg.errors.InvalidColumnReference:
            # No unique key to conflict on: without it two loads could both commit.
            raise InvalidArgument(
                f"the ledger table {self.ledger_table!r} has no primary key on batch_id, which "
                "keeps a batch from committing twice: create it with ledger_ddl(), or ALTER TABLE "
                "it ADD PRIMARY KEY (batch_id)"
            ) from None
        except psycopg.errors.SerializationFailure:
            # REPEATABLE READ and up: the row we waited on committed after our snapshot. A new
            # transaction sees it; without a row the failure was another one, and is raised.
            conn.execute("ROLLBACK")
            conn.execute(f"BEGIN ISOLATION LEVEL {self.isolation}")
            found = self._status(conn, batch_id)
            if found is None:
                raise
            return found
        if claimed is not None:
            return None
        found = self._status(conn, batch_id)
        if found is None:  # pragma: no cover - ledger rows are never deleted
            raise StatelessStateError(
                f"the ledger row of batch {batch_id} conflicted and then was gone: ledger rows "
                "must never be deleted"
            )
        return found

    def _status(self, conn: Any, batch_id: str) -> str | None:
        from psycopg import sql

        row = conn.execute(
            sql.SQL("SELECT status FROM {} WHERE batch_id = %s").format(
                self._identifier(self.ledger_table, parameterised=True)
            ),
            (batch_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        """Load the batch in one transaction (see the module docstring): the objects are read
        from S3 first (one ``GetObject`` each), then one connection, the ledger claim, one
        ``COPY`` and one ``INSERT ... SELECT``, and the commit."""
        objects = [(e, list(read_records(self.s3, e, self.file_format))) for e in manifest.entries]
        with self._transaction() as conn:
            try:
                found = self._claim(conn, manifest.batch_id, ticket.fence, "loaded")
                if found is not None:
                    conn.execute("ROLLBACK")
                    return LoadOutcome(manifest.batch_id, False, None, 0, found == "abandoned")
                rows = self._copy(conn, objects)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return LoadOutcome(manifest.batch_id, True, None, rows)

    def _copy(self, conn: Any, objects: list[tuple[Any, list[str]]]) -> int:
        """COPY the records into a staging table shaped like the target, then insert them."""
        from psycopg import sql

        target = self._identifier(self.table)
        stage = sql.SQL(postgres_identifier(f"stage_{int(clock.now() * 1e6)}"))
        conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, target))
        columns = [
            d.name
            for d in conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(stage)).description
        ]
        names = sql.SQL(", ").join(sql.SQL(postgres_identifier(c)) for c in columns)
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, names)) as copy,
        ):
            for _, records in objects:
                for text in records:
                    record = json.loads(text)
                    copy.write_row([_cell(record.get(c)) for c in columns])
        inserted = conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, stage))
        return int(inserted.rowcount)

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        """The ledger's answer for the ticket's batch: committed before (or abandoned), so this
        load commits nothing; None when the ledger has no row for it. One ``SELECT``, no lock
        (a load racing this read is answered by its own claim)."""
        batch_id = ticket.batch.id
        with self._transaction() as conn:
            found = self._status(conn, batch_id)
            conn.execute("ROLLBACK")
        if found is None:
            return None
        return LoadOutcome(batch_id, False, None, 0, abandoned=found == "abandoned")

    def abandon(self, batch_id: str) -> AbandonOutcome:
        """Record an abandon in the ledger: the claim of a load, with ``status 'abandoned'``
        (one transaction; it waits only on a load of this batch still in flight). ``loaded``
        (nothing changed) when a load already committed the batch."""
        with self._transaction() as conn:
            try:
                found = self._claim(conn, batch_id, 0, "abandoned")
                conn.execute("COMMIT" if found is None else "ROLLBACK")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return "loaded" if found == "loaded" else "abandoned"

    def counts_by(self, *columns: str) -> dict[tuple[str, ...], int]:
        """Rows of the target table per value of these columns (as text), for checking that
        every object version was loaded exactly once."""
        from psycopg import sql

        names = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.SQL(postgres_identifier(c, what="column")))
            for c in columns
        )
        query = sql.SQL("SELECT {}, count(*) FROM {} GROUP BY {}").format(
            names, self._identifier(self.table), names
        )
        with self._transaction() as conn:
            found = conn.execute(query).fetchall()
            conn.execute("COMMIT")
        return {tuple(r[:-1]): int(r[-1]) for r in found}

    def ledger(self) -> dict[str, int]:
        """Committed batches (abandoned ones are not listed), each with 0: this ledger, like
        Redshift's, does not keep row counts."""
        from psycopg import sql

        query = sql.SQL("SELECT batch_id FROM {} WHERE status = 'loaded'").format(
            self._identifier(self.ledger_table)
        )
        with self._transaction() as conn:
            found = conn.execute(query).fetchall()
            conn.execute("COMMIT")
        return {str(r[0]): 0 for r in found}


def _cell(value: Any) -> Any:
    # Nested JSON goes in as its text (a json/jsonb column parses it); scalars as they are.
    return json.dumps(value) if isinstance(value, dict | list) else value
