"""The primitives' simulation scenarios (``tests/support/sim_primitives.py``) under their CI
bounds: every invariant holds in every schedule explored, and the exploration reached the
states that make the invariants worth checking (a takeover, a refused stale renew...)."""

from __future__ import annotations

import pytest

from stateless_state.testing import simulation as sim
from tests.support import sim_primitives
from tests.support.simulations import specs

PRIMITIVES = sorted(
    n for n, s in specs().items() if s.scenario.__module__ == sim_primitives.__name__
)

# What some schedule of each scenario must reach under the CI bounds.
REACHED = {
    "idempotency.zombie": {"taken over", "zombie refused"},
    "idempotency.failure": {"taken over", "retried after failure"},
    "idempotency.completion": {"crash"},
    "lease.fencing": {"stale renew refused", "stale write refused"},
    "lease.pair": {"stale renew refused", "stale write refused"},
    "counter.tokens": {"crash"},
    "counter.limits": {"limit refused"},
    "sessions.per_key": {"retried on a moved head"},
    "sessions.watermark": {"closed", "late"},
    "versioned.cas": {"retried on a moved head"},
}


def test_every_primitive_scenario_says_what_it_must_reach() -> None:
    assert set(PRIMITIVES) == set(REACHED)


@pytest.mark.parametrize("name", PRIMITIVES)
def test_every_invariant_holds_under_the_ci_bounds(name: str) -> None:
    sim_primitives.WITNESSED.pop(name, None)
    result = specs()[name].explore(ci=True)
    result.check()
    assert result.schedules > 20, str(result)
    missing = REACHED[name] - sim_primitives.WITNESSED[name]
    assert not missing, f"{name}: no schedule reached {sorted(missing)} ({result})"


def test_a_token_add_that_landed_before_the_limit_refused_its_retry_says_it_applied() -> None:
    """Found by counter.limits: b's transaction was applied with its response lost, botocore's
    retry met a transaction conflict, and the library's retry then saw the counter at the limit
    and answered from the token record as a duplicate (``applied=False``), though the token was
    b's own write."""
    spec = specs()["counter.limits"]
    run = sim.replay(
        spec.scenario,
        "sim1:0:1:ambiguous=1,conflict=1,crash=1:*6.1*4.101*4.",
        setup=spec.setup,
    )
    assert run.error is None, run.error
    b = next(o for o in run.outcomes if o.name == "b")
    assert [s.action for s in run.trace if s.invocation == "b" and s.kind == "request"][1:3] == [
        "ambiguous",
        "conflict",
    ]
    assert b.status == "ok"


def test_a_session_add_that_landed_before_the_session_closed_reports_that_session() -> None:
    """Found by sessions.watermark with a transaction conflict: the add's transaction was
    applied with its response lost, a sweeper closed the session (with the event in it),
    botocore's retry met a conflict, and the add's next attempt found the session closed and
    its own token there: it answered ``duplicate``, as if another add had counted the event."""
    spec = specs()["sessions.watermark"]
    run = sim.replay(spec.scenario, "sim1:0:1:ambiguous=1,conflict=1:00030111", setup=spec.setup)
    assert run.error is None, run.error
    assert [s.action for s in run.trace if s.operation == "TransactWriteItems"] == [
        "ambiguous",
        "conflict",
    ]
    update = next(o.result for o in run.outcomes if o.name == "in")
    assert not update.duplicate and not update.late
    assert update.session is not None and update.session.closed and update.session.count == 2


def test_an_update_that_landed_unseen_and_was_superseded_is_not_applied_again() -> None:
    """Found by versioned.cas: b's transaction was applied with its response lost, c wrote the
    next version, botocore's retry of b's transaction met a conflict, and b's next attempt read
    c's head (not its own) and applied its function a second time: ``[a, b, c, b]``."""
    spec = specs()["versioned.cas"]
    run = sim.replay(spec.scenario, "sim1:0:1:ambiguous=1,conflict=1:*5.20101", setup=spec.setup)
    assert [(s.invocation, s.action) for s in run.trace if s.operation == "TransactWriteItems"][
        1:4
    ] == [("b", "ambiguous"), ("c", "run"), ("b", "conflict")]
    assert run.error is None, run.error
    b = next(o.result for o in run.outcomes if o.name == "b")
    assert (b.number, b.value) == (2, ["a", "b"])
