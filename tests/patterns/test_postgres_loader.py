"""``PostgresLoader`` (RDS, Aurora PostgreSQL): COPY FROM STDIN, the ledger, abandon, columns by
name, on the PostgreSQL harness with a local S3 and DynamoDB Local."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from patterns import PostgresLoader
from patterns.batcher import BatchState, Thresholds
from patterns.batcher.abandon import abandon_batch
from patterns.batcher.manifest import build_manifest
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import InvalidArgument, Store
from stateless_state.testing import FakeLambdaContext
from tests.support.pipelines import count_pipeline

pytestmark = pytest.mark.race


def warehouse(postgres: str, s3: Any, isolation: str = "READ COMMITTED") -> PostgresLoader:
    schema = f"p{uuid.uuid4().hex[:8]}"
    loader = PostgresLoader(
        postgres, f"{schema}.events", s3, ledger_table=f"{schema}.ledger", isolation=isolation
    )
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (id int, v int, note text, extra jsonb)")
        conn.execute(loader.ledger_ddl())
    return loader


def rows(postgres: str, loader: PostgresLoader) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres, autocommit=True) as conn:
        return conn.execute(
            f"SELECT id, v, note, extra FROM {loader.table} ORDER BY 1, 2"
        ).fetchall()


def test_records_map_onto_columns_by_name_and_each_version_loads_once(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    loader = warehouse(postgres, s3)
    pipeline = count_pipeline(ddb_store, s3, bucket, loader, 2, stream=f"pg-{uuid.uuid4().hex[:6]}")
    jsonl = (
        b'{"id": 1, "v": 1, "note": "a", "extra": {"k": [1]}, "ignored": 0}\n{"id": 2, "v": 1}\n'
    )
    csv = gzip.compress(b"id,v,note\n3,1,c\n")
    first = put_object(s3, bucket, "in/a b#1.jsonl", jsonl)
    sealed = pipeline.handle(
        direct(first, put_object(s3, bucket, "in/c.csv.gz", csv)), FakeLambdaContext(1000)
    )["sealed"]
    rewritten = put_object(s3, bucket, "in/a b#1.jsonl", b'{"id": 1, "v": 2}\n')
    sealed += pipeline.handle(
        direct(rewritten, put_object(s3, bucket, "in/d.jsonl", b'{"id": 4, "v": 1}\n')),
        FakeLambdaContext(1000),
    )["sealed"]
    assert [pipeline.load(b) for b in sealed] == ["loaded", "loaded"]
    assert [pipeline.load(b) for b in sealed] == ["busy", "busy"], "loaded batches stay loaded"
    assert rows(postgres, loader) == [
        (1, 1, "a", {"k": [1]}),
        (1, 2, None, None),
        (2, 1, None, None),
        (3, 1, "c", None),
        (4, 1, None, None),
    ]


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "SERIALIZABLE"])
def test_zombie_successor_and_abandon_on_postgres(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str, isolation: str
) -> None:
    s3, bucket = s3_bucket
    loader = warehouse(postgres, s3, isolation)
    pipeline = S3ToRedshift(
        ddb_store,
        stream=f"pgz-{uuid.uuid4().hex[:6]}",
        loader=loader,
        manifest_bucket=bucket,
        thresholds=Thresholds(count=2, bytes=None, age=None),
        s3_client=s3,
        min_load_time=60,
        load_lease=0.2,
    )
    records = [
        put_object(s3, bucket, f"z/{i}.jsonl", json.dumps({"id": i, "v": 1}).encode())
        for i in range(16)
    ]
    sealed = pipeline.handle(direct(*records), FakeLambdaContext(1000))["sealed"]
    b = pipeline.batcher
    zombies = {s: b.claim_load(s) for s in sealed}
    time.sleep(0.3)  # their leases run out
    tickets = {s: [zombies[s], b.claim_load(s, lease=60)] for s in sealed}
    manifests = {s: build_manifest(s, b.members(s), bucket=bucket) for s in sealed}
    start = threading.Barrier(2 * len(sealed) + len(sealed[::2]))

    def run(job: tuple[str, Any]) -> tuple[str, str]:
        batch_id, ticket = job
        start.wait()
        if ticket is None:
            return batch_id, "abandon:" + loader.abandon(batch_id)
        outcome = loader.load(ticket, manifests[batch_id])
        return batch_id, "abandoned" if outcome.abandoned else str(outcome.committed)

    jobs = [(s, t) for s in sealed for t in tickets[s]] + [(s, None) for s in sealed[::2]]
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(run, jobs))
    loaded = {r[0] for r in rows(postgres, loader)}
    for s in sealed:
        said = sorted(a for bid, a in answers if bid == s)
        ids = {int(m.id.split("/")[-1].split(".")[0]) for m in b.members(s)}
        if "abandon:abandoned" in said:
            assert said == ["abandon:abandoned", "abandoned", "abandoned"]
            assert not ids & loaded, "no rows of an abandoned batch"
        else:
            assert said.count("True") == 1 and said.count("False") == 1, said
            assert ids <= loaded
    assert len(rows(postgres, loader)) == len(loaded), "no row twice"


def test_abandon_through_the_operator_path(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    s3, bucket = s3_bucket
    loader = warehouse(postgres, s3)
    pipeline = count_pipeline(
        ddb_store, s3, bucket, loader, 1, stream=f"pga-{uuid.uuid4().hex[:6]}"
    )
    record = put_object(s3, bucket, "a/1.jsonl", b'{"id": 9, "v": 1}\n')
    (sealed,) = pipeline.handle(direct(record), FakeLambdaContext(1000))["sealed"]
    pipeline.batcher.claim_load(sealed)
    assert abandon_batch(pipeline.batcher, loader, sealed, who="x", why="y") == "abandoned"
    batch = pipeline.batcher.batch(sealed)
    assert batch is not None and batch.state == BatchState.ABANDONED
    with pytest.raises(InvalidArgument, match="isolation"):
        PostgresLoader(postgres, "t", s3, isolation="READ UNCOMMITTED; DROP TABLE t")
