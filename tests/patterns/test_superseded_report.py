"""What a batch reports superseded agrees with the warehouse when a zombie loader read content
that a successor then finds deleted (DynamoDB Local, SQLite, a local S3, the interleavings
forced): the successor's load of nothing still goes through the ledger, and superseded members
are recorded only by the load that committed. Either the successor commits first (nothing of
the content in the warehouse, the member reported superseded, the zombie commits nothing), or
the zombie does (its rows in, nothing reported superseded)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from patterns.batcher import BatchState
from patterns.hooks import CrashPoint, set_crash_hook
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import Store
from tests.support.pipelines import count_pipeline, load_dying_after_commit


class Ctx:
    def get_remaining_time_in_millis(self) -> int:
        return 1000


def pipeline_for(
    store: Store, s3: Any, bucket: str, loader: LocalWarehouseLoader, count: int = 1
) -> S3ToRedshift:
    return count_pipeline(
        store,
        s3,
        bucket,
        loader,
        count,
        stream=f"sup-{uuid.uuid4().hex[:6]}",
        min_load_time=3600,  # handle() does not load; the test drives both loaders
        load_lease=0.5,
    )


def one_sealed(
    store: Store, s3: Any, bucket: str, tmp_path: Path
) -> tuple[LocalWarehouseLoader, S3ToRedshift, str]:
    """A pipeline on a local warehouse with ``k.jsonl`` alone in a sealed batch, not loaded."""
    loader = LocalWarehouseLoader(tmp_path / "w.db", s3)
    pipeline = pipeline_for(store, s3, bucket, loader)
    record = put_object(s3, bucket, "k.jsonl", b'{"v":1}\n')
    (batch_id,) = pipeline.handle(direct(record), Ctx())["sealed"]
    return loader, pipeline, batch_id


def test_a_successor_that_finds_the_content_gone_commits_before_the_zombie(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    loader, pipeline, batch_id = one_sealed(ddb_store, s3, bucket, tmp_path)
    real_get = s3.get_object
    successor: list[str] = []

    class ZombieS3:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def get_object(self, **kw: Any) -> Any:
            body = real_get(**kw)  # the zombie has read the content...
            if not successor:
                s3.delete_object(Bucket=bucket, Key="k.jsonl")  # ...then it is deleted
                time.sleep(0.7)  # and the zombie stalls past its lease
                loader.s3 = s3
                successor.append(pipeline.load(batch_id))
            return body

    loader.s3 = ZombieS3()
    zombie = pipeline.load(batch_id)
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    assert (successor, zombie) == (["loaded"], "already-loaded")
    assert loader.counts_by_object() == {}, "the zombie committed nothing after the successor"
    assert loader.ledger() == {batch_id: 0}
    assert batch.superseded_count == 1


def test_a_zombie_that_committed_first_is_not_reported_superseded(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, bucket = s3_bucket
    loader, pipeline, batch_id = one_sealed(ddb_store, s3, bucket, tmp_path)
    successor: list[str] = []
    started: list[bool] = []

    def after_the_zombies_commit(point: CrashPoint) -> None:
        if point == "after-commit" and not started:
            started.append(True)  # the successor's own after-commit passes through
            s3.delete_object(Bucket=bucket, Key="k.jsonl")
            time.sleep(0.7)  # the zombie's lease runs out before it marks the batch
            successor.append(pipeline.load(batch_id))

    set_crash_hook(after_the_zombies_commit)
    try:
        zombie = pipeline.load(batch_id)
    finally:
        set_crash_hook(None)
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    assert (successor, zombie) == (["already-loaded"], "loaded")
    assert loader.counts_by_object() == {f"s3://{bucket}/k.jsonl": 1}
    assert (batch.superseded, batch.superseded_count) == ((), 0)


class Killed(BaseException):
    """The loader's process dies (nothing after it runs, as after SIGKILL)."""


def test_a_takeover_after_a_commit_keeps_the_committing_loads_superseded_record(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """A member whose version was deleted before the load, in a batch whose loader dies after
    the warehouse commit: the successor finds the commit in the ledger and keeps the record
    the committing load wrote before it committed (the deleted version: reported superseded)."""
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    loader = LocalWarehouseLoader(tmp_path / "w.db", s3)
    pipeline = pipeline_for(ddb_store, s3, bucket, loader, count=2)
    a = put_object(s3, bucket, "a.jsonl", b'{"id":1}\n')
    b = put_object(s3, bucket, "b.jsonl", b'{"id":2}\n')
    (batch_id,) = pipeline.handle(direct(a, b), Ctx())["sealed"]
    s3.delete_object(Bucket=bucket, Key="b.jsonl", VersionId=b["s3"]["object"]["versionId"])

    load_dying_after_commit(pipeline, batch_id, Killed)
    time.sleep(0.7)  # the dead loader's lease runs out
    assert pipeline.load(batch_id) == "already-loaded"
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    assert loader.counts_by("id") == {("1",): 1}
    assert batch.superseded_count == 1 and "b.jsonl" in batch.superseded[0]
