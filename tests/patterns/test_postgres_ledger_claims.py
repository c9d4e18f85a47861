"""``PostgresLoader``'s ledger claim on real PostgreSQL: a load in flight holds only its own
batch's ledger key, so loads of other batches (any target, one shared ledger) go on while it is
held, and a second loader or an abandon of the same batch waits for it and then defers to what it
did. Forced interleavings (a load stopped with its claim held, at every isolation level), then
real processes racing on every batch.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from patterns import PostgresLoader
from patterns.batcher.manifest import Manifest, ManifestEntry
from patterns.testing import put_object
from stateless_state import InvalidArgument

pytestmark = pytest.mark.race

ISOLATIONS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]


@dataclass
class Ticket:
    """What the loader reads of a load ticket (its fence); the DynamoDB side is not under test
    here, so two loaders of one batch may hold the same ticket."""

    batch_id: str
    fence: int = 1

    @property
    def batch(self) -> Any:
        return type("B", (), {"id": self.batch_id})()

    def record_statement(self, statement_id: str) -> None:
        raise AssertionError("the PostgreSQL loader records no statement")


class Held(PostgresLoader):
    """A loader that stops after its ledger claim, before COPY, until ``release`` is set; it
    then goes on, or raises (its transaction rolls back) when ``fail`` is set."""

    claimed: threading.Event
    release: threading.Event
    fail: bool

    def _copy(self, conn: Any, objects: list[tuple[Any, list[str]]]) -> int:
        self.claimed.set()
        assert self.release.wait(30), "never released"
        if self.fail:
            raise RuntimeError("COPY failed")
        return super()._copy(conn, objects)


def held(loader: PostgresLoader, *, fail: bool = False) -> Held:
    h = Held(loader.dsn, loader.table, loader.s3, ledger_table=loader.ledger_table)
    h.isolation = loader.isolation
    h.claimed, h.release, h.fail = threading.Event(), threading.Event(), fail
    return h


@pytest.fixture
def schema(postgres: str) -> Iterator[str]:
    name = f"c{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        for table in ("events", "others"):
            conn.execute(f"CREATE TABLE {name}.{table} (batch text, n int)")
    yield name


def loader_for(postgres: str, s3: Any, schema: str, table: str, isolation: str) -> PostgresLoader:
    loader = PostgresLoader(
        postgres, f"{schema}.{table}", s3, ledger_table=f"{schema}.ledger", isolation=isolation
    )
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(loader.ledger_ddl())
    return loader


def manifests(s3: Any, bucket: str, n: int, rows: int = 3) -> list[Manifest]:
    """``n`` batches of one object each, ``rows`` JSON lines tagged with the batch id."""
    out = []
    for i in range(n):
        batch_id = f"claims/0/{i:012d}"
        body = "".join(f'{{"batch": "{batch_id}", "n": {k}}}\n' for k in range(rows)).encode()
        record = put_object(s3, bucket, f"in/{i}.jsonl", body)["s3"]["object"]
        entry = ManifestEntry(f"s3://{bucket}/in/{i}.jsonl", len(body), None, record["eTag"])
        out.append(Manifest(batch_id, bucket, f"m/{i}.manifest", (entry,)))
    return out


def rows_by_batch(postgres: str, *tables: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with psycopg.connect(postgres, autocommit=True) as conn:
        for table in tables:
            for batch, n in conn.execute(f"SELECT batch, count(*) FROM {table} GROUP BY 1"):
                counts[batch] = counts.get(batch, 0) + n
    return counts


def waiting_on_locks(postgres: str) -> int:
    """Backends of this server waiting on a lock (a claim waiting on an in-flight row)."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def outcome(f: Future[Any]) -> str:
    r = f.result(timeout=10)
    if isinstance(r, str):
        return "abandon:" + r
    return "abandoned" if r.abandoned else ("committed" if r.committed else "already")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_held_claim_blocks_only_its_own_batch_and_its_rivals_defer_to_its_commit(
    postgres: str, s3_bucket: tuple[Any, str], schema: str, isolation: str
) -> None:
    s3, bucket = s3_bucket
    events = loader_for(postgres, s3, schema, "events", isolation)
    others = loader_for(postgres, s3, schema, "others", isolation)
    first, same_target, other_target = manifests(s3, bucket, 3)
    a = held(events)
    with ThreadPoolExecutor(5) as pool:
        holder = pool.submit(a.load, Ticket(first.batch_id), first)
        try:
            assert a.claimed.wait(30)
            # Other batches, into the same target and into another one, through the one
            # ledger: they commit while the first load holds its claim (no table lock).
            beside = [
                pool.submit(events.load, Ticket(same_target.batch_id), same_target),
                pool.submit(others.load, Ticket(other_target.batch_id), other_target),
            ]
            assert [outcome(f) for f in beside] == ["committed", "committed"]
            # A successor of the first batch and an operator's abandon wait on its ledger key.
            successor = pool.submit(events.load, Ticket(first.batch_id, fence=2), first)
            abandon = pool.submit(events.abandon, first.batch_id)
            eventually(lambda: waiting_on_locks(postgres) == 2, "both rivals wait on the claim")
            assert not successor.done() and not abandon.done()
        finally:
            a.release.set()
        assert outcome(holder) == "committed"
        assert outcome(successor) == "already"
        assert outcome(abandon) == "abandon:loaded"
    assert rows_by_batch(postgres, events.table, others.table) == {
        first.batch_id: 3,
        same_target.batch_id: 3,
        other_target.batch_id: 3,
    }
    assert events.ledger() == {m.batch_id: 0 for m in (first, same_target, other_target)}


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("rival", ["load", "abandon"])
def test_a_claim_rolled_back_leaves_the_batch_to_the_rival_that_waited(
    postgres: str, s3_bucket: tuple[Any, str], schema: str, isolation: str, rival: str
) -> None:
    s3, bucket = s3_bucket
    events = loader_for(postgres, s3, schema, "events", isolation)
    (batch,) = manifests(s3, bucket, 1)
    a = held(events, fail=True)
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(a.load, Ticket(batch.batch_id), batch)
        assert a.claimed.wait(30)
        waiter: Future[Any] = (
            pool.submit(events.load, Ticket(batch.batch_id, fence=2), batch)
            if rival == "load"
            else pool.submit(events.abandon, batch.batch_id)
        )
        eventually(lambda: waiting_on_locks(postgres) == 1, "the rival waits on the claim")
        a.release.set()
        with pytest.raises(RuntimeError, match="COPY failed"):
            holder.result(timeout=30)
        said = outcome(waiter)
    if rival == "load":
        assert said == "committed"
        assert rows_by_batch(postgres, events.table) == {batch.batch_id: 3}
    else:
        assert said == "abandon:abandoned"
        assert rows_by_batch(postgres, events.table) == {}
        # The tombstone holds: a later load commits nothing.
        assert outcome_of(events.load(Ticket(batch.batch_id, fence=3), batch)) == "abandoned"


