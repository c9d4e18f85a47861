"""Move the tests into one package per package they test (issue 24 item 6), with ``git mv``.

    python tools/move_tests.py [--dry-run]

Layout: ``tests/stateless_state/``, ``tests/patterns/``, ``tests/examples/``, ``tests/benchmarks/``;
shared helpers (and the root conftest's fixtures) in ``tests/support/``; the tests of the whole
house (its layering, what an import loads) stay in ``tests/``. Each file goes where ``TABLE`` says;
a test file the table does not know goes to the package it imports most (the script says so), a
helper module it does not know goes to ``tests/support/``.

Then every reference to a moved module is rewritten, in every tracked text file: imports
(absolute, relative, ``import tests.x``), dotted strings (``"tests.workers"``), paths
(``tests/test_x.py``), bare file names of renamed tests, and ``Path(__file__).parent...`` depths
of moved files. Idempotent: a second run moves nothing and rewrites nothing. Stdlib only (if
``.venv/bin/ruff`` exists it sorts the imports of the files it rewrote).
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PACKAGES = ("stateless_state", "patterns", "examples", "benchmarks")
# On a tie the higher layer wins: a test of the batcher imports the primitives too.
LAYER = {"examples": 3, "benchmarks": 2, "patterns": 1, "stateless_state": 0}
SUPPORT = "support"
TEXT = (".py", ".md", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".ini", "Makefile")

# Old name in tests/ -> new path under tests/. Names say the one concept a file tests; S3 object
# versions are "object pins" so that they never share a word with the versioned primitive.
TABLE = {
    # the primitives and their kernel
    "test_counter_unit.py": "stateless_state/test_counter_unit.py",
    "test_counter_conditions.py": "stateless_state/test_counter_conditions.py",
    "test_counter_faults.py": "stateless_state/test_counter_faults.py",
    "test_counter_races.py": "stateless_state/test_counter_races.py",
    "test_idempotency_unit.py": "stateless_state/test_idempotency_unit.py",
    "test_idempotency_conditions.py": "stateless_state/test_idempotency_conditions.py",
    "test_idempotency_first_claim.py": "stateless_state/test_idempotency_first_claim.py",
    "test_idempotency_typed_keys.py": "stateless_state/test_idempotency_typed_keys.py",
    "test_idempotency_pynamodb_race.py": "stateless_state/test_idempotency_pynamodb_race.py",
    "test_jmespath_keys.py": "stateless_state/test_jmespath_keys.py",
    "test_lease_unit.py": "stateless_state/test_lease_unit.py",
    "test_lease_conditions.py": "stateless_state/test_lease_conditions.py",
    "test_ownership_races.py": "stateless_state/test_ownership_races.py",
    "test_versioned_unit.py": "stateless_state/test_versioned_unit.py",
    "test_versioned_conditions.py": "stateless_state/test_versioned_conditions.py",
    "test_versioned_races.py": "stateless_state/test_versioned_races.py",
    "test_versioned_gc_races.py": "stateless_state/test_versioned_gc_races.py",
    "test_sessions_boundaries.py": "stateless_state/test_sessions_boundaries.py",
    "test_sessions_conditions.py": "stateless_state/test_sessions_conditions.py",
    "test_sessions_conformance.py": "stateless_state/test_sessions_conformance.py",
    "test_sessions_model.py": "stateless_state/test_sessions_model.py",
    "test_sessions_races.py": "stateless_state/test_sessions_races.py",
    "test_kernel.py": "stateless_state/test_kernel.py",
    "test_also_writes.py": "stateless_state/test_also_writes.py",
    "test_refused_writes.py": "stateless_state/test_refused_writes.py",
    "test_cloudwatch_emf.py": "stateless_state/test_cloudwatch_emf.py",
    "test_input_domain.py": "stateless_state/test_input_domain.py",
    "test_tenants.py": "stateless_state/test_tenants.py",
    "test_history_checker.py": "stateless_state/test_history_checker.py",
    "test_linearizability.py": "stateless_state/test_linearizability.py",
    "test_readme_example.py": "stateless_state/test_readme_race_testing.py",
    "test_readme_kernel.py": "stateless_state/test_readme_kernel.py",
    "test_readme_pynamodb.py": "stateless_state/test_readme_pynamodb.py",
    # the batcher, the pipeline and its loaders
    "test_batcher_unit.py": "patterns/test_batcher_unit.py",
    "test_batcher_conditions.py": "patterns/test_batcher_conditions.py",
    "test_batcher_races.py": "patterns/test_batcher_races.py",
    "test_add_many.py": "patterns/test_batcher_add_many.py",
    "test_abandon.py": "patterns/test_abandon.py",
    "test_abandon_open_batch.py": "patterns/test_abandon_open_batch.py",
    "test_abandon_races.py": "patterns/test_abandon_races.py",
    "test_copy_window.py": "patterns/test_copy_window.py",
    "test_copy_window_attacks.py": "patterns/test_copy_window_attacks.py",
    "test_object_versions.py": "patterns/test_object_pins.py",
    "test_object_version_edges.py": "patterns/test_object_pin_edges.py",
    "test_superseded_report.py": "patterns/test_superseded_report.py",
    "test_crash_points.py": "patterns/test_crash_points.py",
    "test_mixed_events.py": "patterns/test_mixed_events.py",
    "test_s3_events.py": "patterns/test_s3_events.py",
    "test_pipeline_e2e.py": "patterns/test_pipeline_e2e.py",
    "test_pipeline_settings.py": "patterns/test_settings_manifest_prefix.py",
    "test_settings_refused.py": "patterns/test_settings_refused.py",
    "test_postgres_loader.py": "patterns/test_postgres_loader.py",
    "test_redshift_loader.py": "patterns/test_redshift_loader.py",
    "test_warehouse_mvcc.py": "patterns/test_redshift_loader_mvcc.py",
    "test_sql_quoting.py": "patterns/test_sql_quoting.py",
    "test_cli.py": "patterns/test_cli.py",
    # the example application
    "test_demo.py": "examples/test_demo.py",
    "test_example_handler.py": "examples/test_handler.py",
    "test_sam_template.py": "examples/test_sam_template.py",
    # the benchmarks
    "test_bench_smoke.py": "benchmarks/test_run_smoke.py",
    "test_batcher_cost.py": "benchmarks/test_batcher_cost.py",
    # the whole house: its layering, and what a handler's import loads
    "test_house.py": "test_house.py",
    "test_cold_start.py": "test_cold_start.py",
    # shared helpers
    "pg_warehouse.py": "support/pg_warehouse.py",
    "workers.py": "support/workers.py",
    "pynamodb_models.py": "support/pynamodb_models.py",
    "session_model.py": "support/session_model.py",
}
FIXTURES = "support/fixtures.py"
CONFTEST = '''"""The shared fixtures (tests/support/fixtures.py) for every test package; the
primitives' fixtures come from the pytest plugin (stateless_state.testing.pytest_plugin)."""

