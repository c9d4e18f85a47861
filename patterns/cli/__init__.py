"""``stateless-state``: the operator's tool for the state a pipeline keeps in DynamoDB.

Read commands print a table on a terminal (with rich, when installed: ``pip install
stateless-state[cli]``) or JSON with ``--json``. Commands that change state show what they will
act on, ask for confirmation (``--yes`` skips it), act only if the item is still in the state they
showed (a conditional write), and record who, when and why on the item.

Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found, 4 wrong state (nothing changed), 5 table
missing, 6 no credentials, 7 not confirmed.

Here: the parser, ``main`` and the batch commands; :mod:`patterns.cli.primitives` holds the
commands for the primitives' state, :mod:`patterns.cli.feeds` the feeds' configuration,
:mod:`patterns.cli.terminal` the output, confirmation, exit codes and the cost record every
command leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Literal

from stateless_state import (
    InvalidArgument,
    StateConflict,
    StatelessStateError,
    TableNotFound,
    clock,
)
from stateless_state.store import TTL_ATTRIBUTE, table_schema

from ..batcher import MAX_LANES, Batch, Batcher, BatchState, parse_batch_id
from .feeds import add_feed_commands, feed_loader
from .primitives import add_primitive_commands
from .terminal import (
    EXIT_CREDENTIALS,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STATE,
    EXIT_TABLE,
    EXIT_USAGE,
    CliError,
    common_options,
    confirm,
    cost_file,
    emit,
    open_store,
    print_table,
    record_cost,
    shown,
    who,
)

__all__ = ["EXIT_CODES", "main", "parser"]

EXIT_CODES = (
    "exit codes: 0 done, 1 failed, 2 bad usage, 3 not found, 4 wrong state (nothing changed), "
    "5 table missing, 6 no credentials, 7 not confirmed"
)
"""The exit codes, as ``--help`` prints them."""


def _batch_row(b: Batch) -> dict[str, Any]:
    row = asdict(b)
    row["id"] = b.id
    row["age_s"] = round(clock.now() - b.opened_at, 1)
    row["history"] = list(b.history)
    row["superseded"] = list(b.superseded)
    return row


BATCH_COLUMNS = ("id", "state", "count", "bytes", "opened_at", "seal_reason", "attempts", "error")


def _batcher(args: argparse.Namespace, stream: str) -> Batcher:
    return Batcher(open_store(args), stream)


def _lanes(args: argparse.Namespace, b: Batcher) -> list[int]:
    """The lanes ``batches list`` shows: ``--lane``'s, ``--lanes``', or every lane in use."""
    if args.lane is not None:
        if not 0 <= args.lane < MAX_LANES:
            raise CliError(f"--lane {args.lane}: lanes count from 0 to {MAX_LANES - 1}", EXIT_USAGE)
        return [args.lane]
    if args.lanes is not None:
        if not 1 <= args.lanes <= MAX_LANES:
            raise CliError(f"--lanes {args.lanes}: give 1 to {MAX_LANES}", EXIT_USAGE)
        return list(range(args.lanes))
    return b.lanes_in_use()


def cmd_init(args: argparse.Namespace) -> int:
    if args.print_cloudformation:
        print(json.dumps(cloudformation(args.table or "StatelessState"), indent=2))
        return EXIT_OK
    store = open_store(args)
    created = store.create_table()
    record_cost(store)
    print(f"table {store.table_name} {'created' if created else 'already exists'}")
    return EXIT_OK


def cloudformation(table_name: str) -> dict[str, Any]:
    """The table as a CloudFormation resource: :func:`stateless_state.store.table_schema`, the
    definition ``create_table`` uses, with TTL on."""
    properties = {
        "TableName": table_name,
        **table_schema(),
        "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
    }
    return {"Resources": {"StateTable": {"Type": "AWS::DynamoDB::Table", "Properties": properties}}}


def cmd_batches_list(args: argparse.Namespace) -> int:
    b = _batcher(args, args.stream)
    lanes = _lanes(args, b)
    found = [
        x
        for lane in lanes
        for x in b.batches(lane=lane)
        if (args.state is None or x.state == args.state)
        and (args.min_age is None or clock.now() - x.opened_at >= args.min_age)
    ]
    found.sort(key=lambda x: (-x.opened_at, x.lane, -x.seq))
    record_cost(b.store)
    where = f"lane {lanes[0]}" if len(lanes) == 1 else f"{len(lanes)} lanes"
    emit(args, [_batch_row(x) for x in found], BATCH_COLUMNS, f"batches of {args.stream} ({where})")
    return EXIT_OK


def _load_batch(args: argparse.Namespace, batch_id: str) -> tuple[Batcher, Batch]:
    try:
        stream, _, _ = parse_batch_id(batch_id)
    except InvalidArgument as e:
        raise CliError(str(e), EXIT_USAGE) from None
    b = _batcher(args, stream)
    batch = b.batch(batch_id)
    if batch is None:
        raise CliError(f"no batch {batch_id}", EXIT_NOT_FOUND)
    return b, batch


def cmd_batches_show(args: argparse.Namespace) -> int:
    b, batch = _load_batch(args, args.batch)
    row = _batch_row(batch)
    row["members"] = [asdict(m) for m in b.members(batch.id)]
    record_cost(b.store)
    if args.json:
        emit(args, row, (), "")
        return EXIT_OK
    emit(args, row, (*BATCH_COLUMNS, "statement_id", "fence"), f"batch {batch.id}")
    print_table([asdict(m) for m in b.members(batch.id)], ("id", "size", "at"), "members")
    if batch.superseded:
        # Their content was gone from S3 when the batch loaded: not loaded, by design.
        print_table([{"id": m} for m in batch.superseded], ("id",), "superseded (not loaded)")
    if batch.history:
        print_table(
            [dict(h) for h in batch.history], ("at", "action", "from", "who", "why"), "history"
        )
    return EXIT_OK


def _operator(
    args: argparse.Namespace, action: Literal["retry", "abandon"], allowed: set[BatchState]
) -> int:
    b, batch = _load_batch(args, args.batch)
    if batch.state not in allowed:
        raise CliError(
            f"batch {batch.id} is {batch.state}; {action} applies to "
            f"{', '.join(sorted(allowed))}; nothing changed",
            EXIT_STATE,
        )
    print(f"batch {batch.id}: {batch.state}, {batch.count} files, {batch.attempts} attempts")
    confirm(args, f"{action} batch {batch.id}")
    try:
        after = b.operator_action(
            batch.id,
            action,
            expect_state=batch.state,
            expect_fence=batch.fence,
            who=who(args),
            why=args.why,
        )
    except StateConflict as e:
        raise CliError(str(e), EXIT_STATE) from None
    record_cost(b.store)
    if args.json:
        print(json.dumps(shown(_batch_row(after), json_out=True), default=str, sort_keys=True))
    else:
        print(f"batch {after.id}: {batch.state} -> {after.state}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    # Not an abandoned batch: abandon is final (the warehouse may hold its tombstone).
    return _operator(args, "retry", {BatchState.FAILED, BatchState.LOADING, BatchState.SEALED})


def cmd_abandon(args: argparse.Namespace) -> int:
    b, batch = _load_batch(args, args.batch)
    allowed = {BatchState.OPEN, BatchState.SEALED, BatchState.LOADING, BatchState.FAILED}
    if batch.state not in allowed | {BatchState.ABANDONED}:
        raise CliError(
            f"batch {batch.id} is {batch.state}; abandon applies to "
            f"{', '.join(sorted(allowed))}; nothing changed",
            EXIT_STATE,
        )
    from ..batcher.abandon import abandon_batch, needs_warehouse
    from ..config import build_loader

    # A feed's batch is abandoned in the ledger of the target it was sealed for.
    loader = feed_loader(args, batch.stream)
    try:
        # Built even for a batch never claimed: a loader may claim it before the abandon writes.
        loader = loader or build_loader(os.environ, None)
    except InvalidArgument as e:
        if needs_warehouse(batch):
            raise CliError(
                f"batch {batch.id} was claimed by a loader ({batch.attempts} attempts, fence "
                f"{batch.fence}), which may still commit it: the abandon must be recorded in "
                "the warehouse ledger too. Run with the pipeline's warehouse settings "
                f"(LOCAL_WAREHOUSE, POSTGRES_DSN or REDSHIFT_*): {e}; nothing changed",
                EXIT_STATE,
            ) from None
    print(f"batch {batch.id}: {batch.state}, {batch.count} files, {batch.attempts} attempts")
    confirm(args, f"abandon batch {batch.id}")
    try:
        found = abandon_batch(
            b, loader, batch.id, who=who(args), why=args.why, expect_count=batch.count
        )
    except (StateConflict, InvalidArgument) as e:  # claimed meanwhile, with no warehouse given
        raise CliError(str(e), EXIT_STATE) from None
    record_cost(b.store)
    after = b.batch(batch.id)
    assert after is not None
    if args.json:
        print(json.dumps(shown(_batch_row(after), json_out=True), default=str, sort_keys=True))
    elif found == "loaded":
        print(f"batch {after.id}: a load had committed it before the abandon; marked loaded")
    else:
        print(f"batch {after.id}: {batch.state} -> {after.state}")
    return EXIT_OK


def cmd_cost(args: argparse.Namespace) -> int:
    path = cost_file()
    if not path.is_file():
        raise CliError(
            "no command has run yet; cost shows the last command's consumed units", EXIT_NOT_FOUND
        )
    data = json.loads(path.read_text())
    if args.json:
        print(json.dumps(shown(data, json_out=True), indent=2, sort_keys=True))
        return EXIT_OK
    rows = [{"operation": op, **stats} for op, stats in data["by_operation"].items()]
    print_table(
        rows,
        ("operation", "requests", "wcu", "rcu", "condition_failures"),
        f"cost of: {data['command']}",
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    """The command line: every subcommand, and every argument with its help. The options of
    :func:`~patterns.cli.terminal.common_options` (``--json``, ``--version``, ``--table``, ...)
    are taken before or after a subcommand's name."""
    common = common_options()
    p = argparse.ArgumentParser(
        prog="stateless-state",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=EXIT_CODES,
        parents=[common_options(main=True)],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "init", help="create the table, or print its CloudFormation", parents=[common]
    )
    s.add_argument(
        "--print-cloudformation",
        action="store_true",
        help="print the table as a CloudFormation resource (JSON) instead of creating it",
    )
    s.set_defaults(fn=cmd_init)

    batches = sub.add_parser(
        "batches", help="list or show a stream's batches", parents=[common]
    ).add_subparsers(dest="what", required=True, metavar="ACTION")
    s = batches.add_parser(
        "list", help="the batches of a stream, every lane's, newest first", parents=[common]
    )
    s.add_argument("stream", help="the stream's name (the pipeline's STREAM)")
    s.add_argument(
        "--state",
        choices=[str(state) for state in BatchState],
        help="only batches in this state",
    )
    s.add_argument(
        "--min-age",
        type=float,
        metavar="SECONDS",
        help="only batches opened at least this long ago",
    )
    lanes = s.add_mutually_exclusive_group()
    lanes.add_argument(
        "--lane", type=int, metavar="N", help="only this lane's batches (lanes count from 0)"
    )
    lanes.add_argument(
        "--lanes",
        type=int,
        metavar="N",
        help=(
            "only lanes 0 to N-1 (the pipeline's LANES; default: every lane that holds "
            f"batches, of the {MAX_LANES} a stream can have)"
        ),
    )
    s.set_defaults(fn=cmd_batches_list)
    s = batches.add_parser("show", help="one batch, its members and its history", parents=[common])
    s.add_argument("batch", help="the batch id, <stream>/<lane>/<seq> (e.g. clicks/0/000000000042)")
    s.set_defaults(fn=cmd_batches_show)

    for name, fn, text in (
        ("retry", cmd_retry, "load a failed or stuck batch again"),
        ("abandon", cmd_abandon, "stop loading a batch for good (e.g. a poison file)"),
    ):
        s = sub.add_parser(name, help=text, parents=[common])
        s.add_argument("batch", help="the batch id, <stream>/<lane>/<seq>")
        s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        s.add_argument("--why", required=True, help="why, recorded on the batch")
        s.add_argument("--who", help="who, recorded on the batch (default: user@host)")
        s.set_defaults(fn=fn)

    add_primitive_commands(sub, common)
    add_feed_commands(sub)
    s = sub.add_parser("cost", help="the units the last command consumed", parents=[common])
    s.set_defaults(fn=cmd_cost)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors are one line on stderr, never a traceback)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    args = parser().parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return fn(args)
    except CliError as e:
        print(f"stateless-state: {e}", file=sys.stderr)
        return e.code
    except TableNotFound as e:
        print(f"stateless-state: {e}", file=sys.stderr)
        return EXIT_TABLE
    except NoCredentialsError:
        print(
            "stateless-state: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return EXIT_CREDENTIALS
    except NoRegionError:
        print("stateless-state: no AWS region: set AWS_REGION or pass --region", file=sys.stderr)
        return EXIT_USAGE
    except (StatelessStateError, BotoCoreError, ClientError) as e:
        print(f"stateless-state: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
