"""Simulation scenarios of the primitives (issue 25, item 7), registered with
:mod:`tests.support.simulations`: idempotency with fenced takeover and
``commit_with_completion``, leases, counters with tokens and limits, sessions' per-key
serialization and watermark close, versioned objects.

Each scenario builds one :class:`~stateless_state.Store` per invocation (concurrent Lambda
invocations never share a container, so never share its hints), records what each call
answered, and checks it against what is stored afterwards. Checks also note, in
:data:`WITNESSED`, the interesting states a schedule reached (a takeover, a refused stale
renew...), so that a test can assert the exploration went there at all: an invariant that
holds only because the bad interleaving was never reached proves nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from stateless_state import (
    LeaseLost,
    Store,
)
from stateless_state.idempotency import commit_with_completion, idempotent
from stateless_state.testing import simulation as sim

from .simulations import Spec, register

TABLE = "state"

WITNESSED: defaultdict[str, set[str]] = defaultdict(set)
"""Per scenario name, the interesting states some schedule reached (filled by the checks)."""


def setup(world: sim.World) -> None:
    """The state table every schedule starts from."""
    Store(TABLE, client=world.client("dynamodb")).create_table()


def _store(world: sim.World) -> Store:
    return Store(TABLE, client=world.client("dynamodb"))


def _item_key(pk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def _bump(pk: str) -> dict[str, Any]:
    """A ``TransactWriteItems`` entry adding 1 to ``n`` of item ``pk``: applied twice, it
    shows 2."""
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _item_key(pk),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _bumps(world: sim.World, pk: str) -> int:
    item = world.client("dynamodb").get_item(
        TableName=TABLE, Key=_item_key(pk), ConsistentRead=True
    )
    return int(item["Item"]["n"]["N"]) if "Item" in item else 0


# -- idempotency --------------------------------------------------------------------------------

ORDER = {"id": "order-1"}
EFFECT = "effect#order-1"
# The claim's lease (no Lambda context: the body is a plain function) is shorter than a pause,
# and both are far shorter than the invocation's Lambda timeout: a paused invocation comes back
# as a zombie, not killed by Lambda.
LEASE = 10.0
PAUSE = 20.0
LAMBDA_TIMEOUT = 300.0


def _idempotent_body(
    world: sim.World, fail_first: bool, runs: list[str]
) -> Callable[[Any, str], dict[str, str]]:
    """The body ``process(event, who)``: its effect is one write committed with the completion;
    it returns who ran it; with ``fail_first`` its first run raises."""

    @idempotent(_store(world), key="id", namespace="orders", in_progress_timeout=LEASE)
    def process(event: Any, who: str) -> dict[str, str]:
        runs.append(who)
        if fail_first and len(runs) == 1:
            raise RuntimeError(f"{who}: the body failed")
        commit_with_completion(_bump(EFFECT))
        return {"by": who}

    return process


def _deliver(
    world: sim.World, names: tuple[str, ...], fail_first: bool = False
) -> tuple[list[str], list[str]]:
    """Deliver ORDER to ``names``; returns the body's runs and the invocations that ended in
    :class:`LeaseLost` (zombies told their claim was taken over)."""
    runs: list[str] = []
    lost: list[str] = []

    def handler(who: str) -> Callable[[Any, Any], Any]:
        process = _idempotent_body(world, fail_first, runs)

        def run(event: Any, context: Any) -> dict[str, str]:
            try:
                return process(event, who)
            except LeaseLost:
                lost.append(who)
                raise

        return run

    for name in names:
        world.invoke(handler(name), ORDER, name=name, timeout=LAMBDA_TIMEOUT)
    return runs, lost


def _check_once(world: sim.World, scenario: str, runs: list[str], lost: list[str]) -> None:
    """The effect exactly once iff the key completed; every successful delivery answered the
    stored result (a zombie's completion never replaced the taker's)."""
    record = _store(world).idempotency("orders").record("order-1")
    effect = _bumps(world, EFFECT)
    answers = [o.result for o in world.outcomes if o.status == "ok"]
    if record is not None and record["status"] == "completed":
        stored = json.loads(record["result"])
        assert effect == 1, f"the effect applied {effect} times; runs {runs}"
        assert all(a == stored for a in answers), f"answered {answers}, stored {stored}"
        assert stored["by"] in runs
    else:
        assert effect == 0, f"effect {effect} without a completion (record {record})"
        assert not answers, f"answered {answers} without a completion (record {record})"
    if lost:
        WITNESSED[scenario].add("zombie refused")
    if len(set(runs)) > 1:
        WITNESSED[scenario].add("taken over")


def idempotency_zombie(world: sim.World) -> None:
    """Three deliveries of one event; a pause makes one a zombie whose claim is taken over."""
    runs, lost = _deliver(world, ("a", "b", "c"))

    @world.check
    def effect_once() -> None:
        _check_once(world, "idempotency.zombie", runs, lost)
        zombies = [o.name for o in world.outcomes if o.status == "error"]
        assert set(lost) <= set(zombies), (lost, zombies)


def idempotency_failure(world: sim.World) -> None:
    """The body's first run raises: the claim is freed and a redelivery runs the body again.
    With a pause the failing run is a zombie whose release must not free the taker's record."""
    runs, lost = _deliver(world, ("a", "b"), fail_first=True)

    @world.check
    def freed_and_retried() -> None:
        _check_once(world, "idempotency.failure", runs, lost)
        record = _store(world).idempotency("orders").record("order-1")
        failed = [o for o in world.outcomes if isinstance(o.error, RuntimeError)]
        assert len(failed) == 1, [o.error for o in world.outcomes]
        if record is not None and record["status"] == "completed":
            # the failing run released the key: some later run completed it
            assert len(runs) >= 2, runs
            WITNESSED["idempotency.failure"].add("retried after failure")


def idempotency_completion(world: sim.World) -> None:
    """Two deliveries under crashes, ambiguous writes and transaction conflicts: the user's
    write lands with the completion, and only with it."""
    runs, lost = _deliver(world, ("a", "b"))

    @world.check
    def atomic() -> None:
        _check_once(world, "idempotency.completion", runs, lost)
        crashed = {o.status for o in world.outcomes} & {"crashed"}
        if crashed:
            WITNESSED["idempotency.completion"].add("crash")


IDEM_FAULTS = sim.Faults(pause=1, pause_for=PAUSE, redeliveries=1)

register(
    Spec(
        name="idempotency.zombie",
        scenario=idempotency_zombie,
        setup=setup,
        faults=IDEM_FAULTS,
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="3 deliveries, 1 zombie pause of 20 s past a 10 s claim, 1 redelivery, "
        "exhaustive under 2 preemptions",
    )
)
register(
    Spec(
        name="idempotency.failure",
        scenario=idempotency_failure,
        setup=setup,
        faults=IDEM_FAULTS,
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 deliveries, the first run raising, 1 zombie pause, 1 redelivery, "
        "exhaustive under 2 preemptions",
    )
)
register(
    Spec(
        name="idempotency.completion",
        scenario=idempotency_completion,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1, conflict=1, redeliveries=1),
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 deliveries, 1 crash, 1 ambiguous write, 1 transaction conflict, "
        "1 redelivery, exhaustive under 2 preemptions",
    )
)
