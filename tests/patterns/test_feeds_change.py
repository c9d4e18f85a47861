"""A feed changed (table, format and COPY options) while its batches are open and sealed, on
DynamoDB Local, a local S3 (versioned) and the Redshift loader's statements run on PostgreSQL:
every batch is loaded under the configuration version it was sealed with, by whichever
container sealed it (one that had not seen the change included), and each object version is
loaded exactly once across the change."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import psycopg

from patterns.batcher import BatchState, Thresholds
from patterns.feeds import Feed, FeedsConfig, RedshiftTarget, S3Feeds
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext
from tests.support.pg_warehouse import PostgresDataApi, create_ledger, rows_from_s3


def no_time() -> FakeLambdaContext:
    """An invocation with 5 s left: retries fit, a load (min_load_time 10 s) does not."""
    return FakeLambdaContext(5000)


def test_each_batch_loads_as_the_version_it_was_sealed_under_says(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    schema = f"rs{uuid.uuid4().hex[:8]}"
    calls: list[dict[str, Any]] = []
    api = PostgresDataApi(postgres, "SERIALIZABLE", rows_from_s3(s3), calls.append)
    v1_target = RedshiftTarget(
        table=f"{schema}.t1",
        iam_role="arn:aws:iam::123456789012:role/copy",
        database="dev",
        workgroup_name="wg",
    )
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for table in ("t1", "t2"):
            conn.execute(f"CREATE TABLE {schema}.{table} (url text, line int, payload text)")
    config = FeedsConfig(ddb_store)
    config.add(
        Feed(
            name="orders",
            bucket=bucket,
            prefix="orders/",
            target=v1_target,
            thresholds=Thresholds(count=3, bytes=None, age=None),
        ),
        who="ana",
        why="new feed",
    )

    def container(cache_interval: float) -> S3Feeds:
        return S3Feeds(
            ddb_store,
            manifest_bucket=bucket,
            s3_client=s3,
            redshift_client=api,
            cache_interval=cache_interval,
            min_load_time=10,
        )

    fresh, stale = container(0), container(900)
    written: Counter[tuple[str, int]] = Counter()

    def arrive(who: S3Feeds, name: str, version: int) -> None:
        body = "".join(json.dumps({"o": name, "v": version, "n": n}) + "\n" for n in range(2))
        record = put_object(s3, bucket, f"orders/{name}.jsonl", body.encode())
        written[(name, version)] += 2
        who.handle(direct(record), no_time())

    # Version 1: batch 0 sealed (o0, o1, o2), batch 1 open with o3.
    for i in range(4):
        arrive(fresh, f"o{i}", 1)
    stale.prepare()  # this container reads version 1 and keeps it for an hour
    # Version 2: another table, CSV with a header, while batch 0 is sealed and batch 1 open.
    v2 = config.update(
        "orders",
        {"target": {"table": f"{schema}.t2", "format": "csv", "copy_options": ["IGNOREHEADER 1"]}},
        who="bo",
        why="v2 of the orders table",
    )
    assert v2.version == 2
    for name in ("t1", "t2"):
        target = RedshiftTarget(**{**v1_target.__dict__, "table": f"{schema}.{name}"})
        loader = target.loader()
        assert isinstance(loader, RedshiftDataApiLoader)
        create_ledger(postgres, loader)
    arrive(fresh, "o4", 1)
    arrive(fresh, "o5", 1)  # seals batch 1 (opened under version 1) under version 2
    arrive(fresh, "o0", 2)  # o0 rewritten: a new object version, batch 2
    arrive(stale, "o6", 1)
    arrive(stale, "o7", 1)  # seals batch 2, under version 1: the sealer had not seen version 2
    arrive(fresh, "o8", 1)  # batch 3, open
    sealed = {b.id: b for b in fresh.pipeline("orders").batcher.batches()}
    assert {i: b.config_version for i, b in sealed.items()} == {
        "orders/0/000000000000": 1,
        "orders/0/000000000001": 2,
        "orders/0/000000000002": 1,
        "orders/0/000000000003": None,  # open: recorded by its seal
    }
    [closing] = config.seal_open("orders")
    assert closing.config_version == 2

    swept = fresh.sweep()
    assert sorted(swept["loads"].values()) == ["loaded"] * 4
    expected = {0: ("t1", "FORMAT AS JSON 'auto'"), 1: ("t2", "FORMAT AS CSV IGNOREHEADER 1")}
    expected |= {2: expected[0], 3: expected[1]}
    for seq, (table, copy_format) in expected.items():
        batch_id = f"orders/0/{seq:012d}"
        sqls = [
            sql
            for call in calls
            if call["StatementName"].removeprefix("stateless_state:").removeprefix("copy:")
            == batch_id
            for sql in call["Sqls"]
        ]
        copies = [s for s in sqls if s.startswith("COPY ")]
        assert copies and all(s.endswith(f"MANIFEST {copy_format}") for s in copies), batch_id
        ledger_row = f'INSERT INTO "{schema}"."stateless_state_ledger_'
        inserts = [s for s in sqls if s.startswith("INSERT INTO ") and not s.startswith(ledger_row)]
        assert inserts == [
            f'INSERT INTO "{schema}"."{table}" SELECT * FROM "stage_orders_0_{seq:012d}" '
            f'WHERE NOT EXISTS (SELECT 1 FROM "{schema}"."stateless_state_ledger_{table}" '
            f"WHERE batch_id = '{batch_id}')"
        ], batch_id
    with psycopg.connect(postgres, autocommit=True) as conn:
        loaded: Counter[tuple[str, int]] = Counter()
        by_table: dict[str, set[str]] = {}
        for table in ("t1", "t2"):
            for (payload,) in conn.execute(f"SELECT payload FROM {schema}.{table}").fetchall():
                row = json.loads(payload)
                loaded[(row["o"], row["v"])] += 1
                by_table.setdefault(table, set()).add(row["o"])
            ledger = conn.execute(
                f"SELECT batch_id FROM {schema}.stateless_state_ledger_{table}"
            ).fetchall()
            assert sorted(r[0] for r in ledger) == [
                f"orders/0/{s:012d}" for s, (t, _) in expected.items() if t == table
            ]
    assert loaded == written, "each object version exactly once across the change"
    assert by_table == {"t1": {"o0", "o1", "o2", "o6", "o7"}, "t2": {"o3", "o4", "o5", "o8"}}
    batches = list(fresh.pipeline("orders").batcher.batches())
    assert {b.state for b in batches} == {BatchState.LOADED}
