"""The house's layering, checked against the code: no import cycle in ``stateless_state/`` and
``patterns/`` (type-only imports included, so the picture has no circle either), and no module
importing another module's private name. A package may use its own private modules
(``stateless_state.idempotency._jmespath``); it may not reach into another module's ``_name``.
Time and chance go through ``stateless_state.clock``: outside it (and a few named exceptions) no
module reads a clock, sleeps or draws a random number itself, so the simulation's virtual clock
sees every one. And the picture of the house in docs/architecture.md is the one ``tools/house.py``
computes from the code now."""

from __future__ import annotations

import ast
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

PAGE = ROOT / "docs" / "architecture.md"


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


def test_the_pictured_house_is_the_code() -> None:
    """Regenerate with ``python tools/house.py --write docs/architecture.md``."""
    assert block(PAGE.read_text(), HOUSE) == house()


def test_the_pictured_walks_cross_modules_that_exist() -> None:
    """The walks run handlers, so only ``--write`` regenerates them; every module they name
    must still exist (a module moved or renamed since is a stale walk: regenerate it)."""
    walks = block(PAGE.read_text(), WALKS)
    assert walks is not None
    named = set(MODULE_NAME.findall(walks))
    assert "patterns.pipeline" in named
    assert any(f"{n}.".startswith("stateless_state.idempotency.") for n in named)
    assert sorted(named - set(modules(ROOT, (*PACKAGES, "examples")))) == []


CLOCK_READS = frozenset(
    {"time", "time_ns", "monotonic", "monotonic_ns", "sleep", "perf_counter", "perf_counter_ns"}
)
"""What of :mod:`time` reads a clock or waits (``strftime``, ``gmtime(value)`` only format)."""
CHANCE = frozenset({"random", "secrets"})
"""Modules whose every use is a random draw the simulation could not replay."""
DATETIME_READS = frozenset({"now", "utcnow", "today"})
RANDOM_IDS = {"uuid": frozenset({"uuid1", "uuid4"}), "os": frozenset({"urandom"})}
"""Draws of chance outside :mod:`random` and :mod:`secrets`."""

CLOCK_EXCEPTIONS = {
    "stateless_state/clock.py": "the seam itself: SYSTEM is time, random and secrets",
    "stateless_state/testing/dynamodb_local.py": (
        "waits in wall time for a real Java process to listen: virtual time cannot start a JVM"
    ),
    "stateless_state/testing/faults.py": (
        "FaultInjector draws its faults from its own seeded random.Random, on real engines, "
        "apart from the clock of the code it injects into"
    ),
    "stateless_state/testing/simulation/": (
        "the simulator owns virtual time: it times itself in wall seconds for its report, "
        "seeds each schedule's random.Random and the global random botocore's jitter reads"
    ),
    "stateless_state/testing/__init__.py": (
        "fresh_table_name names tables unique across processes sharing one DynamoDB Local, "
        "which a seeded draw would repeat"
    ),
    "stateless_state/testing/context.py": (
        "FakeLambdaContext is for real-thread tests; a simulated invocation gets its context "
        "from the simulation, its request id drawn from the schedule's seed"
    ),
    "patterns/testing.py": (
        "crash-torture hooks run in real worker processes and draw from a random.Random seeded "
        "by the run, so a torture run is reproducible from its seed"
    ),
}
"""Modules allowed their own time and chance, each with the reason."""


def clock_reads(path: Path) -> list[str]:
    """Each place ``path`` reads a clock, sleeps or draws chance without ``stateless_state.clock``:
    ``time.time/monotonic/sleep/perf_counter`` (and ``_ns``) through any alias or ``from time
    import``, any import of ``random`` or ``secrets``, ``uuid.uuid1/uuid4``, ``os.urandom`` and
    ``datetime.now/utcnow/today``."""
    tree = ast.parse(path.read_text())
    time_names: set[str] = set()  # names bound to the time module
    id_modules: dict[str, str] = {}  # names bound to uuid or os, to the module
    datetime_modules: set[str] = set()  # names bound to the datetime module
    datetime_classes: set[str] = set()  # names bound to datetime.datetime or datetime.date
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name
                if alias.name in CHANCE:
                    found.append(f"{node.lineno}: import {alias.name}")
                elif alias.name == "time":
                    time_names.add(bound)
                elif alias.name == "datetime":
                    datetime_modules.add(bound)
                elif alias.name in RANDOM_IDS:
                    id_modules[bound] = alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level:
            for alias in node.names:
                if node.module in CHANCE:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif node.module == "time" and alias.name in CLOCK_READS:
                    found.append(f"{node.lineno}: from time import {alias.name}")
                elif node.module in RANDOM_IDS and alias.name in RANDOM_IDS[node.module]:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif node.module == "datetime" and alias.name in ("datetime", "date"):
                    datetime_classes.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if isinstance(value, ast.Name) and (
            (value.id in time_names and node.attr in CLOCK_READS)
            or (value.id in id_modules and node.attr in RANDOM_IDS[id_modules[value.id]])
        ):
            found.append(f"{node.lineno}: {value.id}.{node.attr}")
        elif node.attr in DATETIME_READS and (
            (isinstance(value, ast.Name) and value.id in datetime_classes)
            or (
                isinstance(value, ast.Attribute)
                and value.attr in ("datetime", "date")
                and isinstance(value.value, ast.Name)
                and value.value.id in datetime_modules
            )
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


def _excepted(relative: str) -> bool:
    return any(
        relative == allowed or (allowed.endswith("/") and relative.startswith(allowed))
        for allowed in CLOCK_EXCEPTIONS
    )


def test_time_and_chance_go_through_the_clock() -> None:
    """Outside the exceptions, every clock read, sleep and random draw of the library and the
    patterns goes through ``stateless_state.clock``: otherwise a simulated invocation would read
    the machine's time (its lease would not expire on a virtual pause) or draw a nonce a replay
    does not draw again."""
    mods = modules(ROOT, PACKAGES)
    relatives = {path.relative_to(ROOT).as_posix() for path in mods.values()}
    for allowed in CLOCK_EXCEPTIONS:  # an exception for a module gone is a stale exception
        assert any(r == allowed or r.startswith(allowed) for r in relatives), allowed
    offenders = [
        f"{path.relative_to(ROOT).as_posix()}:{line}"
        for path in mods.values()
        if not _excepted(path.relative_to(ROOT).as_posix())
        for line in clock_reads(path)
    ]
    assert offenders == []


def test_the_clock_check_sees_every_spelling(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import time as t\n"
        "import secrets\n"
        "from random import choice\n"
        "from time import monotonic\n"
        "import datetime\n"
        "from datetime import date as d\n"
        "a = t.perf_counter()\n"
        "b = datetime.datetime.now()\n"
        "c = d.today()\n"
        "e = t.strftime('%Y', t.gmtime(0))\n"
        "import uuid, os\n"
        "from uuid import uuid4\n"
        "f = uuid.uuid4(), uuid.UUID(int=0), os.urandom(4), os.getpid()\n"
    )
    assert clock_reads(planted) == [
        "2: import secrets",
        "3: from random import choice",
        "4: from time import monotonic",
        "7: t.perf_counter",
        "8: datetime.datetime.now",
        "9: d.today",
        "12: from uuid import uuid4",
        "13: uuid.uuid4",
        "13: os.urandom",
    ]
