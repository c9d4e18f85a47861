"""A picture of the house, computed from the code: floors, rooms, and the walk of one arrival.

    python tools/house.py                    # print the picture and both walks
    python tools/house.py --write docs/architecture.md  # replace the page's generated blocks

Floors come from the import graph of ``stateless_state/`` and ``patterns/`` (every import, also
under ``TYPE_CHECKING`` and inside functions): a module that imports no other module of the two
packages is on the ground (floor 0), any other is one floor above the highest it imports. Rooms
are the modules, each with the first line of its docstring. The walks run one arrival through
the example's Lambda handler, and one first call of an ``@idempotent`` handler, in this process
on DynamoDB Local and a local S3, under ``sys.setprofile``: the project modules control passes
through, in order, repeats collapsed. Stdlib only; the walks need the dev dependencies and Java.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import re
import sys
from collections.abc import Callable
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from types import FrameType
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stateless_state", "patterns")
WALKED = (*PACKAGES, "examples")  # the modules a walk records: ours, not boto3's
WIDTH = 100  # pyproject.toml's [tool.ruff] line-length, which the docs keep too
HOUSE = ("<!-- house:begin (tools/house.py --write docs/architecture.md) -->", "<!-- house:end -->")
WALKS = ("<!-- walk:begin (tools/house.py --write docs/architecture.md) -->", "<!-- walk:end -->")
MODULE_NAME = re.compile(r"\b(?:stateless_state|patterns|examples)(?:\.\w+)*")


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name (a package by its own name)."""
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


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor: 0 for one that imports none of the others, else 1 + the highest
    floor it imports. The graph has no cycle (tests/test_house.py), so every floor is finite."""
    found: dict[str, int] = {}

    def floor(v: str) -> int:
        if v not in found:
            found[v] = 1 + max((floor(w) for w in edges[v]), default=-1)
        return found[v]

    for v in sorted(edges):
        floor(v)
    return found


def room(path: Path) -> str:
    """The first line of a module's docstring ("" without one)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def house(root: Path = ROOT) -> str:
    """The floors, top first, each with its rooms: ``module  first docstring line``, every line
    cut to the docs' width."""
    mods = modules(root, PACKAGES)
    edges, _ = imports(mods)
    level = floors(edges)
    width = max(map(len, mods)) + 2
    lines: list[str] = []
    for number in range(max(level.values()), -1, -1):
        lines.append("ground" if number == 0 else f"floor {number}")
        for name in sorted(m for m in mods if level[m] == number):
            line = f"  {name.ljust(width)}{room(mods[name])}".rstrip()
            if len(line) > WIDTH:  # cut at a word: the docstring has the rest
                line = line[: WIDTH - 1].rsplit(" ", 1)[0] + " …"
            lines.append(line)
    return "\n".join(lines)


def walk_of(call: Callable[[], Any]) -> list[str]:
    """The project modules control passes through while ``call()`` runs in this thread: the
    module of each function entered, and of the function a return goes back to; repeats
    collapsed. Frames outside the project (boto3, the standard library) do not move it."""
    steps: list[str] = []

    def profile(frame: FrameType, event: str, _: Any) -> None:
        where = frame if event == "call" else frame.f_back if event == "return" else None
        module = where.f_globals.get("__name__", "") if where is not None else ""
        if module.split(".")[0] in WALKED and (not steps or steps[-1] != module):
            steps.append(module)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return steps


def back_and_forth(steps: list[str]) -> int:
    """How many steps go straight back to the module they came from (A → B → A counts one)."""
    return sum(1 for i in range(1, len(steps) - 1) if steps[i + 1] == steps[i - 1])


