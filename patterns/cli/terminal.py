"""The CLI's terminal: exit codes, errors, the store its options name, tables or JSON on stdout,
confirmation, and the record of what the last command consumed (``stateless-state cost``)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    "CliError",
    "confirm",
    "cost_file",
    "emit",
    "open_store",
    "print_table",
    "record_cost",
    "who",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_STATE, EXIT_TABLE, EXIT_CREDENTIALS = range(
    7
)
EXIT_NOT_CONFIRMED = 7


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def cost_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "stateless-state" / "last-cost.json"


def who(args: argparse.Namespace) -> str:
    return args.who or f"{getpass.getuser()}@{socket.gethostname()}"


def open_store(args: argparse.Namespace) -> Store:
    table = args.table or os.environ.get(TABLE_ENV)
    if not table:
        raise CliError(f"no table: pass --table or set {TABLE_ENV}", EXIT_USAGE)
    try:
        return Store(table, endpoint_url=args.endpoint_url, region_name=args.region)
    except InvalidArgument as e:
        raise CliError(str(e), EXIT_USAGE) from None


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(columns))
        for row in rows:
            print("  ".join(str(row.get(c, "")) for c in columns))
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c, no_wrap=c == "id")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    # Piped output is not clipped to 80 columns: ids stay whole for grep and copy.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value > 1e9:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
    return str(value)


def emit(args: argparse.Namespace, data: Any, columns: Sequence[str], title: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    print_table(rows, columns, title)


def confirm(args: argparse.Namespace, what: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"refusing to {what} without confirmation: pass --yes", EXIT_NOT_CONFIRMED)
    answer = input(f"{what}? [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise CliError("not confirmed; nothing changed", EXIT_NOT_CONFIRMED)


def record_cost(store: Store) -> None:
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
