"""Each object version's content loaded at most once, and exactly once while it exists: an S3 key
rewritten before its batch loads, in an unversioned and a versioned bucket, in batches of 1 and
of 10 files, for the local warehouse and for the Redshift statement path on PostgreSQL (DynamoDB
Local, a local S3)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from patterns.batcher import BatchState, Thresholds
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext
from tests.support.cli import cli
from tests.support.pg_warehouse import redshift_on_postgres as on_postgres
from tests.support.pipelines import count_pipeline

NO_TIME = FakeLambdaContext(1000)  # too little left to load: handle() only adds


def put(s3: Any, bucket: str, key: str, version: int, rows: int) -> dict[str, Any]:
    """Write ``rows`` JSON lines tagged with ``version``; the notification S3 would send."""
    body = "".join(json.dumps({"v": version, "n": n}) + "\n" for n in range(rows)).encode()
    return put_object(s3, bucket, key, body, sequencer=uuid.uuid4().hex[:16].upper())


def rows_by_version(db: Path, key: str) -> Counter[int]:
    """Loaded rows of ``key``'s content (staged copies included), by the version they carry."""
    with sqlite3.connect(db) as conn:
        payloads = conn.execute("SELECT payload FROM rows").fetchall()
    return Counter(json.loads(p)["v"] for (p,) in payloads if "v" in json.loads(p))


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
@pytest.mark.parametrize("batch", [1, 10])
@pytest.mark.parametrize("always_stage", [False, True], ids=["stage-when-needed", "always-stage"])
def test_a_key_rewritten_before_its_batch_loads(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    versioned: bool,
    batch: int,
    always_stage: bool,
) -> None:
    s3, bucket = s3_bucket
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    db = tmp_path / "wh.db"
    pipeline = count_pipeline(
        ddb_store,
        s3,
        bucket,
        LocalWarehouseLoader(db, s3),
        batch,
        stream=f"rewrite#{uuid.uuid4().hex[:6]}",
        always_stage=always_stage,
    )
    others = [put(s3, bucket, f"other/{i}.jsonl", 0, 1) for i in range(max(batch - 2, 0))]
    sealed = pipeline.handle(direct(*others, put(s3, bucket, "k.jsonl", 1, 2)), NO_TIME)["sealed"]
    # Rewritten before its batch loads (an age window, a batch waiting for the sweeper, a
    # retry's backoff): the new content is its own arrival.
    sealed += pipeline.handle(direct(put(s3, bucket, "k.jsonl", 2, 3)), NO_TIME)["sealed"]
    assert len(sealed) == (2 if batch == 1 else 1)
    assert [pipeline.load(b) for b in sealed] == ["loaded"] * len(sealed)
    loaded = rows_by_version(db, "k.jsonl")
    assert loaded[2] == 3, "the new content, once"
    batches = [pipeline.batcher.batch(b) for b in sealed]
    superseded = [m for b in batches if b is not None for m in b.superseded]
    if versioned:
        assert loaded[1] == 2, "the old version still exists: loaded once, from a staged copy"
        assert superseded == []
    else:
        assert loaded[1] == 0, "overwritten: never loaded in the new content's place"
        assert len(superseded) == 1 and "k.jsonl" in superseded[0]
    assert loaded[0] == max(batch - 2, 0)
    assert all(b is not None and b.state == BatchState.LOADED for b in batches)


def test_a_batch_whose_every_member_is_gone_loads_nothing(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "wh.db"
    pipeline = S3ToRedshift(
        ddb_store,
        stream="gone",
        loader=LocalWarehouseLoader(db, s3),
        manifest_bucket=bucket,
        thresholds=Thresholds(count=1, bytes=None, age=None),
        s3_client=s3,
        min_load_time=60,
    )
    (sealed,) = pipeline.handle(direct(put(s3, bucket, "x.jsonl", 1, 2)), NO_TIME)["sealed"]
    put(s3, bucket, "x.jsonl", 2, 1)  # overwritten, and this notification never arrives
    assert pipeline.load(sealed) == "loaded"
    assert rows_by_version(db, "x.jsonl") == Counter()
    batch = pipeline.batcher.batch(sealed)
    assert batch is not None and batch.state == BatchState.LOADED and len(batch.superseded) == 1
    shown = cli(ddb_store, "--json", "batches", "show", sealed, tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["superseded"] == list(batch.superseded)


def redshift_on_postgres(postgres: str, s3: Any) -> RedshiftDataApiLoader:
    """The Redshift loader on PostgreSQL
    (:func:`tests.support.pg_warehouse.redshift_on_postgres`)."""
    return on_postgres(postgres, s3)[0]


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
@pytest.mark.parametrize("batch", [1, 10])
def test_the_redshift_statement_path_loads_each_version_once(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    postgres: str,
    versioned: bool,
    batch: int,
) -> None:
    """The same scenario through ``RedshiftDataApiLoader``, its statements run on PostgreSQL,
    COPY reading the manifest's objects from S3 as they are at COPY time."""
    s3, bucket = s3_bucket
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    loader = redshift_on_postgres(postgres, s3)
    pipeline = count_pipeline(
        ddb_store, s3, bucket, loader, batch, stream=f"rs-{uuid.uuid4().hex[:6]}"
    )
    others = [put(s3, bucket, f"other/{i}.jsonl", 0, 1) for i in range(max(batch - 2, 0))]
    sealed = pipeline.handle(direct(*others, put(s3, bucket, "k.jsonl", 1, 2)), NO_TIME)["sealed"]
    sealed += pipeline.handle(direct(put(s3, bucket, "k.jsonl", 2, 3)), NO_TIME)["sealed"]
    assert [pipeline.load(b) for b in sealed] == ["loaded"] * len(sealed)
    with psycopg.connect(postgres, autocommit=True) as conn:
        payloads = conn.execute(f"SELECT payload FROM {loader.table}").fetchall()
    loaded = Counter(json.loads(p)["v"] for (p,) in payloads)
    assert loaded == Counter({0: max(batch - 2, 0), 1: 2 if versioned else 0, 2: 3})
