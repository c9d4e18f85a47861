"""The shell commands the documentation shows are commands that exist, as written.

The Python blocks run (tests/test_docs_examples.py); a shell block cannot run here (it deploys,
installs from the registry, or needs a table), so each of its command lines is checked as far
as this machine can check it without running it: a ``stateless-state`` line parses with the
CLI's own parser (every subcommand, argument and option exists), ``make TARGET`` names a target
of the Makefile (and its ``ARGS`` parse as the demo's), ``python -m MODULE`` names a module
that exists (and its arguments parse, for the library's own), and ``pip install`` names extras
the package declares.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from examples.s3_redshift_batcher.demo import parse_args as demo_args
from patterns.cli import parser as cli_parser
from tools.house import ROOT

SHELL_BLOCK = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.DOTALL)


def pages() -> list[Path]:
    return sorted(
        {ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").rglob("*.md")}
    )


def command_lines() -> list[tuple[str, list[str]]]:
    """Every command line of every shell block (continuations joined), as words."""
    out = []
    for page in pages():
        for block in SHELL_BLOCK.findall(page.read_text()):
            pending = ""
            for line in block.replace("\\\n", " ").splitlines():
                if not pending and (not line.strip() or line.startswith((" ", "#"))):
                    continue
                pending = f"{pending}\n{line}" if pending else line
                try:  # a quoted argument may go on over several lines
                    words = shlex.split(pending, comments=True)
                except ValueError:
                    continue
                out.append((f"{page.relative_to(ROOT)}: {pending.strip()[:80]}", words))
                pending = ""
            assert not pending, f"{page}: an unclosed quote in {pending!r}"
    return out


class Refused(Exception):
    pass


def _refuse(message: str) -> None:
    raise Refused(message)


def _refusing(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``p`` and every subparser of it raising :class:`Refused` where argparse would exit."""
    p.error = _refuse  # type: ignore[method-assign,assignment]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _refusing(sub)
    return p


def _parses(p: argparse.ArgumentParser, args: list[str]) -> None:
    _refusing(p).parse_args(args)


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


LINES = command_lines()


def test_the_docs_show_commands_of_every_kind() -> None:
    kinds = {words[0] for _, words in LINES}
    assert {"stateless-state", "make", "pip", "python"} <= kinds, kinds
    assert sum(words[0] == "stateless-state" for _, words in LINES) >= 10


@pytest.mark.parametrize(("where", "words"), LINES, ids=[w for w, _ in LINES])
def test_each_shell_command_exists_as_written(where: str, words: list[str]) -> None:
    tool, args = words[0], words[1:]
    if tool == "stateless-state":
        _parses(cli_parser(), args)
    elif tool == "make":
        targets = [a for a in args if "=" not in a]
        assert targets and set(targets) <= makefile_targets(), targets
        for a in args:
            if a.startswith("ARGS=") and targets == ["demo"]:
                demo_args(shlex.split(a.removeprefix("ARGS=")))
    elif tool in {"python", "python3"} or tool.endswith("/python"):
        assert args[0] == "-m", args
        assert importlib.util.find_spec(args[1]) is not None, args[1]
        if args[1] == "stateless_state.testing":
            from stateless_state.testing.__main__ import _parser

            _parses(_parser(), args[2:])
    elif tool == "pip":
        assert args[0] == "install", args
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for requirement in args[1:]:
            name, _, rest = requirement.partition("[")
            assert name == "stateless-state", requirement
            assert set(filter(None, rest.rstrip("]").split(","))) <= set(extras), requirement
