"""Object-version edges (issue 23, item 2): content written before versioning was enabled (the
``"null"`` version), staged keys near S3's 1,024-byte limit, a batch of many deleted files, and
a ``HeadObject`` that answers 403 (DynamoDB Local, a local S3 refusing long keys as S3 does)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from patterns.batcher import BatchState
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object, refuse_long_keys
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext
from tests.support.pipelines import count_pipeline

NO_TIME = FakeLambdaContext(1000)


def put(s3: Any, bucket: str, key: str, version: int, rows: int) -> dict[str, Any]:
    body = "".join(json.dumps({"v": version, "n": n}) + "\n" for n in range(rows)).encode()
    return put_object(s3, bucket, key, body, sequencer=uuid.uuid4().hex[:16].upper())


def loaded(db: Path) -> Counter[int]:
    with sqlite3.connect(db) as conn:
        payloads = conn.execute("SELECT payload FROM rows").fetchall()
    return Counter(json.loads(p)["v"] for (p,) in payloads)


def pipeline(store: Store, s3: Any, bucket: str, db: Path, count: int, **kw: Any) -> S3ToRedshift:
    stream = f"edge #/ {uuid.uuid4().hex[:6]} 🚀"
    return count_pipeline(
        store, s3, bucket, LocalWarehouseLoader(db, s3), count, stream=stream, **kw
    )


@pytest.mark.parametrize("always_stage", [False, True], ids=["stage-when-needed", "always-stage"])
def test_content_written_before_versioning_loads_once(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, always_stage: bool
) -> None:
    """Written while versioning was off (S3 version "null"), then versioning enabled and the
    key rewritten: the null version still exists, so it loads once (it was superseded)."""
    s3, bucket = s3_bucket
    db = tmp_path / "wh.db"
    p = pipeline(ddb_store, s3, bucket, db, 1, always_stage=always_stage)
    (first,) = p.handle(direct(put(s3, bucket, "old #/ 🚀.jsonl", 1, 2)), NO_TIME)["sealed"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    (second,) = p.handle(direct(put(s3, bucket, "old #/ 🚀.jsonl", 2, 3)), NO_TIME)["sealed"]
    assert [p.load(first), p.load(second)] == ["loaded", "loaded"]
    assert loaded(db) == Counter({1: 2, 2: 3})
    batch = p.batcher.batch(first)
    assert batch is not None and batch.superseded == ()


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_staged_keys_fit_s3s_limit_for_a_1009_byte_key(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, versioned: bool
) -> None:
    s3, bucket = s3_bucket
    refuse_long_keys(s3)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "d/" + "é" * 250 + "x" * 500 + "🚀.jsonl"
    key = key[: len(key) - (len(key.encode()) - 1009)]
    key = key.removesuffix(".jsonl")[: -len(".jsonl")] + ".jsonl"
    assert 1000 <= len(key.encode()) <= 1024
    db = tmp_path / "wh.db"
    p = pipeline(ddb_store, s3, bucket, db, 1, always_stage=not versioned)
    (first,) = p.handle(direct(put(s3, bucket, key, 1, 2)), NO_TIME)["sealed"]
    if versioned:
        put(s3, bucket, key, 2, 1)  # the first version must be staged now
    assert p.load(first) == "loaded"
    assert loaded(db)[1] == 2


def test_a_batch_of_many_deleted_files_with_long_ids_ends_loaded(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "wh.db"
    n = 420
    p = pipeline(ddb_store, s3, bucket, db, n)
    records = [put(s3, bucket, f"gone/{i:04d}-" + "k" * 950, 1, 1) for i in range(n)]
    sealed: list[str] = []
    for i in range(0, n, 50):
        sealed += p.handle(direct(*records[i : i + 50]), NO_TIME)["sealed"]
    (batch_id,) = sealed
    s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": r["s3"]["object"]["key"]} for r in records]}
    )
    assert p.load(batch_id) == "loaded"
    batch = p.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    assert batch.superseded_count == n and 0 < len(batch.superseded) < n
    assert loaded(db) == Counter()


def test_a_forbidden_head_object_is_an_error_naming_the_permission(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    db = tmp_path / "wh.db"
    p = pipeline(ddb_store, s3, bucket, db, 1)
    (first,) = p.handle(direct(put(s3, bucket, "secret #.jsonl", 1, 1)), NO_TIME)["sealed"]

    def forbid(model: Any, **_: Any) -> None:
        if model.name == "HeadObject":
            raise ClientError(
                {
                    "Error": {"Code": "403", "Message": "Forbidden"},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
                "HeadObject",
            )

    s3.meta.events.register("provide-client-params.s3.*", forbid)
    assert p.load(first) == "retry-later"
    batch = p.batcher.batch(first)
    assert batch is not None and batch.superseded == () and batch.error is not None
    assert "AccessDenied" in batch.error and "s3:ListBucket" in batch.error
    assert "s3:GetObject" in batch.error
