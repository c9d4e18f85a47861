"""The Redshift window, closed by default: an S3 key rewritten between the members' pin and the
moment COPY reads it never loads the new content in the old member's place.

The Redshift loader's statements run on PostgreSQL (``PostgresDataApi``, with Data API sessions),
COPY reading each manifest entry's key from S3 as it is when the COPY call runs, the batches on
DynamoDB Local. Each rewrite is forced at one point of the load: before COPY reads (the
``mid-load`` crash point), right after COPY read (the stand-in's hook after the COPY call), and
after every COPY call (an adversary that never stops rewriting).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from patterns.batcher import BatchState
from patterns.hooks import CrashPoint, set_crash_hook
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct
from stateless_state import Store
from tests.support.pipelines import (
    NO_TIME,
    count_pipeline,
    is_copy,
    loaded_versions,
    put,
    warehouse,
)


def pipeline_for(
    store: Store, s3: Any, bucket: str, loader: RedshiftDataApiLoader, count: int
) -> S3ToRedshift:
    return count_pipeline(store, s3, bucket, loader, count, stream=f"window-{uuid.uuid4().hex[:6]}")


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
@pytest.mark.parametrize("when", ["before-copy", "after-copy"])
def test_a_rewrite_in_the_window_never_takes_the_members_place(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str, versioned: bool, when: str
) -> None:
    s3, bucket = s3_bucket
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rewrite: list[dict[str, Any]] = []

    def rewrite_once() -> None:
        if not rewrite:
            rewrite.append(put(s3, bucket, "k.jsonl", 2, 3))

    def after(call: dict[str, Any]) -> None:
        if when == "after-copy" and is_copy(call):
            rewrite_once()

    def hook(point: CrashPoint) -> None:
        if when == "before-copy" and point == "mid-load":  # pinned, manifest written
            rewrite_once()

    loader, api = warehouse(postgres, s3, after)
    pipeline = pipeline_for(ddb_store, s3, bucket, loader, count=2)
    (first,) = pipeline.handle(
        direct(put(s3, bucket, "k.jsonl", 1, 2), put(s3, bucket, "other.jsonl", 0, 4)), NO_TIME
    )["sealed"]
    set_crash_hook(hook)
    try:
        assert pipeline.load(first) == "loaded"
    finally:
        set_crash_hook(None)
    assert rewrite, "the rewrite was forced inside the load"
    batch = pipeline.batcher.batch(first)
    assert batch is not None and batch.state == BatchState.LOADED
    # The rewrite is its own arrival, in its own batch with the next file.
    (second,) = pipeline.handle(direct(*rewrite, put(s3, bucket, "third.jsonl", 3, 1)), NO_TIME)[
        "sealed"
    ]
    assert pipeline.load(second) == "loaded"
    loaded = loaded_versions(postgres, loader, "k.jsonl")
    assert loaded[2] == 3, "the new content once, by its own arrival"
    if versioned:
        assert loaded[1] == 2, "the old version still exists: loaded once, from a staged copy"
        assert batch.superseded == ()
    else:
        assert loaded[1] == 0, "overwritten before it was read for sure: never in v2's place"
        assert len(batch.superseded) == 1 and "k.jsonl" in batch.superseded[0]
    assert loaded_versions(postgres, loader, "other.jsonl") == Counter({0: 4})
    assert not api.sessions


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_rewrites_after_every_copy_end_in_bounded_rounds(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str, versioned: bool
) -> None:
    """An adversary rewrites another key after each COPY call, so every recheck finds a
    change: the rounds that stage only what changed run out, the last stages every member left,
    and the load ends with each member's own content (or its absence, reported), nothing else."""
    s3, bucket = s3_bucket
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"hot/{i}.jsonl" for i in range(4)]
    copies = [0]

    def after(call: dict[str, Any]) -> None:
        if is_copy(call):
            put(s3, bucket, keys[copies[0]], 2 + copies[0], 1)
            copies[0] += 1

    loader, api = warehouse(postgres, s3, after)
    pipeline = pipeline_for(ddb_store, s3, bucket, loader, count=len(keys))
    (batch_id,) = pipeline.handle(direct(*(put(s3, bucket, k, 1, 2) for k in keys)), NO_TIME)[
        "sealed"
    ]
    assert pipeline.load(batch_id) == "loaded"
    # COPY, one recopy per round (max_rechecks that restage what changed, then everything),
    # the commit.
    assert api.calls["batch"] == 1 + loader.max_rechecks + 1 + 1
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    rewritten = keys[: copies[0] - 1]  # the last rewrite came after everything was staged
    assert len(rewritten) == loader.max_rechecks + 1
    for key in keys:
        loaded = loaded_versions(postgres, loader, key)
        if versioned or key not in rewritten:
            assert loaded == Counter({1: 2}), (key, loaded)
        else:
            assert loaded == Counter(), (key, loaded)
    assert batch.superseded_count == (0 if versioned else len(rewritten))
    assert not api.sessions


def test_a_manifest_of_staged_copies_loads_in_one_call(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    """``always_stage``: every entry is an immutable copy, nothing to check after COPY, so the
    load is one transaction of one call, as before sessions."""
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    loader, api = warehouse(postgres, s3)
    pipeline = count_pipeline(
        ddb_store, s3, bucket, loader, 1, stream=f"staged-{uuid.uuid4().hex[:6]}", always_stage=True
    )
    (batch_id,) = pipeline.handle(direct(put(s3, bucket, "s.jsonl", 1, 2)), NO_TIME)["sealed"]
    assert pipeline.load(batch_id) == "loaded"
    assert (api.calls["batch"], api.calls["session"]) == (1, 0)
    assert loaded_versions(postgres, loader, "s.jsonl") == Counter({1: 2})
