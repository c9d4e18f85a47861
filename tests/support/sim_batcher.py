"""The batcher's scenarios for the simulation (registered with :mod:`tests.support.simulations`).

``batcher.lifecycle``: the real pipeline (:class:`~patterns.pipeline.S3ToRedshift`) end to end.
Two S3-triggered invocations deliver two objects each, into batches of three (so one add's
request straddles a seal), a sweeper seals by age and loads what waits, and an operator abandons
the first batch; the loader is the local SQLite warehouse (its statements are not steps: each
transaction runs whole between two AWS requests, as its write lock makes it on a real one), a
fresh database per schedule. Every container has its own pipeline, so its own plan of the open
batch, as separate Lambda containers do.

``batcher.pipeline``: the same without the operator (two deliveries of two arrivals and the
sweeper), explored whole under 2 preemptions with a crash and an ambiguous write by the reduced
exhaustive search (``Exhaustive(reduce=True)``; the warehouse's transactions are marked with
``world.touch``, being shared state that is not an AWS request).

``batcher.seal``: count-threshold seal races between containers with stale bounds. A warm
container's plan of the open batch is learnt from its own earlier add; another container adds
in between, so the plan is behind; the adds' conditions alone must keep a batch from sealing
beyond its threshold and keep the batch each caller is told it sealed equal to the one stored.

Both check :func:`patterns.testing.check_batches` over what every caller was told.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import hashlib
import itertools
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.batcher.abandon import abandon_batch
from patterns.batcher.batches import batch_id as batch_id_of
from patterns.batcher.manifest import Manifest
from patterns.loaders.base import AbandonOutcome, LoadOutcome, Ticket
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import LoadResult, S3ToRedshift
from patterns.s3 import parse_s3_event
from patterns.testing import BatchHistory, check_batches, check_commits, direct, s3_record
from stateless_state import InvalidArgument, StateConflict, Store
from stateless_state.retry import LambdaContext
from stateless_state.testing import FakeLambdaContext
from stateless_state.testing import simulation as sim
from tests.support.simulations import Spec, register

TABLE = "state"
BUCKET = "sim-arrivals"
STREAM = "sim"
BODY = b'{"x": 1}\n{"x": 2}\n'
KEYS = ("a/1.jsonl", "a/2.jsonl", "b/1.jsonl", "b/2.jsonl")
FIRST = batch_id_of(STREAM, 0, 0)


def setup(world: sim.World) -> None:
    """The table, and the bucket with every object the events name (their ETags are the MD5
    of ``BODY``, as S3's are for a single-part put)."""
    Store(TABLE, client=world.client("dynamodb")).create_table()
    s3 = world.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in KEYS:
        s3.put_object(Bucket=BUCKET, Key=key, Body=BODY)


def record(key: str) -> dict[str, Any]:
    """The S3 notification for ``key`` as S3 sends it."""
    return s3_record(BUCKET, key, len(BODY), etag=hashlib.md5(BODY).hexdigest())


# One warehouse file per schedule, in memory where the machine has a tmpfs: the schedule's
# state must start empty, as moto's does, and files cost less there.
_SHM = Path("/dev/shm")
_SCRATCH = Path(tempfile.mkdtemp(prefix="sim-warehouse-", dir=_SHM if _SHM.is_dir() else None))
_FILES = itertools.count()
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


LOADED: collections.Counter[str] = collections.Counter()
"""Per scenario, how many checked schedules ended with rows in the warehouse. A test reads it so
that an exploration whose every load failed (a stand-in answering S3 with 403, say) cannot pass
for one whose invariants held over loads."""


def warehouse_file() -> Path:
    """A fresh path for one schedule's warehouse; :func:`discard` removes it. Every earlier
    schedule's file goes first: a schedule the reducing search stops as a repeat, or one that
    raised, never reaches the check that discards its own (one schedule runs at a time, and its
    checks are done before the next one's scenario asks for its file)."""
    mine = scratch()
    for left in mine.iterdir():
        left.unlink(missing_ok=True)
    return mine / f"{next(_FILES)}.db"


def scratch() -> Path:
    """This process's directory of warehouse files: a parallel exploration's workers are forks,
    each clearing what it left (and only that)."""
    mine = _SCRATCH / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine


def discard(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def commits(path: Path) -> dict[str, int]:
    """How often each batch's rows were committed: the most copies of any one row."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT batch_id, MAX(n) FROM (SELECT batch_id, object_url, line_no, COUNT(*) AS n "
            "FROM rows GROUP BY batch_id, object_url, line_no) GROUP BY batch_id"
        ).fetchall()
    return {str(b): int(n) for b, n in rows}


@dataclass
class Warehouse:
    """The local warehouse loader, each use marked as a touch of one resource: its
    transactions are shared state but not AWS requests, so a reducing exhaustive search would
    otherwise take two of them for independent. Each SQLite transaction runs within one step
    (the records are read from S3 before it begins), at a call's start or at its end."""

    inner: LocalWarehouseLoader
    world: sim.World

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        self.world.touch("warehouse")
        try:
            return self.inner.load(ticket, manifest)
        finally:
            self.world.touch("warehouse")

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        self.world.touch("warehouse")
        return self.inner.recorded(ticket)

    def abandon(self, batch_id: str) -> AbandonOutcome:
        self.world.touch("warehouse")
        return self.inner.abandon(batch_id)


def lifecycle(world: sim.World, *, operator: bool = True) -> None:
    ddb, s3 = world.client("dynamodb"), world.client("s3")
    store = Store(TABLE, client=ddb)
    path = warehouse_file()
    loader = Warehouse(LocalWarehouseLoader(path, s3), world)
    history = BatchHistory()
    thresholds = Thresholds(count=3, bytes=None, age=1.0)

    def container() -> S3ToRedshift:
        pipeline = S3ToRedshift(
            store,
            stream=STREAM,
            loader=loader,
            manifest_bucket=BUCKET,
            thresholds=thresholds,
            s3_client=s3,
            min_load_time=1,
        )
        history.watch(pipeline.batcher)
        real_load = pipeline.load

        def load(batch_id: str, context: LambdaContext | None = None) -> LoadResult:
            said = real_load(batch_id, context)
            history.loads.append((batch_id, said))
            return said

        pipeline.load = load  # type: ignore[method-assign]
        return pipeline

    world.invoke(container().handle, direct(record(KEYS[0]), record(KEYS[1])), name="a")
    world.invoke(container().handle, direct(record(KEYS[2]), record(KEYS[3])), name="b")
    sweeper = container()
    world.invoke(lambda event, context: sweeper.sweep(context), name="sweeper")
    oncall = container()

    def abandon(event: Any, context: Any) -> str:
        try:
            said = abandon_batch(oncall.batcher, loader, FIRST, who="oncall", why="simulated")
        except (InvalidArgument, StateConflict) as e:
            return type(e).__name__  # not there yet, or loaded: nothing changed
        history.abandons.append((FIRST, said))
        return said

    if operator:
        world.invoke(abandon, name="operator")

    @world.check
    def invariants() -> None:
        try:
            for o in world.outcomes:
                if o.status == "ok" and o.name.split("#")[0] in ("a", "b"):
                    history.delivered.update(a.id for a in parse_s3_event(o.event).arrivals)
            committed = commits(path)
            LOADED["lifecycle" if operator else "pipeline"] += bool(committed)
            check_batches(sweeper.batcher, history, commits=committed, complete=_complete(world))
        finally:
            discard(path)


def seal_setup(world: sim.World) -> None:
    Store(TABLE, client=world.client("dynamodb")).create_table()


def seal(world: sim.World) -> None:
    store = Store(TABLE, client=world.client("dynamodb"))
    history = BatchHistory()
    thresholds = Thresholds(count=3, bytes=None, age=None)
    given: dict[str, list[str]] = {}

    def container(name: str, *requests: int) -> None:
        """A container that adds its arrivals in ``requests`` requests (one ``add`` for a
        request of one, ``add_many`` otherwise), one after the other: from its second on, its
        plan of the open batch is what its first taught it, stale once another container
        added in between."""
        batcher = history.watch(Batcher(store, STREAM, thresholds))
        arrivals = [
            Arrival(f"s3://{BUCKET}/{name}/{i}", 10 + i, sim.EPOCH) for i in range(sum(requests))
        ]
        given[name] = [a.id for a in arrivals]

        def handler(event: Any, context: Any) -> None:
            at = 0
            for n in requests:
                group, at = arrivals[at : at + n], at + n
                if n == 1:
                    batcher.add(group[0], context=context)
                else:
                    batcher.add_many(group, context=context)

        world.invoke(handler, name=name)

    container("a", 1, 2)
    container("b", 1)
    container("c", 2)
    reader = Batcher(store, STREAM, thresholds)

    @world.check
    def invariants() -> None:
        for o in world.outcomes:
            if o.status == "ok":
                history.delivered.update(given[o.name.split("#")[0]])
        check_batches(reader, history, complete=_complete(world))


def _complete(world: sim.World) -> bool:
    """No invocation died between a write and its answer (crashed or timed out)."""
    return all(o.status in ("ok", "error") for o in world.outcomes)


class FlakyWarehouse(LocalWarehouseLoader):
    """The local warehouse, unreachable for the load that holds fence 2: the loader that takes
    a batch over fails, and the batch goes back to sealed for a retry."""

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        if ticket.fence == 2:
            raise ConnectionError("warehouse unreachable (simulated)")
        return super().load(ticket, manifest)


def abandon_setup(world: sim.World) -> None:
    """:func:`setup`, and the first batch sealed by two of the objects (not loaded)."""
    setup(world)
    store = Store(TABLE, client=world.client("dynamodb"))
    pipeline = S3ToRedshift(
        store,
        stream=STREAM,
        loader=LocalWarehouseLoader(":memory:", world.client("s3")),
        manifest_bucket=BUCKET,
        thresholds=Thresholds(count=2, bytes=None, age=None),
        s3_client=world.client("s3"),
        min_load_time=3600,  # only adds: the scenario's invocations load
    )
    added = pipeline.handle(direct(record(KEYS[0]), record(KEYS[1])), FakeLambdaContext(1000))
    assert added["sealed"] == [FIRST] and not added["loads"]


def abandon(world: sim.World) -> None:
    """An operator abandons a sealed batch while a loader claims it and stalls past its lease
    (a zombie: the ``pause`` fault) and the sweeper's loader takes it over and fails, putting
    it back to sealed (the race of ``tests/patterns/test_abandon_races.py``, every schedule of
    it). The abandon must never answer "abandoned" while a loader can still commit."""
    s3 = world.client("s3")
    store = Store(TABLE, client=world.client("dynamodb"))
    path = warehouse_file()
    loader = FlakyWarehouse(path, s3)
    history = BatchHistory()

    def container() -> S3ToRedshift:
        return S3ToRedshift(
            store,
            stream=STREAM,
            loader=loader,
            manifest_bucket=BUCKET,
            thresholds=Thresholds(count=2, bytes=None, age=None),
            s3_client=s3,
            min_load_time=1,
            load_lease=10,
        )

    zombie, sweeper, operator = container(), container(), container()

    def load(event: Any, context: Any) -> str:
        said = zombie.load(FIRST, context)
        history.loads.append((FIRST, said))
        return said

    def sweep(event: Any, context: Any) -> Any:
        report = sweeper.sweep(context)
        history.loads.extend(report["loads"].items())
        return report

    def abandon_first(event: Any, context: Any) -> str:
        try:
            said = abandon_batch(operator.batcher, loader, FIRST, who="oncall", why="poison")
        except StateConflict as e:
            return type(e).__name__  # loaded meanwhile: nothing changed
        history.abandons.append((FIRST, said))
        return said

    # The zombie's Lambda timeout is long, so that a pause past its lease does not end it;
    # the operator's too (a person at the CLI, not a Lambda), so that it can decide before the
    # pause and write after it.
    world.invoke(load, name="zombie", timeout=900, redeliver=False)
    world.invoke(sweep, name="sweeper", redeliver=False)
    world.invoke(abandon_first, name="operator", timeout=900, redeliver=False)

    @world.check
    def invariants() -> None:
        try:
            batches = list(operator.batcher.batches())
            committed = commits(path)
            LOADED["abandon"] += bool(committed)
            check_commits(batches, history, committed, complete=_complete(world))
        finally:
            discard(path)


def pipeline(world: sim.World) -> None:
    """:func:`lifecycle` without the operator: the pipeline alone (two deliveries of two
    arrivals each, and the sweeper)."""
    lifecycle(world, operator=False)


PIPELINE = register(
    Spec(
        name="batcher.pipeline",
        scenario=pipeline,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1),
        full=lambda: sim.Exhaustive(preemptions=2, reduce=True),
        ci=lambda: sim.Exhaustive(preemptions=1, reduce=True),
        ci_faults=sim.Faults(),
        bounds="2 invocations x 2 arrivals, sweeper; exhaustive (reduced), 2 preemptions, "
        "1 crash, 1 ambiguous write",
    )
)


LIFECYCLE = register(
    Spec(
        name="batcher.lifecycle",
        scenario=lifecycle,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1),
        # The whole space is far beyond minutes: with no preemption at all it is already 7,312
        # schedules (12 min); full explores the first 6,000 of the bound-2 space, depth first.
        full=lambda: sim.Exhaustive(preemptions=2, max_schedules=6000),
        ci=lambda: sim.PCT(schedules=60, depth=3, seed=25, fault_rate=0.1),
        bounds="2 invocations x 2 arrivals, sweeper, operator's abandon; exhaustive, "
        "2 preemptions, 1 crash, 1 ambiguous write, first 6,000 schedules",
    )
)

SEAL = register(
    Spec(
        name="batcher.seal",
        scenario=seal,
        setup=seal_setup,
        # A race of conditions between plans: crashes and lost responses are the lifecycle's.
        faults=sim.Faults(),
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="3 containers, 6 arrivals in 4 requests, count threshold 3; exhaustive, "
        "2 preemptions",
    )
)

ABANDON = register(
    Spec(
        name="batcher.abandon",
        scenario=abandon,
        setup=abandon_setup,
        faults=sim.Faults(pause=1, pause_for=45),
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1, max_schedules=200),
        bounds="a loader, the sweeper's loader (its load fails), an operator's abandon; "
        "exhaustive, 2 preemptions, 1 zombie pause of 45 s",
    )
)
