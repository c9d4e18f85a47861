"""Operator actions decide on what they read, and loaders move batches in between: each action's
write is conditional on the state **and fence** it read. The interleavings are forced (a hook
between the operator's read and its write), the loaders run in real threads on DynamoDB Local,
and the warehouse is the local SQLite one or PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from patterns import PostgresLoader
from patterns.batcher import Batch, Batcher, BatchState
from patterns.batcher.abandon import abandon_batch
from patterns.hooks import CrashPoint, set_crash_hook
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import BatchHistory, check_commits, direct, put_object
from stateless_state import InvalidArgument, StateConflict, Store
from stateless_state.testing import FakeLambdaContext
from tests.support.pipelines import count_pipeline

pytestmark = pytest.mark.race

Warehouse = tuple[Any, Callable[[], int]]


def sqlite_warehouse(tmp_path: Path, s3: Any) -> Warehouse:
    loader = LocalWarehouseLoader(tmp_path / "wh.db", s3)
    return loader, lambda: sum(loader.counts_by_object().values())


def postgres_warehouse(postgres: str, s3: Any) -> Warehouse:
    schema = f"p{uuid.uuid4().hex[:8]}"
    loader = PostgresLoader(postgres, f"{schema}.events", s3, ledger_table=f"{schema}.ledger #/ 🚀")
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (x int)")
        conn.execute(loader.ledger_ddl())

    def committed() -> int:
        with psycopg.connect(postgres, autocommit=True) as conn:
            row = conn.execute(f"SELECT count(*) FROM {schema}.events").fetchone()
        return int(row[0]) if row else 0

    return loader, committed


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(
    request: pytest.FixtureRequest, tmp_path: Path, s3_bucket: tuple[Any, str]
) -> Warehouse:
    s3, _ = s3_bucket
    if request.param == "sqlite":
        return sqlite_warehouse(tmp_path, s3)
    return postgres_warehouse(request.getfixturevalue("postgres"), s3)


@pytest.fixture
def hooks() -> Iterator[dict[str, Callable[[], None]]]:
    """Crash-point actions keyed by ``<thread name>:<point>``, each run once."""
    actions: dict[str, Callable[[], None]] = {}

    def hook(point: CrashPoint) -> None:
        action = actions.pop(f"{threading.current_thread().name}:{point}", None)
        if action is not None:
            action()

    set_crash_hook(hook)
    yield actions
    set_crash_hook(None)


def sealed_batch(store: Store, s3_bucket: tuple[Any, str], loader: Any) -> tuple[S3ToRedshift, str]:
    s3, bucket = s3_bucket
    records = [put_object(s3, bucket, k, b'{"x": 1}\n{"x": 2}\n') for k in ("a#1 🚀.jsonl", "b/2")]
    pipeline = count_pipeline(
        store,
        s3,
        bucket,
        loader,
        2,
        stream=f"ops #/{uuid.uuid4().hex[:6]} 🚀",
        min_load_time=3600,  # handle() only adds: the test drives the loads
    )
    (sealed,) = pipeline.handle(direct(*records), FakeLambdaContext(1000))["sealed"]
    return pipeline, sealed


def check_warehouse(
    pipeline: S3ToRedshift,
    batch_id: str,
    committed: Callable[[], int],
    *,
    abandons: Sequence[str] = (),
    loads: Sequence[str] = (),
) -> None:
    """The loads' invariants (:func:`patterns.testing.check_commits`) over the batch as stored,
    what the abandons and loads answered, and the warehouse: its rows are the batch's 4 (two
    objects of two lines) once per commit."""
    rows = committed()
    assert rows % 4 == 0, f"{rows} rows: not whole commits of the batch"
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None
    history = BatchHistory(
        abandons=[(batch_id, said) for said in abandons], loads=[(batch_id, s) for s in loads]
    )
    check_commits([batch], history, {batch_id: rows // 4})


def pause_after_first_read(
    batcher: Batcher, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Hold the operator thread between its first read of the batch and its write."""
    read, go = threading.Event(), threading.Event()
    real = batcher.batch

    def batch(batch_id: str) -> Batch | None:
        seen = real(batch_id)
        if threading.current_thread().name == "operator" and not read.is_set():
            read.set()
            assert go.wait(60), "the test never let the operator write"
        return seen

    monkeypatch.setattr(batcher, "batch", batch)
    return read, go


