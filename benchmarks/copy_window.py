"""§7 of ``make bench``: what closing the Redshift window costs per file.

One batch of ``files`` objects in a versioned bucket is loaded through ``S3ToRedshift.load`` with
the Redshift loader, S3 on moto's server (patterns.testing.LocalS3), the batch on DynamoDB Local
and a Data API that finishes every statement at once. It counts, per file, the S3 requests
(``HeadObject``, ``CopyObject``, ``PutObject``) and the Data API calls, in four modes:

* ``window open``: the pin and nothing after COPY (the loader before the recheck; the pipeline's
  ``recheck`` stripped from the manifest), the baseline;
* ``recheck (default)``: the default, nothing rewritten;
* ``recheck, 1% rewritten``: the default with 1% of the keys rewritten right after COPY read them;
* ``always_stage``: every member staged before COPY.

Load time per file is reported as a ratio to the baseline in the same run: moto's S3 answers in
well under a millisecond, so the ratio shows the requests' weight, not AWS's latency.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from patterns.batcher import Thresholds
from patterns.batcher.manifest import Manifest
from patterns.loaders.base import AbandonOutcome, LoadOutcome, Ticket
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import LocalS3, direct, put_object
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name

from . import prices

MODES = ("window open", "recheck (default)", "recheck, 1% rewritten", "always_stage")
_S3_COUNTED = ("HeadObject", "CopyObject", "PutObject")


@dataclass(frozen=True)
class WindowCost:
    """Per file of one load: S3 requests by operation, Data API calls, and load seconds."""

    s3: dict[str, float]
    data_api: float
    seconds: float

    @property
    def dollars_per_million(self) -> float:
        gets = self.s3.get("HeadObject", 0.0)
        puts = self.s3.get("CopyObject", 0.0) + self.s3.get("PutObject", 0.0)
        return prices.s3_dollars(gets * 1e6, puts * 1e6)


class _DataApi:
    """Finishes every statement at once; a commit (``LOCK`` first) inserts its ledger row.
    ``after`` runs after each COPY call, as the statement would have read S3 by then."""

    def __init__(self, after: Any = None) -> None:
        self.calls = 0
        self.after = after
        self._results: dict[str, dict[str, Any]] = {}

    def batch_execute_statement(self, *, Sqls: list[str], **params: Any) -> dict[str, Any]:
        self.calls += 1
        statement = uuid.uuid4().hex
        rows = [0] * len(Sqls)
        if Sqls[0].startswith("LOCK"):
            rows[-2] = 1
        self._results[statement] = {
            "Id": statement,
            "Status": "FINISHED",
            "SubStatements": [
                {"Id": f"{statement}:{i}", "ResultRows": n} for i, n in enumerate(rows)
            ],
        }
        if self.after is not None and any(s.startswith("COPY ") for s in Sqls):
            self.after()
        if "SessionKeepAliveSeconds" in params:
            return {"Id": statement, "SessionId": str(uuid.uuid4())}
        return {"Id": statement}

    def describe_statement(self, *, Id: str) -> dict[str, Any]:
        self.calls += 1
        return self._results[Id]


@dataclass
class _WindowOpen:
    """The loader as it was before the recheck: the manifest's ``recheck`` stripped."""

    inner: RedshiftDataApiLoader

    def load(self, ticket: Ticket, manifest: Manifest) -> LoadOutcome:
        return self.inner.load(ticket, replace(manifest, recheck=None))

    def recorded(self, ticket: Ticket) -> LoadOutcome | None:
        return self.inner.recorded(ticket)

    def abandon(self, batch_id: str) -> AbandonOutcome:
        return self.inner.abandon(batch_id)


def _one(store: Store, s3: Any, mode: str, files: int) -> WindowCost:
    bucket = f"cw-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"in/{i:05d}.json" for i in range(files)]
    records = [put_object(s3, bucket, k, b'{"x": 1}\n') for k in keys]
    hot = keys[: max(1, files // 100)]

    def rewrite() -> None:
        if mode == "recheck, 1% rewritten" and hot:
            for key in hot:
                s3.put_object(Bucket=bucket, Key=key, Body=b'{"x": 2}\n')
            hot.clear()

    api = _DataApi(rewrite)
    redshift = RedshiftDataApiLoader(
        table="analytics.events",
        iam_role="arn:aws:iam::123456789012:role/copy",
        database="dev",
        workgroup_name="wg",
        client=api,
        poll_interval=0,
    )
    pipeline = S3ToRedshift(
        store,
        stream=f"cw-{uuid.uuid4().hex[:8]}",
        loader=_WindowOpen(redshift) if mode == "window open" else redshift,
        manifest_bucket=bucket,
        thresholds=Thresholds(count=files, bytes=None, age=None),
        s3_client=s3,
        min_load_time=60,
        always_stage=mode == "always_stage",
    )
    (batch_id,) = pipeline.handle(direct(*records), FakeLambdaContext(1000))["sealed"]
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    s3.meta.events.register("before-call.s3.*", count)
    started = time.perf_counter()
    try:
        assert pipeline.load(batch_id) == "loaded", mode
    finally:
        s3.meta.events.unregister("before-call.s3.*", count)
    seconds = time.perf_counter() - started
    return WindowCost(
        {op: seen[op] / files for op in _S3_COUNTED}, api.calls / files, seconds / files
    )


def run(engine: DynamoDBLocal, sizes: tuple[int, ...]) -> dict[int, dict[str, WindowCost]]:
    """Each mode at each batch size, on one DynamoDB Local and one local S3."""
    results: dict[int, dict[str, WindowCost]] = {}
    with LocalS3() as local:
        s3 = local.client()
        for files in sizes:
            store = Store(fresh_table_name("cw"), client=engine.client())
            store.create_table()
            results[files] = {mode: _one(store, s3, mode, files) for mode in MODES}
    return results


def markdown(results: dict[int, dict[str, WindowCost]]) -> list[str]:
    lines = [
        "## 7. The Redshift window: cost per file of checking again after COPY",
        "",
        "One batch in a versioned bucket loaded through `S3ToRedshift.load` and the Redshift "
        "loader (`benchmarks/copy_window.py`: S3 on moto's server, a Data API that finishes at "
        "once). *Window open* is the loader before the recheck (one `HeadObject` per file at the "
        "pin, then COPY), the baseline; the default adds one `HeadObject` per file after COPY and "
        "two Data API calls per batch (COPY and commit become calls of one session); a key "
        "rewritten in the window costs a `CopyObject` of its own version, a new manifest "
        "revision and one more COPY call; `always_stage` copies every file. Dollars at S3 "
        f"Standard's request prices (${prices.S3_PER_MILLION_GET} per million GET-class, "
        f"${prices.S3_PER_MILLION_PUT} per million PUT-class requests, us-east-1). Time per "
        "file is a ratio to the baseline in the same run (moto answers in well under 1 ms, so "
        "this shows the requests' weight, not AWS's latency).",
        "",
        "| files per batch | mode | HeadObject | CopyObject | PutObject "
        "| Data API calls, polls incl. | S3 $ per million files | time ÷ window open |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for files, modes in results.items():
        base = modes["window open"].seconds
        for mode, c in modes.items():
            lines.append(
                f"| {files:,} | {mode} | {c.s3['HeadObject']:.3f} | {c.s3['CopyObject']:.3f} "
                f"| {c.s3['PutObject']:.3f} | {c.data_api:.3f} | ${c.dollars_per_million:,.2f} "
                f"| {c.seconds / base:.2f}x |"
            )
    return [*lines, ""]
