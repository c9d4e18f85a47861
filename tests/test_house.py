"""The house's layering, checked against the code: no import cycle in ``stateless_state/`` and
``patterns/`` (type-only imports included, so the picture has no circle either), and no module
importing another module's private name. A package may use its own private modules
(``stateless_state._jmespath``); it may not reach into another module's ``_name``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("stateless_state", "patterns")


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Each module's imports of the other modules (every ``import``, also under
    ``TYPE_CHECKING`` and inside functions), and the private names imported across modules."""
    edges: dict[str, set[str]] = {}
    private: list[str] = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
                if not node.level:
                    source = node.module or ""
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    if target in mods:
                        targets.add(target)
                        if alias.name.startswith("_") and target.rpartition(".")[0] != package:
                            private.append(f"{name} imports the private module {target}")
                        continue
                    if source in mods:
                        targets.add(source)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{name} imports {alias.name} from {source}")
        edges[name] = targets - {name}
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_and_no_private_name_across_modules() -> None:
    mods = modules(ROOT, PACKAGES)
    assert "patterns.loaders.base" in mods and "stateless_state.lease" in mods
    edges, private = imports(mods)
    assert cycles(edges) == []
    assert private == []


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path: Path) -> None:
    """The walker itself: a planted cycle (also through a type-only import and a package's
    ``__init__``) and a planted private import are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("from .sub.b import B\nA = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import _hidden\nB = 2\n"
    )
    mods = modules(tmp_path, ("pkg",))
    edges, private = imports(mods)
    assert cycles(edges) == [["pkg.a", "pkg.sub.b"]]
    assert private == ["pkg.sub.b imports _hidden from pkg.a"]
