"""The documentation's Python code blocks run, and its links lead somewhere.

Every ```` ```python ```` block of the README and of docs/ is a complete program and is run, in a
namespace of its own, on moto (``STATELESS_STATE_TABLE`` names a table that exists there, so a
module-level ``Store.from_env()`` works as in a deployed function), unless the line just
before its fence says otherwise, as an HTML comment the rendered page does not show:

* ``<!-- with: store -->``: a few calls on a ``store`` the page introduced earlier; it runs
  with ``store`` bound to a moto-backed :class:`~stateless_state.Store`.
* ``<!-- fragment: why -->``: an excerpt that cannot run on its own (a function's body, calls
  on objects of yours); it is compiled as a function body, so it must still be valid Python.

The blocks that show a behaviour (a race caught, an order saved once) are run further by the
tests beside the code they show (test_readme_kernel, test_readme_pynamodb,
test_readme_simulation, test_readme_race_testing, test_quick_start).

mkdocs build --strict checks the site's own links and anchors (mkdocs.yml's ``validation``);
the README is not a page of the site, so its relative links and their anchors are checked here.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stateless_state import Store
from tools.house import ROOT

BLOCK = re.compile(r"^(?P<indent> *)```python\n(?P<code>.*?)^(?P=indent)```$", re.M | re.S)
MARKER = re.compile(r"^ *<!-- (with: store|fragment: .+) -->\n\Z")


@dataclass(frozen=True)
class Block:
    """One Python code block: where it is, its code (dedented) and its marker, if any."""

    page: str
    line: int
    code: str
    marker: str | None


def blocks(text: str, page: str) -> Iterator[Block]:
    for match in BLOCK.finditer(text):
        before = text[: match.start()]
        previous = before[before.rstrip("\n").rfind("\n") + 1 :]
        marker = MARKER.match(previous)
        yield Block(
            page,
            before.count("\n") + 1,
            textwrap.dedent(match.group("code")),
            marker.group(1) if marker else None,
        )


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [b for p in PAGES for b in blocks(p.read_text(), p.relative_to(ROOT).as_posix())]


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """moto, with the environment of a deployed function whose table exists."""
    from moto import mock_aws

    for name, value in {
        "STATELESS_STATE_TABLE": "docs-examples",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        store = Store.from_env()
        store.create_table()
        yield store


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}" for b in BLOCKS])
def test_the_block_runs(block: Block, deployed: Store) -> None:
    if block.marker is not None and block.marker.startswith("fragment:"):
        compile(f"def fragment():\n{textwrap.indent(block.code, '    ')}", block.page, "exec")
        return
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    if block.marker == "with: store":
        namespace["store"] = deployed
    code = compile("\n" * (block.line) + block.code, block.page, "exec")  # tracebacks: its line
    exec(code, namespace)


def test_most_blocks_run_and_the_markers_are_seen() -> None:
    """A marker the pattern misses would make its block run (and fail) rather than pass
    silently; this holds the count of blocks that run, so marking is a choice."""
    run = [b for b in BLOCKS if b.marker is None or b.marker == "with: store"]
    assert len(run) >= 10 and len(BLOCKS) - len(run) <= 6
    text = "x\n<!-- fragment: an excerpt -->\n```python\nreturn 1\n```\n"
    assert [b.marker for b in blocks(text, "t")] == ["fragment: an excerpt"]
    listed = "* item\n\n  <!-- with: store -->\n  ```python\n  store.counter('a')\n  ```\n"
    assert [(b.marker, b.code) for b in blocks(listed, "t")] == [
        ("with: store", "store.counter('a')\n")
    ]


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", re.sub(r"`|\*\*", "", text)).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readme_links_lead_to_files_and_anchors_that_exist() -> None:
    broken = []
    links = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # a URL: not checked offline
        path, _, anchor = link.partition("#")
        target = ROOT / path
        if not target.exists() or (anchor and anchor not in anchors(target)):
            broken.append(link)
    assert len(links) >= 10 and broken == []
    assert slug("The S3 → Redshift `batcher`: **cost**") == "the-s3-redshift-batcher-cost"
