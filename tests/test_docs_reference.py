"""Every public name has a docstring and a place in the API reference (docs/reference/).

The public surface is the ``__all__`` of every module of ``stateless_state`` and ``patterns``
whose path has no part starting with ``_`` (the versioning policy's contract). The reference is
what mkdocstrings renders from the ``::: module`` directives of the reference pages: a module's
exports (the ``public`` filter of mkdocs.yml), or the ``members:`` a directive lists (a package
lists what it defines itself; its re-exports are on their own modules' pages). griffe, which
mkdocstrings renders with, reads both here, so a name is checked the way the site shows it:
through its re-exports to where it is defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import griffe

from tools.house import PACKAGES, ROOT

REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: (\S+)\n((?:    .*\n)*)", re.MULTILINE)


@dataclass(frozen=True)
class Directive:
    """One ``::: path`` of a reference page, and the members it renders (None: the exports)."""

    path: str
    members: tuple[str, ...] | None


def directives(text: str) -> list[Directive]:
    """The directives of a page; of their options only ``members`` (``false`` or a list)
    matters here."""
    found = []
    for match in DIRECTIVE.finditer(text):
        options = match.group(2)
        members: tuple[str, ...] | None = None
        if re.search(r"^\s+members: false$", options, re.MULTILINE):
            members = ()
        elif re.search(r"^\s+members:$", options, re.MULTILINE):
            members = tuple(re.findall(r"^\s+- (\w+)$", options, re.MULTILINE))
        found.append(Directive(match.group(1), members))
    return found


def public_modules(root: Path, packages: tuple[str, ...]) -> dict[str, griffe.Module]:
    """Every module of ``packages`` that has ``__all__`` and no private part, by path."""
    found: dict[str, griffe.Module] = {}
    pending: list[griffe.Module] = []
    for package in packages:
        loaded = griffe.load(
            package, search_paths=[str(root)], resolve_aliases=True, resolve_external=False
        )
        assert isinstance(loaded, griffe.Module)
        pending.append(loaded)
    while pending:
        module = pending.pop()
        pending.extend(m for m in module.modules.values() if not m.is_alias)
        if module.exports is not None and not any(
            part.startswith("_") for part in module.path.split(".")
        ):
            found[module.path] = module
    return found


def exports(module: griffe.Module) -> list[str]:
    """The names of the module's ``__all__`` (griffe keeps one it could not expand as an
    expression, whose text is the name)."""
    return [str(name) for name in module.exports or ()]


def target(module: griffe.Module, name: str) -> griffe.Object | None:
    """What ``module.name`` is, through re-exports; None if griffe cannot find or resolve it."""
    member = module.members.get(name)
    if member is None:
        return None
    try:
        return member.final_target if isinstance(member, griffe.Alias) else member
    except griffe.AliasResolutionError:
        return None


def gaps(modules: dict[str, griffe.Module], pages: list[Directive]) -> tuple[list[str], list[str]]:
    """The exports without a docstring, and the public modules and exports the reference does
    not render."""
    rendered: set[str] = set()
    for directive in pages:
        rendered.add(directive.path)
        module = modules.get(directive.path)
        if module is None:
            continue
        names = directive.members if directive.members is not None else exports(module)
        for name in names:
            found = target(module, name)
            if found is not None:
                rendered.add(found.path)
    undocumented, absent = [], []
    for path, module in sorted(modules.items()):
        if path not in rendered:
            absent.append(path)
        for name in exports(module):
            found = target(module, name)
            if found is None:
                undocumented.append(f"{path}.{name} (not found)")
                continue
            if found.docstring is None or not found.docstring.value.strip():
                undocumented.append(f"{path}.{name}")
            if found.path not in rendered:
                where = "" if found.path == f"{path}.{name}" else f" ({found.path})"
                absent.append(f"{path}.{name}{where}")
    return sorted(set(undocumented)), sorted(set(absent))


def test_every_public_name_has_a_docstring_and_a_place_in_the_reference() -> None:
    """Add the docstring, or a ``::: module`` directive to a page of docs/reference/ (and the
    page to mkdocs.yml's nav); a package's directive lists what it defines under ``members:``."""
    modules = public_modules(ROOT, PACKAGES)
    assert {"stateless_state", "patterns", "stateless_state.testing"} <= set(modules)
    pages = [d for page in sorted(REFERENCE.glob("*.md")) for d in directives(page.read_text())]
    assert gaps(modules, pages) == ([], [])


def test_the_check_sees_a_missing_docstring_and_a_name_left_out(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        '"""A package."""\nfrom .core import Thing, bare\n__all__ = ["Thing", "bare", "own"]\n'
        'def own() -> None:\n    """Its own."""\n'
    )
    (pkg / "core.py").write_text(
        '"""The core."""\n__all__ = ["Thing", "bare"]\n'
        'class Thing:\n    """A thing."""\ndef bare() -> None: ...\n'
    )
    (pkg / "_private.py").write_text('__all__ = ["hidden"]\ndef hidden() -> None: ...\n')
    modules = public_modules(tmp_path, ("pkg",))
    assert sorted(modules) == ["pkg", "pkg.core"]
    page = "::: pkg\n    options:\n      members:\n        - own\n\n::: pkg.core\n"
    assert gaps(modules, directives(page)) == (["pkg.bare", "pkg.core.bare"], [])
    only_the_package = "::: pkg\n    options:\n      members: false\n"
    assert gaps(modules, directives(only_the_package))[1] == [
        "pkg.Thing (pkg.core.Thing)",
        "pkg.bare (pkg.core.bare)",
        "pkg.core",
        "pkg.core.Thing",
        "pkg.core.bare",
        "pkg.own",
    ]


def test_the_reference_shows_the_docstrings_roles_as_code() -> None:
    """The reST roles the docstrings use reach the site as inline code (tools/griffe_roles.py),
    never as raw ``:class:`` text: every role form the library's docstrings use is rewritten."""
    from tools.griffe_roles import ROLE, _code

    text = (
        ":class:`~patterns.feeds.S3Feeds` and :func:`patterns.health.publish_health`, "
        ":meth:`Batcher.seal_due`, :mod:`.workload`, :attr:`x.y`, :data:`~a.B`, :exc:`E`"
    )
    assert ROLE.sub(_code, text) == (
        "`S3Feeds` and `patterns.health.publish_health`, `Batcher.seal_due`, `.workload`, "
        "`x.y`, `B`, `E`"
    )
    roles = re.compile(r":[a-z]+:`")
    found = {
        m.group(0)
        for path in (ROOT / "stateless_state").rglob("*.py")
        for m in roles.finditer(path.read_text())
    } | {
        m.group(0)
        for path in (ROOT / "patterns").rglob("*.py")
        for m in roles.finditer(path.read_text())
    }
    assert all(ROLE.match(role + "x`") for role in found), sorted(found)
