"""The sweeper's loads (``patterns.sweeper.load_due``, ``patterns.pipeline.sweep_all``): targets
load at once, and a failing target stops only itself. First the engine with stand-in loads
(whose interleavings the test forces), then pipelines on DynamoDB Local, a local S3 and
PostgreSQL, one of whose targets is a table that does not exist."""

from __future__ import annotations

import threading
import time
import uuid
from contextvars import ContextVar
from functools import partial
from typing import Any

import psycopg
import pytest

from patterns import PostgresLoader
from patterns.batcher import BatchState
from patterns.pipeline import S3ToRedshift, sweep_all
from patterns.sweeper import DueLoad, LoadResult, load_due
from patterns.testing import direct, put_object
from stateless_state import InvalidArgument, Store, clock
from stateless_state.testing import FakeLambdaContext
from tests.support.clocks import ManualClock
from tests.support.pipelines import count_pipeline

CALLER: ContextVar[str] = ContextVar("caller", default="unset")


class Loads:
    """Stand-in loads that record which thread ran them, in what order, and answer as told."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def job(
        self,
        batch_id: str,
        target: str,
        answer: LoadResult | Exception = "loaded",
        *,
        retry: bool = False,
        before: Any = None,
        min_load_time: float = 0.0,
    ) -> DueLoad:
        def load() -> LoadResult:
            with self._lock:
                self.ran.append(batch_id)
                self.threads[batch_id] = threading.current_thread()
            if before is not None:
                before()
            if isinstance(answer, Exception):
                raise answer
            return answer

        return DueLoad(batch_id, target, load, retry=retry, min_load_time=min_load_time)


def test_targets_load_at_once_and_one_target_runs_in_order() -> None:
    # Each target's first load waits until every target's first load has started: only loads
    # that overlap in time get past the barrier.
    together = threading.Barrier(3, timeout=10)
    loads = Loads()
    due = [
        loads.job("a1", "A", before=together.wait),
        loads.job("a2", "A"),
        loads.job("b1", "B", before=together.wait),
        loads.job("c1", "C", before=together.wait),
        loads.job("c2", "C"),
    ]
    report = load_due(due, max_parallel=3)
    assert report.loads == dict.fromkeys(["a1", "a2", "b1", "c1", "c2"], "loaded")
    assert list(report.loads) == ["a1", "a2", "b1", "c1", "c2"], "reported in the order given"
    assert loads.ran.index("a1") < loads.ran.index("a2")
    assert loads.ran.index("c1") < loads.ran.index("c2")
    assert loads.threads["a1"] is loads.threads["a2"], "one target, one thread"
    assert len({loads.threads[b] for b in ("a1", "b1", "c1")}) == 3
    assert report.deferred == [] and report.failing_targets == []


def test_a_bounded_sweep_runs_at_most_max_parallel_targets_at_once() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def count() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    loads = Loads()
    report = load_due([loads.job(f"b{i}", f"T{i}", before=count) for i in range(6)], max_parallel=2)
    assert len(report.loads) == 6 and most == 2


def test_a_failing_target_defers_only_its_own_batches() -> None:
    loads = Loads()
    started = threading.Event()
    due = [
        loads.job("broken1", "broken", "retry-later", before=started.set),
        loads.job("broken2", "broken"),
        loads.job("broken3", "broken"),
        # The good target's loads start after the broken one failed, and still run.
        loads.job("good1", "good", before=lambda: started.wait(10)),
        loads.job("good2", "good"),
    ]
    report = load_due(due)
    assert report.loads == {"broken1": "retry-later", "good1": "loaded", "good2": "loaded"}
    assert report.deferred == ["broken2", "broken3"]
    assert report.failing_targets == ["broken"]
    assert "broken2" not in loads.ran and "broken3" not in loads.ran


@pytest.mark.parametrize("answer", ["failed", "retry-later"])
def test_a_target_stops_after_a_failed_load_and_not_after_other_answers(
    answer: LoadResult,
) -> None:
    loads = Loads()
    others: list[LoadResult] = ["busy", "superseded", "already-loaded", "abandoned", "loaded"]
    due = [loads.job(f"x{i}", "T", a) for i, a in enumerate(others)]
    due += [loads.job("bad", "T", answer), loads.job("after", "T")]
    report = load_due(due)
    assert list(report.loads) == [f"x{i}" for i in range(len(others))] + ["bad"]
    assert report.deferred == ["after"] and report.failing_targets == ["T"]


def test_batches_never_tried_go_before_retries_within_a_target() -> None:
    loads = Loads()
    due = [
        loads.job("poisoned", "T", "retry-later", retry=True),
        loads.job("fresh1", "T"),
        loads.job("fresh2", "T"),
    ]
    report = load_due(due)
    assert loads.ran == ["fresh1", "fresh2", "poisoned"]
    assert report.loads == {"poisoned": "retry-later", "fresh1": "loaded", "fresh2": "loaded"}


def test_one_target_runs_in_the_calling_thread() -> None:
    loads = Loads()
    load_due([loads.job("a", "T"), loads.job("b", "T")])
    assert set(loads.threads.values()) == {threading.current_thread()}


def test_an_unexpected_error_stops_its_target_lets_the_others_finish_then_is_raised() -> None:
    loads = Loads()
    due = [
        loads.job("boom", "A", RuntimeError("DynamoDB unreachable")),
        loads.job("a2", "A"),
        loads.job("b1", "B", before=lambda: time.sleep(0.1)),
    ]
    with pytest.raises(RuntimeError, match="DynamoDB unreachable"):
        load_due(due)
    assert "b1" in loads.ran and "a2" not in loads.ran


def test_loads_that_do_not_fit_the_time_left_are_skipped() -> None:
    loads = Loads()
    left = iter([100.0, 5.0, 100.0])
    due = [
        loads.job("a", "T", min_load_time=60),
        loads.job("b", "T", min_load_time=60),
        loads.job("c", "T", min_load_time=60),
    ]
    report = load_due(due, time_left=lambda: next(left))
    assert list(report.loads) == ["a", "c"] and report.skipped_for_time == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_parallel_is_checked(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="max_parallel"):
        load_due([], max_parallel=bad)


def postgres_pipelines(
    store: Store, s3: Any, bucket: str, postgres: str, names: list[str], broken: str
) -> dict[str, S3ToRedshift]:
    """A pipeline per name, each into its own table of one schema (one shared ledger); the
    table of ``broken`` is never created. Batches of one file, up to 3 attempts, 1 s
    backoff."""
    schema = f"s{uuid.uuid4().hex[:8]}"
    pipelines = {}
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for name in names:
            loader = PostgresLoader(postgres, f"{schema}.{name}", s3, ledger_table=f"{schema}.l")
            if name != broken:
                conn.execute(f"CREATE TABLE {schema}.{name} (id int)")
            conn.execute(loader.ledger_ddl())
            pipelines[name] = count_pipeline(
                store,
                s3,
                bucket,
                loader,
                1,
                stream=f"{name}-{schema}",
                max_attempts=3,
                retry_backoff=1.0,
            )
    return pipelines


def seal(pipeline: S3ToRedshift, s3: Any, bucket: str, n: int) -> list[str]:
    records = [
        put_object(s3, bucket, f"{pipeline.batcher.stream}/{i}.jsonl", f'{{"id": {i}}}\n'.encode())
        for i in range(n)
    ]
    # Too little time left to load, so handle() only adds; made now, on the clock in force.
    no_time = FakeLambdaContext(1000)
    sealed: list[str] = pipeline.handle(direct(*records), no_time)["sealed"]
    assert len(sealed) == n
    return sorted(sealed)


def test_a_broken_target_among_several_fails_alone_and_backs_off_to_its_limit(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    # Time moves only when the test moves it (the loads run in the sweep's threads, which see
    # the caller's clock): every backoff is checked to the exact instant, however slow the
    # machine is.
    s3, bucket = s3_bucket
    names = ["clicks", "views", "orders", "missing"]
    # Whole seconds and steps of 2**-10 s: sums of them are exact in floating point, so "a step
    # before the backoff ends" and "the instant it ends" are exactly that.
    manual, step = ManualClock(float(int(time.time()))), 2**-10
    with clock.using(manual):
        pipelines = postgres_pipelines(ddb_store, s3, bucket, postgres, names, broken="missing")
        sealed = {name: seal(p, s3, bucket, 2) for name, p in pipelines.items()}
        broken = pipelines["missing"]

        def sweep() -> dict[str, Any]:
            return sweep_all(list(pipelines.values()))

        t0 = manual.time()
        report = sweep()
        good = [b for name in names[:3] for b in sealed[name]]
        first, second = sealed["missing"]
        assert {b: report["loads"][b] for b in good} == dict.fromkeys(good, "loaded")
        assert report["loads"][first] == "retry-later"
        assert report["deferred"] == [second], "the broken target's other batch waits"
        assert report["failing_targets"] == [broken.target]
        failed = broken.batcher.batch(first)
        assert failed is not None and failed.state == BatchState.SEALED and failed.attempts == 1
        assert "does not exist" in (failed.error or "")
        assert failed.next_attempt_at == t0 + 1.0, "1 s of backoff, on the caller's clock"
        untouched = broken.batcher.batch(second)
        assert untouched is not None and untouched.attempts == 0, "deferred: never claimed"
        for name in names[:3]:
            assert {b.state for b in pipelines[name].batcher.batches()} == {BatchState.LOADED}

        # No time has passed: the next sweep tries the other batch (never tried) and leaves the
        # one backing off alone.
        assert sweep()["loads"] == {second: "retry-later"}

        # Each backoff to the instant (1 s, then doubled to 2 s): nothing is due a step before
        # it ends; at its end the oldest batch is tried and, failing, defers the other to
        # the next sweep. The third attempt is the last: then both are left failed.
        for backoff, result in ((1.0, "retry-later"), (2.0, "failed")):
            manual.advance(backoff - step)
            assert sweep()["loads"] == {}, f"within the {backoff} s backoff"
            manual.advance(step)
            report = sweep()
            assert (report["loads"], report["deferred"]) == ({first: result}, [second])
            assert sweep()["loads"] == {second: result}
        for batch_id in (first, second):
            batch = broken.batcher.batch(batch_id)
            assert batch is not None and batch.state == BatchState.FAILED and batch.attempts == 3
        assert {b.id for b in broken.batcher.failed()} == {first, second}
        manual.advance(86_400)
        assert sweep()["loads"] == {}, "failed batches wait for an operator"
        assert manual.time() == t0 + 3.0 + 86_400, "nothing slept: time moved only by hand"


def test_the_worker_threads_see_the_clock_and_context_of_the_caller() -> None:
    # Four targets, each in a thread of its own (the barrier lets no load finish before all
    # four started), under a clock set in the caller: each load reads that clock, and the
    # value of a context variable set in the caller; what a load sets stays in its target.
    seen: dict[str, tuple[clock.Clock, float, str]] = {}
    together = threading.Barrier(4, timeout=10)
    loads = Loads()

    def look(batch_id: str, wait: bool) -> None:
        if wait:
            together.wait()
        seen[batch_id] = (clock.current(), clock.now(), CALLER.get())
        CALLER.set(f"set by {batch_id}")

    due = [loads.job(f"{t}1", t, before=partial(look, f"{t}1", True)) for t in "ABCD"]
    due.append(loads.job("A2", "A", before=partial(look, "A2", False)))
    manual = ManualClock(1_000_000.0)
    token = CALLER.set("the caller's")
    try:
        with clock.using(manual):
            report = load_due(due, max_parallel=4)
    finally:
        CALLER.reset(token)
    assert list(report.loads) == ["A1", "B1", "C1", "D1", "A2"]
    threads = {loads.threads[b] for b in ("A1", "B1", "C1", "D1")}
    assert len(threads) == 4 and threading.current_thread() not in threads
    for batch_id in ("A1", "B1", "C1", "D1"):
        assert seen[batch_id] == (manual, 1_000_000.0, "the caller's"), batch_id
    assert seen["A2"] == (manual, 1_000_000.0, "set by A1"), "one context per target"
    assert CALLER.get() == "unset" and clock.current() is clock.SYSTEM, "the caller's own kept"


def test_sweepers_racing_over_many_targets_load_every_batch_exactly_once(
    ddb_store: Store, s3_bucket: tuple[Any, str], postgres: str
) -> None:
    """Three sweeps of the same four feeds at once (each with its own threads per target),
    started together: every batch is loaded by exactly one of them, its rows committed once."""
    s3, bucket = s3_bucket
    names = ["a", "b", "c", "d"]
    pipelines = postgres_pipelines(ddb_store, s3, bucket, postgres, names, broken="")
    sealed = {name: seal(p, s3, bucket, 3) for name, p in pipelines.items()}
    start = threading.Barrier(3)

    def sweep() -> dict[str, Any]:
        start.wait()
        return sweep_all(list(pipelines.values()))

    threads_out: list[dict[str, Any]] = []
    workers = [threading.Thread(target=lambda: threads_out.append(sweep())) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(threads_out) == 3
    for batch_id in (b for ids in sealed.values() for b in ids):
        said = [r["loads"][batch_id] for r in threads_out if batch_id in r["loads"]]
        assert said.count("loaded") == 1, (batch_id, said)
        assert set(said) <= {"loaded", "busy", "already-loaded"}, said
    with psycopg.connect(postgres, autocommit=True) as conn:
        for name, p in pipelines.items():
            table = p.loader.table  # type: ignore[attr-defined]
            ids = sorted(r[0] for r in conn.execute(f"SELECT id FROM {table}").fetchall())
            assert ids == [0, 1, 2], (name, ids)
