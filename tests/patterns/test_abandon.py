"""Abandon is final: an operator's abandon of a batch a loader holds is recorded in the warehouse
ledger, so that loader commits nothing afterwards, and if the loader committed first the abandon
says so and the batch is marked loaded; no outcome hides a commit (DynamoDB Local, a local S3,
the local warehouse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import BatchState
from patterns.batcher.abandon import abandon_batch
from patterns.hooks import CrashPoint
from patterns.pipeline import S3ToRedshift
from stateless_state import InvalidArgument, StateConflict, Store
from tests.support.pipelines import sealed_pipeline


def abandon_at(
    at_point: Any, point: CrashPoint, pipeline: S3ToRedshift, loader: Any, batch_id: str, why: str
) -> list[str]:
    """The operator's abandon of ``batch_id``, run when the pipeline reaches ``point``: the list
    its outcome is appended to."""
    found: list[str] = []
    at_point(
        point,
        lambda: found.append(
            abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why=why)
        ),
    )
    return found


def test_an_abandon_while_a_loader_holds_the_batch_is_final(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, at_point: Any
) -> None:
    pipeline, loader, batch_id = sealed_pipeline(ddb_store, s3_bucket, tmp_path)
    # At mid-load: the loader holds the claim and has written the manifest.
    found = abandon_at(at_point, "mid-load", pipeline, loader, batch_id, why="poison file")
    assert pipeline.load(batch_id) == "abandoned"
    assert found == ["abandoned"]
    assert loader.counts_by_object() == {} and loader.ledger() == {}, "nothing committed"
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.ABANDONED
    # Any later loader, and a repeated abandon, change nothing.
    assert pipeline.load(batch_id) == "busy"
    assert abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why="again") == (
        "abandoned"
    )
    assert loader.counts_by_object() == {}


def test_an_abandon_after_the_commit_reports_it_and_marks_the_batch_loaded(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, at_point: Any
) -> None:
    pipeline, loader, batch_id = sealed_pipeline(ddb_store, s3_bucket, tmp_path)
    # At after-commit: the warehouse committed; the batch is not marked loaded yet.
    found = abandon_at(at_point, "after-commit", pipeline, loader, batch_id, why="too late")
    assert pipeline.load(batch_id) == "loaded", "the outcome does not hide the commit"
    assert found == ["loaded"]
    assert sum(loader.counts_by_object().values()) == 4
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED
    assert [h["action"] for h in batch.history] == ["abandon", "loaded"]
    with pytest.raises(StateConflict, match="is loaded"):
        abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why="again")


def test_a_claimed_batch_cannot_be_abandoned_without_the_warehouse(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    pipeline, _, batch_id = sealed_pipeline(ddb_store, s3_bucket, tmp_path)
    pipeline.batcher.claim_load(batch_id)  # a loader holds it, and may be past its lease
    with pytest.raises(InvalidArgument, match="recorded in the warehouse"):
        abandon_batch(pipeline.batcher, None, batch_id, who="oncall", why="x")
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADING, "nothing changed"
