"""The testing page's "Every schedule, replayable: the simulation" (docs/testing.md), run as
written: both of its tests
pass, the count of schedules it states is the count explored, and the failure it shows is the
one the racy handler gets (all but the wall time)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from stateless_state.testing import Simulation, SimulationFailed
from stateless_state.testing.simulation import Exploration

PAGE = Path(__file__).parents[2] / "docs" / "testing.md"
SECTION = "## Every schedule, replayable: the simulation"


def section() -> str:
    text = PAGE.read_text().split(SECTION, 1)[1]
    return text.split("\n# ", 1)[0].split("\n## ", 1)[0]


def example() -> dict[str, Any]:
    code = re.search(r"```python\n(.*?)```", section(), re.S)
    assert code is not None, "the section has its example"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/testing.md", "exec"), namespace)
    return namespace


def test_the_section_fits_in_eighty_lines() -> None:
    assert len(f"{SECTION}{section()}".strip().splitlines()) <= 80


class Recording(Simulation):
    """A :class:`Simulation` that keeps what each run explored, or the failure it raised."""

    def __init__(self) -> None:
        self.results: list[Exploration] = []
        self.failures: list[SimulationFailed] = []

    def run(self, *args: Any, **kwargs: Any) -> Exploration:
        try:
            result = super().run(*args, **kwargs)
        except SimulationFailed as e:
            self.failures.append(e)
            raise
        self.results.append(result)
        return result


def test_the_correct_handler_holds_in_as_many_schedules_as_the_page_says() -> None:
    simulation = Recording()
    example()["test_charged_once"](simulation)  # the page's own test, as pytest runs it
    stated = re.search(r"The first holds in all (\d+) schedules", section())
    assert stated is not None
    [result] = simulation.results
    assert result.finished and result.schedules == int(stated.group(1)), str(result)


def test_the_racy_handler_fails_as_the_page_shows() -> None:
    ns = example()
    simulation = Recording()
    ns["test_the_racy_handler_is_caught"](simulation)
    [failed] = simulation.failures
    shown = re.search(r"```text\n(.*?)```", section(), re.S)
    assert shown is not None

    def timeless(text: str) -> str:
        return re.sub(r"\(\d+\.\d s\)", "(… s)", text.strip())

    assert timeless(str(failed)) == timeless(shown.group(1))
    # and the line it ends with, pasted, fails the same way
    with pytest.raises(SimulationFailed, match="charged 10, not 5"):
        eval(str(failed).splitlines()[-1].strip(), {"simulation": Simulation(), **ns})
