"""The Redshift loader's ledger per target: each target table gets its own ledger by default, so
the ``LOCK`` a commit takes on it holds up only the loads into that target. The statements run
on PostgreSQL through the Data API stand-in (``LOCK t`` as ``LOCK TABLE t``), with the lock of
one target's ledger held by a session of the test, as a load mid-commit would hold it."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from patterns.batcher.batches import Batch, BatchState
from patterns.batcher.manifest import Manifest, ManifestEntry
from patterns.loaders import redshift_ledger
from patterns.loaders.redshift import RedshiftDataApiLoader
from tests.support.pg_warehouse import PostgresDataApi, create_ledger

ROLE = "arn:aws:iam::123456789012:role/redshift-copy"


def rs(table: str, **kwargs: Any) -> RedshiftDataApiLoader:
    return RedshiftDataApiLoader(
        table=table, iam_role=ROLE, database="dev", workgroup_name="wg", poll_interval=0, **kwargs
    )


@pytest.mark.parametrize(
    ("table", "ledger"),
    [
        ("analytics.clicks", "analytics.stateless_state_ledger_clicks"),
        ("clicks", "stateless_state_ledger_clicks"),
        ("a.b" + "c" * 103, "a.stateless_state_ledger_b" + "c" * 103),  # 127 bytes: the limit
    ],
)
def test_each_target_has_its_own_ledger_by_default(table: str, ledger: str) -> None:
    loader = rs(table)
    assert loader.ledger_table == ledger
    assert loader.ledger_ddl().startswith(
        "CREATE TABLE IF NOT EXISTS " + ".".join(f'"{p}"' for p in ledger.split("."))
    )
    assert rs(table, ledger_table="shared.stateless_state_ledger").ledger_table == (
        "shared.stateless_state_ledger"
    ), "a named ledger is kept (shared by the targets that name it)"


def test_a_derived_ledger_longer_than_redshift_allows_is_shortened_by_the_one_rule() -> None:
    table = "a.b" + "c" * 104
    ledger = rs(table).ledger_table
    assert ledger == redshift_ledger(table) and ledger.startswith("a.stateless_state_ledger_b")
    assert len(ledger.split(".")[1]) == 127
    assert rs(table, ledger_table="a.ledger").ledger_table == "a.ledger"


@dataclass
class Ticket:
    """What the loader uses of a ticket: the batch (no earlier statement), the fence, and the
    statement id it records (kept here)."""

    batch: Batch
    fence: int = 1
    statements: list[str] = field(default_factory=list)

    def record_statement(self, statement_id: str) -> None:
        self.statements.append(statement_id)


def waiting_on_locks(postgres: str) -> int:
    with psycopg.connect(postgres, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_held_ledger_lock_holds_up_only_its_own_target(postgres: str) -> None:
    schema = f"t{uuid.uuid4().hex[:8]}"
    manifests = {
        t: Manifest(f"{t}/0/{0:012d}", "manifests", f"m/{t}", (ManifestEntry("s3://d/k", 1),))
        for t in ("clicks", "views")
    }
    rows = {m.url: [(m.batch_id, "s3://d/k", 0)] for m in manifests.values()}
    api = PostgresDataApi(postgres, "SERIALIZABLE", rows.__getitem__)
    loaders = {t: rs(f"{schema}.{t}", client=api) for t in manifests}
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for t, loader in loaders.items():
            conn.execute(f"CREATE TABLE {schema}.{t} (batch_id text, url text, line int)")
            create_ledger(postgres, loader)

    def load(target: str) -> bool:
        m = manifests[target]
        batch = Batch(target, 0, 0, BatchState.LOADING, 1, 1, 0.0)
        return loaders[target].load(Ticket(batch), m).committed

    with psycopg.connect(postgres, autocommit=True) as holder, ThreadPoolExecutor(2) as pool:
        # A load of clicks mid-commit: its ledger's lock taken, not yet released.
        holder.execute("BEGIN")
        holder.execute(f'LOCK TABLE "{schema}"."stateless_state_ledger_clicks"')
        clicks = pool.submit(load, "clicks")
        views = pool.submit(load, "views")
        assert views.result(timeout=10), "another target's load commits meanwhile"
        deadline = time.monotonic() + 10
        while waiting_on_locks(postgres) < 1:
            assert time.monotonic() < deadline, "the load into clicks should wait on its ledger"
            time.sleep(0.02)
        assert not clicks.done()
        holder.execute("COMMIT")
        assert clicks.result(timeout=10), "and the waiting one commits once the lock is free"
    with psycopg.connect(postgres, autocommit=True) as conn:
        for t in manifests:
            assert conn.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone() == (1,)
