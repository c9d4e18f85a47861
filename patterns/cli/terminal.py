"""The CLI's terminal: exit codes, errors, the options every command takes, the store they name,
tables or JSON on stdout (instants as ISO 8601, never raw epochs), confirmation, and the record
of what the last command consumed (``stateless-state cost``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import stateless_state
from stateless_state import InvalidArgument, Store, clock
from stateless_state.store import TABLE_ENV

__all__ = [
    "EXIT_CREDENTIALS",
    "EXIT_FAILED",
    "EXIT_NOT_CONFIRMED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STATE",
    "EXIT_TABLE",
    "EXIT_USAGE",
    "INSTANTS",
    "CliError",
    "common_options",
    "confirm",
    "cost_file",
    "emit",
    "open_store",
    "print_table",
    "record_cost",
    "shown",
    "who",
]

EXIT_OK = 0
"""Exit code 0: done."""
EXIT_FAILED = 1
"""Exit code 1: failed."""
EXIT_USAGE = 2
"""Exit code 2: bad usage."""
EXIT_NOT_FOUND = 3
"""Exit code 3: not found."""
EXIT_STATE = 4
"""Exit code 4: wrong state (nothing changed)."""
EXIT_TABLE = 5
"""Exit code 5: the table is missing."""
EXIT_CREDENTIALS = 6
"""Exit code 6: no credentials."""
EXIT_NOT_CONFIRMED = 7
"""Exit code 7: not confirmed (nothing changed)."""


INSTANTS = frozenset(
    {
        "abandoned_at",
        "at",
        "created_at",
        "expires_at",
        "last",
        "lease_until",
        "loaded_at",
        "next_attempt_at",
        "opened_at",
        "recorded_at",
        "sealed_at",
        "start",
    }
)
"""The fields, in any row the commands show, that hold an instant in epoch seconds: shown as
ISO 8601 in UTC, on a terminal with how far from now (``2025-06-01T12:00:00Z (in 3 min)``)."""


class CliError(Exception):
    """A command's failure: its one-line message goes to stderr, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def cost_file() -> Path:
    """Where the last command's cost is kept for ``stateless-state cost``."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "stateless-state" / "last-cost.json"


def who(args: argparse.Namespace) -> str:
    """Who acts, for the records a change leaves: ``--who``, or user@host."""
    return args.who or f"{getpass.getuser()}@{socket.gethostname()}"


def open_store(args: argparse.Namespace) -> Store:
    """The store the options name (``--table`` or the environment); bad usage without one."""
    table = args.table or os.environ.get(TABLE_ENV)
    if not table:
        raise CliError(f"no table: pass --table or set {TABLE_ENV}", EXIT_USAGE)
    try:
        return Store(table, endpoint_url=args.endpoint_url, region_name=args.region)
    except InvalidArgument as e:
        raise CliError(str(e), EXIT_USAGE) from None


def common_options(*, main: bool = False, version: bool = True) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name (``stateless-state --json
    batches list x`` and ``stateless-state batches list x --json`` alike): a parent parser.
    Only the ``main`` parser's copy has defaults; a subcommand's has none (``SUPPRESS``), so that
    it leaves alone what was given before its name. (Two parsers, not one with
    ``set_defaults``: parents share their option objects, and ``set_defaults`` changes them.)
    ``version=False`` leaves ``--version`` out, for a command that has one of its own."""

    def default(value: Any) -> Any:
        return value if main else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("options of every command")
    group.add_argument(
        "--table",
        metavar="NAME",
        default=default(None),
        help=f"the DynamoDB table (default: ${TABLE_ENV})",
    )
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        default=default(None),
        help="the DynamoDB endpoint (default: boto3's conventions, AWS_ENDPOINT_URL_DYNAMODB)",
    )
    group.add_argument(
        "--region",
        default=default(None),
        help="the AWS region (default: boto3's conventions, AWS_REGION)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON (instants as ISO 8601 strings) instead of a table",
    )
    if version:  # not for a command whose own --version names a version of something else
        group.add_argument(
            "--version",
            action="version",
            version=f"stateless-state {stateless_state.__version__}",
            help="print the version and exit",
        )
    return common


def shown(value: Any, *, json_out: bool) -> Any:
    """``value`` (rows of dicts, lists, scalars) with every :data:`INSTANTS` field, at any
    depth, as ISO 8601 (``json_out``) or as :func:`stateless_state.clock.describe` reads it."""
    if isinstance(value, Mapping):
        return {k: _field(k, v, json_out) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown(v, json_out=json_out) for v in value]
    return value


def _field(name: str, value: Any, json_out: bool) -> Any:
    if name in INSTANTS and isinstance(value, int | float) and not isinstance(value, bool):
        return clock.iso8601(value) if json_out else clock.describe(value)
    return shown(value, json_out=json_out)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], title: str) -> None:
    """``rows`` as a table of ``columns`` (rich's when installed), instants as people read them."""
    rows = shown(rows, json_out=False)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(columns))
        for row in rows:
            print("  ".join(_cell(row.get(c)) for c in columns))
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c, no_wrap=c == "id")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    # Piped output is not clipped to 80 columns: ids stay whole for grep and copy.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def emit(args: argparse.Namespace, data: Any, columns: Sequence[str], title: str) -> None:
    """``data`` (a row or a list of rows) as JSON with ``--json``, else as a table."""
    if args.json:
        print(json.dumps(shown(data, json_out=True), indent=2, sort_keys=True, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    print_table(rows, columns, title)


def confirm(args: argparse.Namespace, what: str) -> None:
    """Ask before a change (``--yes`` skips it); without a terminal, refuse."""
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"refusing to {what} without confirmation: pass --yes", EXIT_NOT_CONFIRMED)
    answer = input(f"{what}? [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise CliError("not confirmed; nothing changed", EXIT_NOT_CONFIRMED)


def record_cost(store: Store) -> None:
    """Keep what the command consumed, for ``stateless-state cost``."""
    path = cost_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv[1:]),
                "at": clock.now(),
                "by_operation": store.metrics.as_dict(),
            }
        )
    )
