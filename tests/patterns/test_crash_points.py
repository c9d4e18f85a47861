"""The pipeline's crash points are explicit calls, in pipeline order (what the torture run kills
at), and cost nothing without a hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patterns.batcher import Thresholds
from patterns.hooks import CRASH_POINTS, CrashPoint, set_crash_hook
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from patterns.testing import direct, put_object
from stateless_state import Store


@pytest.fixture
def seen() -> Iterator[list[CrashPoint]]:
    points: list[CrashPoint] = []
    set_crash_hook(points.append)
    yield points
    set_crash_hook(None)


def test_every_crash_point_is_passed_in_order(
    moto_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path, seen: list[CrashPoint]
) -> None:
    s3, bucket = s3_bucket
    a, b = (put_object(s3, bucket, key, b'{"x": 1}\n') for key in ("a.jsonl", "b.jsonl"))
    pipeline = S3ToRedshift(
        moto_store,
        stream="crash",
        loader=LocalWarehouseLoader(tmp_path / "wh.db", s3),
        manifest_bucket=bucket,
        thresholds=Thresholds(count=1, bytes=None, age=None),
        s3_client=s3,
        min_load_time=0,
    )
    # Two objects, each a batch of one: two add requests, then two loads.
    out = pipeline.handle(direct(a, b))
    assert list(out["loads"].values()) == ["loaded", "loaded"]
    loading = CRASH_POINTS[2:]
    assert tuple(seen) == CRASH_POINTS + loading
    set_crash_hook(None)
    pipeline.handle(direct(a))  # a duplicate; no hook, no call
    assert tuple(seen) == CRASH_POINTS + loading
