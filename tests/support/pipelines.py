"""Pipelines the patterns' tests build: an ``S3ToRedshift`` sealing a batch every ``count``
arrivals, the warehouse of the copy-window tests (the loader's SQL on PostgreSQL), their
object writer and readers, and a batch sealed for the operator's abandon."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from patterns.batcher import Thresholds
from patterns.hooks import CrashPoint, set_crash_hook
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext
from tests.support.pg_warehouse import PostgresDataApi, redshift_on_postgres

NO_TIME = FakeLambdaContext(1000)  # too little left to load: handle() only adds


def count_pipeline(
    store: Store,
    s3: Any,
    bucket: str,
    loader: Any,
    count: int,
    *,
    stream: str,
    min_load_time: float = 60,
    **options: Any,
) -> S3ToRedshift:
    """An ``S3ToRedshift`` on ``stream`` that seals a batch every ``count`` arrivals (no byte or
    age threshold), its manifests in ``bucket``; ``options`` go to the pipeline as they are.
    Builds objects only: no AWS call until the pipeline is used."""
    return S3ToRedshift(
        store,
        stream=stream,
        loader=loader,
        manifest_bucket=bucket,
        thresholds=Thresholds(count=count, bytes=None, age=None),
        s3_client=s3,
        min_load_time=min_load_time,
        **options,
    )


def put(s3: Any, bucket: str, key: str, version: int, rows: int) -> dict[str, Any]:
    """Write ``rows`` JSON lines tagged ``version`` at ``key``; its S3 event record."""
    body = "".join(json.dumps({"v": version, "n": n}) + "\n" for n in range(rows)).encode()
    return put_object(s3, bucket, key, body, sequencer=uuid.uuid4().hex[:16].upper())


def warehouse(
    postgres: str, s3: Any, after: Callable[[dict[str, Any]], None] | None = None
) -> tuple[RedshiftDataApiLoader, PostgresDataApi]:
    return redshift_on_postgres(postgres, s3, after)


def loaded_versions(postgres: str, loader: RedshiftDataApiLoader, key: str) -> Counter[int]:
    """Rows loaded from ``key``'s content (its staged copies included), by version."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        rows = conn.execute(f"SELECT url, payload FROM {loader.table}").fetchall()
    name = key.rsplit("/", 1)[-1]
    return Counter(json.loads(p)["v"] for url, p in rows if url.endswith(name))


def is_copy(call: dict[str, Any]) -> bool:
    return any(sql.startswith("COPY ") for sql in call["Sqls"])


def sealed_pipeline(
    store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> tuple[S3ToRedshift, LocalWarehouseLoader, str]:
    """A pipeline on the local warehouse with one batch of two objects sealed, not loaded."""
    s3, bucket = s3_bucket
    records = [
        put_object(s3, bucket, k, b'{"x": 1}\n{"x": 2}\n') for k in ("a#1.jsonl", "b%2.jsonl")
    ]
    loader = LocalWarehouseLoader(tmp_path / "wh.db", s3)
    pipeline = count_pipeline(
        store, s3, bucket, loader, 2, stream="final#stream", min_load_time=3600
    )
    # Too little time left to load: handle() only adds, and the test drives the load.
    (sealed,) = pipeline.handle(direct(*records), FakeLambdaContext(1000))["sealed"]
    return pipeline, loader, sealed


def load_dying_after_commit(
    pipeline: S3ToRedshift, batch_id: str, died: type[BaseException]
) -> None:
    """Load ``batch_id`` and raise ``died`` at the after-commit crash point: the loader dies with
    the warehouse committed and the batch not yet marked loaded. The crash hook is cleared
    whatever happens."""

    def die(point: CrashPoint) -> None:
        if point == "after-commit":
            raise died

    set_crash_hook(die)
    try:
        with pytest.raises(died):
            pipeline.load(batch_id)
    finally:
        set_crash_hook(None)
