"""The suite's simulation scenarios, by name, each with two sets of bounds: ``full`` for
``make simulate`` (exhaustive where it can be, with the count of schedules reported) and ``ci``
for the tests. ``make mutants`` runs them against planted bugs.

A module of scenarios registers each with :func:`register`; :func:`specs` imports every module
in ``MODULES`` and returns the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stateless_state.testing import simulation as sim

MODULES = ("tests.support.sim_primitives", "tests.support.sim_batcher")

Scenario = Callable[[sim.World], Any]


@dataclass(frozen=True)
class Spec:
    """One scenario and how to explore it. ``full`` and ``ci`` build a fresh strategy each call
    (strategies are stateful); ``bounds`` says in words what ``full`` covers, for the report.
    ``ci_faults``, when given, is the CI bounds' smaller fault budget (a whole space that fits
    the tests' time), else ``faults`` serves both."""

    name: str
    scenario: Scenario
    setup: Scenario | None
    faults: sim.Faults
    full: Callable[[], sim.Scheduler]
    ci: Callable[[], sim.Scheduler]
    bounds: str
    ci_faults: sim.Faults | None = None

    def explore(
        self, *, ci: bool = False, max_failures: int = 1, memoize: bool = True, workers: int = 1
    ) -> sim.Exploration:
        strategy = self.ci() if ci else self.full()
        faults = self.ci_faults if ci and self.ci_faults is not None else self.faults
        return sim.explore(
            self.scenario,
            strategy,
            faults=faults,
            setup=self.setup,
            max_failures=max_failures,
            memoize=memoize,
            workers=workers,
        )


_REGISTRY: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    if spec.name in _REGISTRY:
        raise ValueError(f"two simulation scenarios named {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def specs() -> dict[str, Spec]:
    for module in MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)
