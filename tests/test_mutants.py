"""The planted mutants of ``tools/mutants.py``: each still applies to the code as it is, and the
simulation finds each under its CI bounds. The real-thread comparison is ``make mutants``'s (it
takes minutes of DynamoDB Local); here only the simulation, which needs no server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.simulations import specs
from tools import mutants

_names = [m.name for m in mutants.MUTANTS]


def test_every_mutant_names_registered_scenarios_and_distinct_names() -> None:
    registered = specs()
    assert len(set(_names)) == len(_names)
    assert len(mutants.MUTANTS) >= 8
    for mutant in mutants.MUTANTS:
        mutants.check_applies(mutant)
    for mutant in mutants.MUTANTS:
        assert mutant.scenarios, mutant.name
        assert set(mutant.scenarios) <= set(registered), mutant.name
        assert mutant.races, f"{mutant.name}: name the real-thread tests to compare with"


def test_every_mutant_is_found_by_the_simulation_under_ci_bounds() -> None:
    # Subprocesses, two at a time: this machine has two cores and each run is one CPU-bound
    # interpreter. The mutants only the full bounds find take minutes: make mutants runs them.
    quick = [m for m in mutants.MUTANTS if not m.full]
    with ThreadPoolExecutor(2) as pool:
        verdicts = list(pool.map(mutants.judge, quick))
    survived = [v.mutant.name for v in verdicts if not v.found]
    assert not survived, f"survived the simulation: {survived}"
    for v in verdicts:
        for name, (_, schedules, _) in v.scenarios.items():
            assert schedules > 0, (v.mutant.name, name)


def test_a_patch_that_no_longer_applies_is_an_error_not_a_silent_survivor(tmp_path: Path) -> None:
    moved = mutants.Mutant(
        "moved",
        "nothing",
        (("stateless_state/counter.py", "this text is not in the file", ""),),
        ("counter.tokens",),
    )
    with pytest.raises(mutants.PatchDoesNotApply, match="update the mutant"):
        mutants.plant(moved, tmp_path)
