"""Abandon is final: an operator's abandon of a batch a loader holds is recorded in the warehouse
ledger, so that loader commits nothing afterwards, and if the loader committed first the abandon
says so and the batch is marked loaded; no outcome hides a commit (DynamoDB Local, a local S3,
the local warehouse)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import BatchState, Thresholds
from patterns.batcher.abandon import abandon_batch
from patterns.hooks import CrashPoint, set_crash_hook
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import InvalidArgument, StateConflict, Store
from stateless_state.testing import FakeLambdaContext


@pytest.fixture
def at_point() -> Iterator[Callable[[CrashPoint, Callable[[], None]], None]]:
    """Run an action (the operator's) once when the pipeline reaches a crash point."""
    actions: dict[str, Callable[[], None]] = {}

    def hook(name: CrashPoint) -> None:
        if name in actions:
            actions.pop(name)()

    set_crash_hook(hook)

    def install(name: CrashPoint, action: Callable[[], None]) -> None:
        actions[name] = action

    yield install
    set_crash_hook(None)


def sealed_pipeline(
    store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> tuple[S3ToRedshift, LocalWarehouseLoader, str]:
    s3, bucket = s3_bucket
    records = [
        put_object(s3, bucket, k, b'{"x": 1}\n{"x": 2}\n') for k in ("a#1.jsonl", "b%2.jsonl")
    ]
    loader = LocalWarehouseLoader(tmp_path / "wh.db", s3)
    pipeline = S3ToRedshift(
        store,
        stream="final#stream",
        loader=loader,
        manifest_bucket=bucket,
        thresholds=Thresholds(count=2, bytes=None, age=None),
        s3_client=s3,
        min_load_time=3600,
    )
    event = direct(*records)
    # Too little time left to load: handle() only adds, and the test drives the load.
    (sealed,) = pipeline.handle(event, FakeLambdaContext(1000))["sealed"]
    return pipeline, loader, sealed


def test_an_abandon_while_a_loader_holds_the_batch_is_final(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, at_point: Any
) -> None:
    pipeline, loader, batch_id = sealed_pipeline(ddb_store, s3_bucket, tmp_path)
    found: list[str] = []
    at_point(
        "mid-load",  # the loader holds the claim and has written the manifest
        lambda: found.append(
            abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why="poison file")
        ),
    )
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
    found: list[str] = []
    at_point(
        "after-commit",  # the warehouse committed; the batch is not marked loaded yet
        lambda: found.append(
            abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why="too late")
        ),
    )
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
