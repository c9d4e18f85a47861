"""The batcher under the deterministic simulation: the registered scenarios' CI bounds hold every
batch invariant (:func:`patterns.testing.check_batches`), and a planted seal bug is found and its
failure replays to the same request trace."""

from __future__ import annotations

from typing import Any

import pytest

from patterns.batcher import members
from stateless_state.expressions import Attr
from stateless_state.testing import simulation as sim
from tests.support import sim_batcher
from tests.support.sim_batcher import ABANDON, LIFECYCLE, PIPELINE, SEAL
from tests.support.simulations import Spec


@pytest.mark.parametrize("spec", [PIPELINE, LIFECYCLE, SEAL, ABANDON], ids=lambda s: s.name)
def test_every_batch_invariant_holds_under_the_ci_bounds(spec: Spec) -> None:
    sim_batcher.LOADED.clear()
    result = spec.explore(ci=True).check()
    if spec is not SEAL:  # the seal scenario only adds
        loaded = sim_batcher.LOADED[spec.name.split(".")[1]]
        assert loaded >= result.schedules // 4, f"only {loaded} schedules loaded rows: {result}"
    strategy = spec.ci()
    if isinstance(strategy, sim.Exhaustive) and strategy.max_schedules is None:
        assert result.finished, str(result)
    else:
        bound = getattr(strategy, "max_schedules", None) or getattr(strategy, "schedules", None)
        assert result.schedules == bound, str(result)
    # No schedule's warehouse outlives the next one's, those stopped as repeats (never checked)
    # included: in memory, a long exploration's would add up.
    left = {p.name.split(".")[0] for p in sim_batcher.scratch().iterdir()}
    assert len(left) <= 1, (result.pruned, sorted(left))


def test_a_seal_without_its_count_condition_is_found_and_its_failure_replays_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bug of issue 25: the sealing request conditional only on the batch being open, not
    on the count its container expected. Containers with stale plans then seal past the
    threshold, and a caller is told a sealed batch that is not the one stored."""
    real = members.Membership._batch_write

    def open_is_enough(
        self: Any, group: Any, lane: int, plan: Any, sealed: Any, now: float
    ) -> tuple[Any, Any]:
        update, condition = real(self, group, lane, plan, sealed, now)
        if sealed is None or not plan.exists:
            return update, condition
        return update, Attr("state").eq("open")

    monkeypatch.setattr(members.Membership, "_batch_write", open_is_enough)
    result = SEAL.explore(ci=True)
    assert result.failures, str(result)
    failure = result.failures[0]
    assert "beyond the count threshold 3" in str(failure.run.error)
    again = sim.replay(SEAL.scenario, str(failure.run.line), setup=SEAL.setup)
    assert again.requests == failure.run.requests
    assert [(s.invocation, s.operation, s.action) for s in again.trace] == [
        (s.invocation, s.operation, s.action) for s in failure.run.trace
    ]
    assert str(again.error) == str(failure.run.error)
