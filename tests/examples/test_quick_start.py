"""The Quick start is a deployable handler, and no handler example makes its table.

The README and the getting-started page (docs/getting-started.md) show
``examples/quickstart/handler.py`` as it is (the template beside it deploys it;
``test_sam_template.py`` holds its grants to its calls). A table made at import would cost
``CreateTable``, ``DescribeTable`` and ``DescribeTimeToLive`` on every cold start and need
permissions no function should have, so no code block of the documentation and no example
module calls ``create_table`` at module level (tests and setup functions may, inside a function).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tools.lambda_artifact import ROOT

QUICK_START = ROOT / "examples" / "quickstart" / "handler.py"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def documents() -> list[Path]:
    return sorted(
        {ROOT / "README.md", *(ROOT / "examples").rglob("*.md"), *(ROOT / "docs").rglob("*.md")}
    )


def module_level_calls(source: str, name: str) -> list[int]:
    """Lines of the calls of ``<anything>.name(...)`` in the module's own statements (not in a
    function or class body, which runs only when called)."""
    lines = []
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(statement):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == name
            ):
                lines.append(node.lineno)
    return lines


def test_the_readme_and_the_docs_show_the_quick_start_handler_as_it_is() -> None:
    tree = ast.parse(QUICK_START.read_text())
    docstring = tree.body[0]
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    code = "\n".join(QUICK_START.read_text().splitlines()[docstring.end_lineno :]).strip()
    assert code.startswith("from __future__ import annotations")
    for page in ("README.md", "docs/getting-started.md"):
        assert code + "\n" in PYTHON_BLOCK.findall((ROOT / page).read_text()), page


def test_no_handler_example_creates_its_table_at_import() -> None:
    found = []
    parsed = 0
    for path in documents():
        for block in PYTHON_BLOCK.findall(path.read_text()):
            try:
                lines = module_level_calls(block, "create_table")
            except SyntaxError:
                continue  # a fragment (an indented excerpt), not a module
            parsed += 1
            found += [f"{path.relative_to(ROOT)}: {block.splitlines()[n - 1]}" for n in lines]
    for path in sorted((ROOT / "examples").rglob("*.py")):
        found += [
            f"{path.relative_to(ROOT)}:{n}"
            for n in module_level_calls(path.read_text(), "create_table")
        ]
    assert parsed >= 10 and found == []


def test_the_check_sees_a_table_made_at_import() -> None:
    made = "from stateless_state import Store\nstore = Store.from_env()\nstore.create_table()\n"
    assert module_level_calls(made, "create_table") == [3]
    inside = "def setup(world):\n    Store('t', client=world.client('dynamodb')).create_table()\n"
    assert module_level_calls(inside, "create_table") == []
    wrapped = "if True:\n    Store('t').create_table(wait=True)\n"
    assert module_level_calls(wrapped, "create_table") == [2]
