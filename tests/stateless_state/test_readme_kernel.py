"""The example primitive of "How it is built" (docs/architecture.md), run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stateless_state import Store

PAGE = Path(__file__).parents[2] / "docs" / "architecture.md"


def example() -> Any:
    section = PAGE.read_text().split("# How it is built", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the section has its example"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/architecture.md", "exec"), namespace)
    return namespace["FirstWins"]


def test_the_example_primitive_works_on_the_kernel(moto_store: Store) -> None:
    first_wins = example()
    register = first_wins(moto_store, "leader#1")
    assert register.set("a") == "a"
    assert register.set("b") == "a", "the second writer reads the first writer's value"
    assert first_wins(moto_store, "leader").set("c") == "c", "its own item, by the key rule"
