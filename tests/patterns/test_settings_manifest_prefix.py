"""Pipeline settings that would make every later load fail are refused when it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from stateless_state import InvalidArgument, Store


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [
        ("my manifests/", "may use only"),
        ("m'; DROP TABLE t; --/", "may use only"),
        ("manifests\u0661/", "may use only"),
        ("m/\x00/", "may use only"),
        ("p/" * 480, "bytes; S3 allows 1024"),
    ],
)
def test_manifest_prefix_is_refused_when_the_pipeline_is_built(
    moto_store: Store, tmp_path: Path, prefix: str, problem: str
) -> None:
    loader = LocalWarehouseLoader(tmp_path / "w.db", None)
    with pytest.raises(InvalidArgument, match="manifest_prefix") as e:
        S3ToRedshift(
            moto_store,
            stream="clicks #1 😀",
            loader=loader,
            manifest_bucket="bucket",
            manifest_prefix=prefix,
        )
    assert problem in str(e.value)


def test_a_prefix_that_fits_is_kept(moto_store: Store, tmp_path: Path) -> None:
    loader: Any = LocalWarehouseLoader(tmp_path / "w.db", None)
    prefix = "p/" * 400
    pipeline = S3ToRedshift(
        moto_store, stream="s", loader=loader, manifest_bucket="bucket", manifest_prefix=prefix
    )
    assert pipeline.manifest_prefix == prefix