pytest_plugins = ["tests.support.fixtures"]
'''
INIT_DOCS = {
    "stateless_state": "Tests of the primitives and their kernel (stateless_state/).",
    "patterns": "Tests of the batcher, the S3 to Redshift pipeline and its loaders (patterns/).",
    "examples": "Tests of the example application (examples/s3_redshift_batcher/).",
    "benchmarks": "Tests that the benchmarks run and measure what they claim (benchmarks/).",
    SUPPORT: "Helpers and fixtures shared by the test packages.",
}
LINE_LENGTH = 100  # pyproject.toml's [tool.ruff] line-length
FILE_DEPTH = re.compile(r"Path\(__file__\)(\.resolve\(\))?((?:\.parent\b)+|\.parents\[(\d+)\])")


def run_git(*args: str) -> bool:
    return (
        subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False).returncode == 0
    )


def dotted(relative: str) -> str:
    """``support/workers.py`` -> ``tests.support.workers``."""
    return "tests." + relative.removesuffix(".py").replace("/", ".")


def package_votes(path: Path) -> Counter[str]:
    """How often a test file names each package: imports, and strings such as ``-m examples.x``."""
    votes: Counter[str] = Counter()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if re.fullmatch(r"[a-z_]+\.[\w.]+", node.value) else []
        votes.update(n.split(".")[0] for n in names if n.split(".")[0] in PACKAGES)
    return votes


def plan() -> dict[str, str]:
    """Old -> new path (relative to tests/) of every file still to move, each with its reason."""
    moves: dict[str, str] = {}
    for path in sorted(TESTS.glob("*.py")):
        name = path.name
        if name in ("__init__.py", "conftest.py"):
            continue
        if name in TABLE:
            target, why = TABLE[name], "table"
        elif name.startswith("test_"):
            votes = package_votes(path)
            if not votes:
                print(f"  {name}: imports none of {', '.join(PACKAGES)}; stays in tests/")
                continue
            best = max(votes, key=lambda p: (votes[p], LAYER[p]))
            target, why = f"{best}/{name}", f"not in the table; imports {dict(votes)}"
        else:
            target, why = f"{SUPPORT}/{name}", "not in the table; a helper"
        if target != name:
            moves[name] = target
            print(f"  tests/{name} -> tests/{target} ({why})")
    return moves


def move(old: str, new: str, dry_run: bool) -> bool:
    source, target = TESTS / old, TESTS / new
    if target.exists():
        print(f"  ! tests/{new} exists already: tests/{old} left where it is, merge them by hand")
        return False
    if dry_run:
        return True
    target.parent.mkdir(exist_ok=True)
    if not run_git("mv", str(source), str(target)):
        source.rename(target)  # not tracked (yet): a plain rename
        print(f"  tests/{old} is not tracked by git: renamed without git mv")
    return True


def ensure_packages(dry_run: bool) -> None:
    for package, doc in INIT_DOCS.items():
        init = TESTS / package / "__init__.py"
        if (TESTS / package).is_dir() and not init.exists() and not dry_run:
            init.write_text(f'"""{doc}"""\n')
            run_git("add", str(init))


def move_fixtures(dry_run: bool) -> bool:
    """The root conftest's fixtures to tests/support/fixtures.py, registered by the conftest."""
    conftest, fixtures = TESTS / "conftest.py", TESTS / FIXTURES
    if not conftest.exists() or "@pytest.fixture" not in conftest.read_text():
        return False
    if fixtures.exists():
        print(f"  ! tests/conftest.py defines fixtures and tests/{FIXTURES} exists: move by hand")
        return False
    print(f"  tests/conftest.py's fixtures -> tests/{FIXTURES}")
    if not dry_run:
        fixtures.parent.mkdir(exist_ok=True)
        run_git("mv", str(conftest), str(fixtures))
        conftest.write_text(CONFTEST)
        run_git("add", str(conftest))
    return True


def resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute module an import names, relative forms resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def rewrite_imports(text: str, package: str, modules: dict[str, str], moved: bool) -> str:
    """Imports of a moved module (any form) as absolute imports of its new name; in a file that
    moved, every relative import as the absolute import it meant."""
    lines = text.splitlines(keepends=True)
    for node in sorted(
        (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)),
        key=lambda n: -n.lineno,
    ):
        source = resolve(node, package)
        names = [f"{source}.{a.name}" for a in node.names]
        if source in modules:
            new = f"from {modules[source]} import"
        elif node.module is None and all(n in modules for n in names):
            parents = {modules[n].rpartition(".")[0] for n in names}
            if len(parents) != 1:
                print(f"  ! {package}: `from . import` of modules now in different packages")
                continue
            new = f"from {parents.pop()} import"
        elif node.level and moved:
            new = f"from {source} import"  # relative to a module that moved with its importer
        else:
            continue
        row = node.lineno - 1
        head = re.match(r"(\s*)from\s+[\w.]+\s+import", lines[row])
        if head is None:
            continue
        lines[row] = head.group(1) + new + lines[row][head.end() :]
    return "".join(lines)


def rewrite_text(text: str, moves: dict[str, str]) -> str:
    """Dotted names, paths and renamed bare file names of moved modules."""
    for old, new in moves.items():
        stem = old.removesuffix(".py")
        text = re.sub(rf"\btests\.{stem}\b(?!\.py)", dotted(new), text)
        text = re.sub(rf"\btests/{re.escape(old)}\b", f"tests/{new}", text)
        if Path(new).name != old and old.startswith("test_"):
            text = re.sub(rf"(?<![\w/.]){re.escape(old)}\b", Path(new).name, text)
    return text


def fix_depth(text: str, levels_added: int) -> str:
    """``Path(__file__).parent.parent`` of a file moved one folder down: ``.parents[2]``."""

    def deeper(match: re.Match[str]) -> str:
        index = int(match.group(3)) if match.group(3) else match.group(2).count(".parent") - 1
        return f"Path(__file__){match.group(1) or ''}.parents[{index + levels_added}]"

    return FILE_DEPTH.sub(deeper, text)


def warn_long_lines(name: str, before: str, after: str) -> None:
    """Say which lines a rewrite pushed over the line length (rewrap those by hand: prose)."""
    old = set(before.splitlines())
    for number, line in enumerate(after.splitlines(), 1):
        if len(line) > LINE_LENGTH and line not in old:
            print(f"  ! {name}:{number} is now {len(line)} characters long: rewrap it")


def known_moves() -> dict[str, str]:
    """Every move of the table and of earlier runs whose target exists: what references to
    rewrite (a second run still repairs a reference that a merge brought back)."""
    found = {old: new for old, new in TABLE.items() if old != new and (TESTS / new).exists()}
    if (TESTS / FIXTURES).exists():
        found["conftest.py"] = FIXTURES
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would move; change nothing"
    )
    args = parser.parse_args()
    print("moves:")
    moves = {old: new for old, new in plan().items() if move(old, new, args.dry_run)}
    moved_fixtures = move_fixtures(args.dry_run)
    if args.dry_run:
        return
    ensure_packages(args.dry_run)
    references = known_moves() | moves
    references.pop("conftest.py", None)  # the conftest is not imported; its fixtures keep names
    modules = {dotted(old): dotted(new) for old, new in references.items()}
    moved_to = {new: old for old, new in moves.items()}
    if moved_fixtures:
        moved_to[FIXTURES] = "conftest.py"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rewritten: list[Path] = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if not path.is_file() or not name.endswith(TEXT) or path == Path(__file__).resolve():
            continue
        text = original = path.read_text()
        if name.endswith(".py"):
            inside = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else None
            module = ".".join(Path(name).with_suffix("").parts)
            old = moved_to.get(inside) if inside is not None else None
            if inside is not None and old is not None:
                module = dotted(old)  # relative imports meant the file's place before this run
                text = fix_depth(text, inside.count("/") - old.count("/"))
            text = rewrite_imports(text, module.rpartition(".")[0], modules, old is not None)
        text = rewrite_text(text, references)
        if text != original:
            path.write_text(text)
            rewritten.append(path)
            print(f"  rewrote {name}")
            warn_long_lines(name, original, text)
    ruff = ROOT / ".venv" / "bin" / "ruff"
    python = [str(p) for p in rewritten if p.suffix == ".py"]
    if python and ruff.exists():
        subprocess.run(
            [str(ruff), "check", "--select", "I", "--fix", "-q", *python], cwd=ROOT, check=False
        )
        subprocess.run([str(ruff), "format", "-q", *python], cwd=ROOT, check=False)
    print(f"{len(moves)} files moved, {len(rewritten)} files rewritten")


if __name__ == "__main__":
    main()
