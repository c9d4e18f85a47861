"""Fixtures for the patterns' tests (the primitives' fixtures come from the pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from patterns.testing import LocalS3


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.fixture
def s3_bucket(local_s3: LocalS3) -> Iterator[tuple[Any, str]]:
    """An S3 client on the local server and a fresh bucket."""
    import uuid

    client = local_s3.client()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