def outcome_of(r: Any) -> str:
    return "abandoned" if r.abandoned else ("committed" if r.committed else "already")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_an_abandon_holding_its_claim_wins_over_the_load_that_waited(
    postgres: str, s3_bucket: tuple[Any, str], schema: str, isolation: str
) -> None:
    """The abandon's transaction is stopped after its claim, before its commit, by a session
    of the test holding the same row: a load arriving then must wait and find the tombstone."""
    s3, bucket = s3_bucket
    events = loader_for(postgres, s3, schema, "events", isolation)
    (batch,) = manifests(s3, bucket, 1)
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        conn.execute(
            f"INSERT INTO {events.ledger_table} (batch_id, fence, loaded_at, status) "
            "VALUES (%s, 0, now(), 'abandoned')",
            (batch.batch_id,),
        )
        with ThreadPoolExecutor(1) as pool:
            waiter = pool.submit(events.load, Ticket(batch.batch_id), batch)
            eventually(lambda: waiting_on_locks(postgres) == 1, "the load waits on the claim")
            conn.execute("COMMIT")
            assert outcome(waiter) == "abandoned"
    assert rows_by_batch(postgres, events.table) == {}
    assert events.abandon(batch.batch_id) == "abandoned"


def test_a_ledger_without_its_primary_key_is_refused_not_loaded_twice(
    postgres: str, s3_bucket: tuple[Any, str], schema: str
) -> None:
    s3, bucket = s3_bucket
    loader = PostgresLoader(postgres, f"{schema}.events", s3, ledger_table=f"{schema}.bare")
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(loader.ledger_ddl().replace(", PRIMARY KEY (batch_id)", ""))
    (batch,) = manifests(s3, bucket, 1)
    for act in (lambda: loader.load(Ticket(batch.batch_id), batch), lambda: loader.abandon("x")):
        with pytest.raises(InvalidArgument, match=r"no primary key on batch_id.*ADD PRIMARY KEY"):
            act()
    assert rows_by_batch(postgres, loader.table) == {}


def _race(
    args: tuple[str, str, str, str, str, list[Manifest], Any, int],
) -> list[tuple[str, str]]:
    """One process: its own loader and S3 client, loading (or, for a few batches, abandoning)
    every batch in its own order once all processes are ready."""
    from stateless_state.testing.service import local_client

    dsn, table, ledger, isolation, endpoint, batches, start, seed = args
    loader = PostgresLoader(
        dsn, table, local_client("s3", endpoint), ledger_table=ledger, isolation=isolation
    )
    order = list(batches)
    random.Random(seed).shuffle(order)
    start.wait()
    said: list[tuple[str, str]] = []
    for m in order:
        if seed == 0 and int(m.batch_id[-3:]) % 4 == 0:
            said.append((m.batch_id, "abandon:" + loader.abandon(m.batch_id)))
            continue
        for _ in range(20):
            try:
                said.append((m.batch_id, outcome_of(loader.load(Ticket(m.batch_id, seed), m))))
                break
            except psycopg.errors.SerializationFailure:
                continue  # the pipeline retries a failed load after a backoff
    return said


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_processes_racing_on_every_batch_commit_each_exactly_once_or_abandon_it(
    postgres: str,
    s3_bucket: tuple[Any, str],
    schema: str,
    isolation: str,
    local_s3: Any,
) -> None:
    s3, bucket = s3_bucket
    events = loader_for(postgres, s3, schema, "events", isolation)
    batches = manifests(s3, bucket, 16)
    processes = 4
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(processes)
        url = local_s3.endpoint_url
        jobs = [
            (postgres, events.table, events.ledger_table, isolation, url, batches, start, seed)
            for seed in range(processes)
        ]
        with ctx.Pool(processes) as pool:
            answers = [a for said in pool.map(_race, jobs) for a in said]
    rows = rows_by_batch(postgres, events.table)
    ledger = events.ledger()
    for m in batches:
        said = sorted(a for bid, a in answers if bid == m.batch_id)
        assert said, m.batch_id
        if m.batch_id in ledger:
            # Committed by exactly one process; every other one found it, the abandon too.
            assert said.count("committed") == 1, said
            assert set(said) <= {"committed", "already", "abandon:loaded"}, said
            assert rows.get(m.batch_id) == 3
        else:
            assert "abandon:abandoned" in said and "committed" not in said, said
            assert set(said) <= {"abandoned", "abandon:abandoned"}, said
            assert m.batch_id not in rows
    assert sum(rows.values()) == 3 * len(ledger), "no row twice"
