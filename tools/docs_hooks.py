"""mkdocs hooks (``hooks:`` in mkdocs.yml): the pages whose text lives outside ``docs/``.

The changelog and the benchmark results stay where their readers and writers expect them
(``CHANGELOG.md`` beside the README, ``benchmarks/RESULTS.md`` rewritten by ``make bench``), so
a page includes them rather than holding a copy that would drift. A page says
``<!-- include: PATH -->`` (PATH from the repository root) on a line of its own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
# Files an included text shows that live outside docs/: where the site serves them, and from.
ASSETS = {"wcu_per_arrival.png": ROOT / "benchmarks" / "wcu_per_arrival.png"}


def included(match: re.Match[str]) -> str:
    """The file's text, its links into ``docs/`` made relative to the docs (as the page is)."""
    text = (ROOT / match.group(1)).read_text()
    return re.sub(r"\]\(docs/", "](", text)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return INCLUDE.sub(included, markdown)


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    for uri, source in ASSETS.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
