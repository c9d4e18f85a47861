"""The house's layering, checked against the code: no import cycle in ``stateless_state/`` and
``patterns/`` (type-only imports included, so the picture has no circle either), and no module
importing another module's private name. A package may use its own private modules
(``stateless_state.idempotency._jmespath``); it may not reach into another module's ``_name``.
And the README's picture of the house is the one ``tools/house.py`` computes from the code
now."""

from __future__ import annotations

from pathlib import Path

from tools.house import (
    HOUSE,
    MODULE_NAME,
    PACKAGES,
    ROOT,
    WALKS,
    block,
    cycles,
    floors,
    house,
    imports,
    modules,
)

README = ROOT / "README.md"


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


def test_floors_stand_on_what_they_import() -> None:
    edges = {"top": {"mid", "ground"}, "mid": {"ground"}, "ground": set(), "alone": set()}
    assert floors(edges) == {"top": 2, "mid": 1, "ground": 0, "alone": 0}


def test_the_readme_picture_is_the_code() -> None:
    """Regenerate with ``python tools/house.py --write README.md``."""
    assert block(README.read_text(), HOUSE) == house()


def test_the_readme_walks_cross_modules_that_exist() -> None:
    """The walks run handlers, so only ``--write`` regenerates them; every module they name
    must still exist (a module moved or renamed since is a stale walk: regenerate it)."""
    walks = block(README.read_text(), WALKS)
    assert walks is not None
    named = set(MODULE_NAME.findall(walks))
    assert "patterns.pipeline" in named
    assert any(f"{n}.".startswith("stateless_state.idempotency.") for n in named)
    assert sorted(named - set(modules(ROOT, (*PACKAGES, "examples")))) == []