def test_an_abandon_that_read_never_claimed_is_not_final_before_a_zombie_that_claimed_since(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    warehouse: Warehouse,
    hooks: dict[str, Callable[[], None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator reads the batch sealed and never claimed (fence 0). Before it writes, a
    loader claims it (fence 1), stalls past its lease, and the loader that takes over (fence 2)
    fails and puts it back to sealed. An abandon conditional only on ``state = sealed`` then
    answers "abandoned" with no warehouse tombstone, and the stalled loader commits."""
    loader, committed = warehouse
    pipeline, batch_id = sealed_batch(ddb_store, s3_bucket, loader)
    read, go = pause_after_first_read(pipeline.batcher, monkeypatch)
    stalled, resume = threading.Event(), threading.Event()

    def stall() -> None:
        stalled.set()
        resume.wait(60)

    hooks["zombie:mid-load"] = stall
    outcomes: dict[str, str] = {}

    def operator() -> None:
        outcomes["abandon"] = abandon_batch(
            pipeline.batcher, loader, batch_id, who="oncall", why="poison file"
        )

    def zombie() -> None:
        # FakeLambdaContext(1000): one second left, so a one-second lease.
        outcomes["zombie"] = pipeline.load(batch_id, FakeLambdaContext(1000))

    threads = [threading.Thread(target=f, name=f.__name__) for f in (operator, zombie)]
    threads[0].start()
    assert read.wait(30)
    threads[1].start()
    assert stalled.wait(30), "the zombie reached its load"
    time.sleep(1.2)  # past the zombie's lease
    successor = pipeline.batcher.claim_load(batch_id)
    assert successor.fence == 2
    assert successor.failed("warehouse unreachable") == BatchState.SEALED
    go.set()
    threads[0].join(60)
    resume.set()
    threads[1].join(60)

    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None
    assert outcomes["abandon"] == "abandoned" and batch.state == BatchState.ABANDONED
    assert committed() == 0, "a batch answered 'abandoned' was committed by a loader"
    assert outcomes["zombie"] == "abandoned"
    check_warehouse(
        pipeline, batch_id, committed, abandons=[outcomes["abandon"]], loads=[outcomes["zombie"]]
    )
    assert pipeline.load(batch_id) == "busy", "an abandoned batch is never claimed again"


def test_an_abandon_that_read_a_fence_redecides_after_a_takeover_and_reports_the_commit(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator reads the batch sealed; before it writes, a loader claims it and commits.
    The abandon must not answer "abandoned": it finds the commit and marks the batch loaded."""
    loader, committed = warehouse
    pipeline, batch_id = sealed_batch(ddb_store, s3_bucket, loader)
    read, go = pause_after_first_read(pipeline.batcher, monkeypatch)
    outcomes: list[str] = []
    operator = threading.Thread(
        target=lambda: outcomes.append(
            abandon_batch(pipeline.batcher, loader, batch_id, who="oncall", why="late")
        ),
        name="operator",
    )
    operator.start()
    assert read.wait(30)
    assert pipeline.load(batch_id) == "loaded"
    go.set()
    operator.join(60)
    assert outcomes == [], "the abandon of a loaded batch raises StateConflict"
    batch = pipeline.batcher.batch(batch_id)
    assert batch is not None and batch.state == BatchState.LOADED and committed() == 4
    check_warehouse(pipeline, batch_id, committed, loads=["loaded"])


def test_two_operators_abandoning_at_once_both_end_abandoned_and_nothing_commits(
    ddb_store: Store, s3_bucket: tuple[Any, str], warehouse: Warehouse
) -> None:
    loader, committed = warehouse
    pipeline, batch_id = sealed_batch(ddb_store, s3_bucket, loader)
    pipeline.batcher.claim_load(batch_id, lease=0.5)  # a loader held it: the warehouse is needed
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def abandon(who: str) -> None:
        barrier.wait()
        outcomes.append(abandon_batch(pipeline.batcher, loader, batch_id, who=who, why="x"))

    threads = [threading.Thread(target=abandon, args=(w,)) for w in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes == ["abandoned", "abandoned"]
    time.sleep(0.6)
    assert pipeline.load(batch_id) == "busy" and committed() == 0
    check_warehouse(pipeline, batch_id, committed, abandons=outcomes)


def operator_retry(
    pipeline: S3ToRedshift, batch_id: str, state: BatchState, fence: int, *, who: str, why: str
) -> None:
    """The operator's retry of ``batch_id``, conditional on the ``state`` and ``fence`` it read."""
    pipeline.batcher.operator_action(
        batch_id, "retry", expect_state=state, expect_fence=fence, who=who, why=why
    )


def test_abandoned_is_final_no_retry_brings_it_back(
    ddb_store: Store, s3_bucket: tuple[Any, str], warehouse: Warehouse
) -> None:
    loader, committed = warehouse
    pipeline, batch_id = sealed_batch(ddb_store, s3_bucket, loader)
    assert abandon_batch(pipeline.batcher, loader, batch_id, who="a", why="b") == "abandoned"
    gone = pipeline.batcher.batch(batch_id)
    assert gone is not None
    with pytest.raises(InvalidArgument, match="abandoned is final"):
        operator_retry(
            pipeline, batch_id, BatchState.ABANDONED, gone.fence, who="a", why="un-abandon"
        )
    after = pipeline.batcher.batch(batch_id)
    assert after is not None and after.state == BatchState.ABANDONED
    assert pipeline.sweep(FakeLambdaContext(900_000))["loads"] == {}
    assert committed() == 0


def test_a_retry_that_read_a_stuck_loader_does_not_unseat_the_loader_that_took_over(
    ddb_store: Store, s3_bucket: tuple[Any, str], warehouse: Warehouse
) -> None:
    """The operator reads the batch loading under an expired lease (fence 1) and decides to
    retry it; before it writes, the sweeper's loader takes it over (fence 2, a fresh lease). A
    retry conditional only on ``state = loading`` would reset the batch under that loader."""
    loader, committed = warehouse
    pipeline, batch_id = sealed_batch(ddb_store, s3_bucket, loader)
    pipeline.batcher.claim_load(batch_id, lease=0.2)
    time.sleep(0.3)
    stuck = pipeline.batcher.batch(batch_id)
    assert stuck is not None and stuck.state == BatchState.LOADING and stuck.fence == 1
    successor = pipeline.batcher.claim_load(batch_id)  # between the read and the write
    with pytest.raises(StateConflict, match="loading at fence 2, not loading at fence 1"):
        operator_retry(
            pipeline, batch_id, BatchState.LOADING, stuck.fence, who="oncall", why="stuck"
        )
    successor.loaded()  # the loader that took over still holds the batch
    after = pipeline.batcher.batch(batch_id)
    assert after is not None and after.state == BatchState.LOADED and committed() == 0