def walks(scratch: Path) -> dict[str, list[str]]:
    """One arrival through the example's handler, and one first call of an idempotent handler,
    each after a warm-up call so that the walk shows the work, not the imports. Starts its own
    DynamoDB Local and local S3 (about 20 s on 2 cores), so it never touches a real account."""
    import importlib

    from patterns.testing import LocalS3, direct, put_object
    from stateless_state import Store, idempotent
    from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name

    found: dict[str, list[str]] = {}
    with ExitStack() as stack:
        ddb = stack.enter_context(DynamoDBLocal())
        s3_server = stack.enter_context(LocalS3())
        s3 = s3_server.client()
        bucket = f"house-{fresh_table_name()}"
        s3.create_bucket(Bucket=bucket)
        table = fresh_table_name("house")
        Store(table, client=ddb.client()).create_table()
        stack.enter_context(
            mock.patch.dict(
                os.environ,
                {
                    "STATELESS_STATE_TABLE": table,
                    "AWS_ENDPOINT_URL_DYNAMODB": ddb.endpoint_url,
                    "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url,
                    "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "local",
                    "AWS_SECRET_ACCESS_KEY": "local",
                    "MANIFEST_BUCKET": bucket,
                    "LOCAL_WAREHOUSE": str(scratch / "warehouse.db"),
                    "STREAM": "orders",
                    "THRESHOLD_COUNT": "1",  # the arrival seals its batch, which is loaded
                },
            )
        )
        handler = importlib.import_module("examples.s3_redshift_batcher.handler")
        stack.enter_context(redirect_stdout(io.StringIO()))  # the handler's EMF lines

        def arrival(key: str) -> tuple[dict[str, Any], FakeLambdaContext]:
            return direct(put_object(s3, bucket, key, b'{"id": 1}\n')), FakeLambdaContext(300_000)

        handler.handler(*arrival("in/warm-up.json"))
        event, context = arrival("in/arrival.json")
        found["arrival"] = walk_of(lambda: handler.handler(event, context))

        store = Store(table, client=ddb.client())

        @idempotent(store, key="order_id")
        def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"charged": event["order_id"]}

        charge({"order_id": "warm-up"}, FakeLambdaContext(300_000))
        context = FakeLambdaContext(300_000)
        found["idempotent call"] = walk_of(lambda: charge({"order_id": "o-1"}, context))
    return found


def render_walks(found: dict[str, list[str]], *, full: bool = False) -> str:
    """Each walk's counts, then its route (each module where the walk first enters it, with its
    floor; ``full``: every step), joined by arrows and wrapped to the docs' width."""
    mods = modules(ROOT, PACKAGES)
    level = floors(imports(mods)[0])
    lines: list[str] = []
    for title, steps in found.items():
        lines.append(
            f"{title}: {len(set(steps))} modules crossed, {len(steps) - 1} steps,"
            f" {back_and_forth(steps)} of them straight back to where they came from"
        )
        shown = steps if full else list(dict.fromkeys(steps))
        line = " "
        for i, step in enumerate(shown):
            where = f"{step} [{level[step]}]" if step in level else step
            piece = f" {where}" + (" →" if i < len(shown) - 1 else "")
            if len(line) + len(piece) > WIDTH:
                lines.append(line)
                line = " "
            line += piece
        lines.extend([line, ""])
    return "\n".join(lines).rstrip()


def block(text: str, markers: tuple[str, str]) -> str | None:
    """What a page has between two markers (its fenced block's content), if it has them."""
    begin, end = text.find(markers[0]), text.find(markers[1])
    if begin < 0 or end < begin:
        return None
    inner = text[begin + len(markers[0]) : end].strip()
    return inner.removeprefix("```text").removesuffix("```").strip("\n")


def replace(text: str, markers: tuple[str, str], content: str) -> str:
    begin, end = text.find(markers[0]), text.find(markers[1])
    if begin < 0 or end < begin:
        raise SystemExit(f"the page has no {markers[0]} ... {markers[1]} block")
    fenced = f"{markers[0]}\n```text\n{content}\n```\n"
    return text[:begin] + fenced + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the generated blocks of this file")
    parser.add_argument("--no-walks", action="store_true", help="the floors and rooms only")
    parser.add_argument("--full", action="store_true", help="print every step of the walks")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # this tree's packages, not an installed copy's
    picture = house()
    print(picture)
    text = None
    if not args.no_walks:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            found = walks(Path(scratch))
        text = render_walks(found)
        print(f"\n{render_walks(found, full=True) if args.full else text}")
    if args.write is not None:
        readme = args.write.read_text()
        readme = replace(readme, HOUSE, picture)
        if text is not None:
            readme = replace(readme, WALKS, text)
        args.write.write_text(readme)


if __name__ == "__main__":
    main()
