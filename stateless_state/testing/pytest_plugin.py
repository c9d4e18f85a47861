"""pytest fixtures for stateless_state, registered through the ``pytest11`` entry point.

``dynamodb_local`` is session-scoped: one engine serves the whole run, and each test that asks for
``ddb_store`` gets its own fresh table on it, deleted afterwards. ``simulation`` runs a handler
under the deterministic simulation (:class:`~stateless_state.testing.simulate.Simulation`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ..store import Store
from . import fresh_table_name
from .dynamodb_local import DynamoDBLocal
from .faults import FaultInjector
from .simulate import Simulation


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local for the test session (installed on first use; needs Java 17)."""
    with DynamoDBLocal() as engine:
        yield engine


@pytest.fixture
def ddb_store(dynamodb_local: DynamoDBLocal) -> Iterator[Store]:
    """A :class:`Store` on a fresh table in DynamoDB Local."""
    store = Store(fresh_table_name(), client=dynamodb_local.client())
    store.create_table()
    yield store
    store.delete_table()


@pytest.fixture
def moto_store() -> Iterator[Store]:
    """A :class:`Store` on moto: for fast single-threaded tests only (moto is not thread-safe)."""
    import boto3
    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    try:
        with mock_aws():
            client = boto3.session.Session().client("dynamodb", region_name="us-east-1")
            store = Store(fresh_table_name(), client=client)
            store.create_table()
            yield store
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def fault_injector(ddb_store: Store) -> Iterator[FaultInjector]:
    """A :class:`FaultInjector` attached to ``ddb_store``'s client, with no rules yet."""
    with FaultInjector(ddb_store.client, seed=20261123) as faults:
        yield faults


@pytest.fixture
def simulation() -> Simulation:
    """A :class:`Simulation`: ``simulation.run(build, event, ...)`` runs your handler under every
    schedule of its concurrent deliveries, crashes and ambiguous writes included, and a failure's
    message ends with the ``simulation.replay(...)`` call that reproduces it."""
    return Simulation()
