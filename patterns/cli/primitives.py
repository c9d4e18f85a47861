"""The CLI's commands that show (or break) the primitives' state: leases, counters, sessions and
versioned objects."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from stateless_state import clock

from .terminal import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STATE,
    CliError,
    confirm,
    emit,
    open_store,
    record_cost,
    who,
)

__all__ = ["add_primitive_commands"]


def cmd_lease_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    state = store.lease(args.name).state()
    record_cost(store)
    if state.fence == 0:
        raise CliError(f"no lease {args.name}", EXIT_NOT_FOUND)
    emit(
        args, asdict(state), ("name", "owner", "fence", "expires_at", "held"), f"lease {args.name}"
    )
    return EXIT_OK


def cmd_lease_break(args: argparse.Namespace) -> int:
    store = open_store(args)
    lease = store.lease(args.name)
    state = lease.state()
    if not state.held:
        since = "never held" if state.fence == 0 else f"expired {clock.describe(state.expires_at)}"
        raise CliError(f"lease {args.name} is not held ({since}); nothing changed", EXIT_STATE)
    print(
        f"lease {args.name}: held by {state.owner} until {clock.describe(state.expires_at)}, "
        f"fence {state.fence}"
    )
    confirm(args, f"break lease {args.name}")
    if not lease.break_(expect_fence=state.fence, who=who(args), why=args.why):
        raise CliError(f"lease {args.name} changed since it was shown; nothing changed", EXIT_STATE)
    record_cost(store)
    print(
        f"lease {args.name}: broken (fence {state.fence} kept; the next holder gets a higher one)"
    )
    return EXIT_OK


def cmd_counter_get(args: argparse.Namespace) -> int:
    store = open_store(args)
    value = store.counter(args.name).get_or_none()
    record_cost(store)
    if value is None:
        raise CliError(f"no counter {args.name}", EXIT_NOT_FOUND)
    emit(args, {"name": args.name, "value": value}, ("name", "value"), "counter")
    return EXIT_OK


def cmd_sessions_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    # Reading a key's sessions does not depend on the window parameters.
    sessions = store.sessions(args.name, gap=1, max_duration=1).sessions(args.key)
    record_cost(store)
    if not sessions:
        raise CliError(f"no sessions of {args.key!r} in {args.name}", EXIT_NOT_FOUND)
    rows = [asdict(x) for x in sessions]
    emit(
        args,
        rows,
        ("id", "start", "last", "count", "sum", "min", "max", "closed"),
        f"sessions of {args.key} in {args.name}",
    )
    return EXIT_OK


def cmd_versions_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    history = store.versioned(args.name).history()
    record_cost(store)
    if not history:
        raise CliError(f"no versioned object {args.name}", EXIT_NOT_FOUND)
    rows = [{"number": v.number, "created_at": v.created_at, "value": v.value} for v in history]
    emit(args, rows, ("number", "created_at", "value"), f"versions of {args.name}")
    return EXIT_OK


def add_primitive_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The subcommands that show (or break) the primitives' state, each taking ``common``'s
    options."""
    lease = sub.add_parser("lease", help="show or break a lease", parents=[common])
    verbs = lease.add_subparsers(dest="what", required=True, metavar="ACTION")
    s = verbs.add_parser("show", help="the lease's holder, fence and expiry", parents=[common])
    s.add_argument("name", help="the lease's name")
    s.set_defaults(fn=cmd_lease_show)
    s = verbs.add_parser(
        "break", help="end a holder's lease now (its fence stays spent)", parents=[common]
    )
    s.add_argument("name", help="the lease's name")
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    s.add_argument("--why", required=True, help="why, recorded on the lease")
    s.add_argument("--who", help="who, recorded on the lease (default: user@host)")
    s.set_defaults(fn=cmd_lease_break)

    # Read-only views: (command, help, verb, verb's help, positional arguments, handler).
    views: tuple[tuple[str, str, str, str, dict[str, str], Any], ...] = (
        (
            "counter",
            "read a counter",
            "get",
            "the counter's value",
            {"name": "the counter's name"},
            cmd_counter_get,
        ),
        (
            "sessions",
            "a key's session windows",
            "show",
            "every session of the key, open and closed",
            {"name": "the session windows' name", "key": "the key (a user, a device, ...)"},
            cmd_sessions_show,
        ),
        (
            "versions",
            "a versioned object's history",
            "show",
            "every version kept, oldest first",
            {"name": "the versioned object's name"},
            cmd_versions_show,
        ),
    )
    for command, text, verb, verb_text, arguments, fn in views:
        s = sub.add_parser(command, help=text, parents=[common]).add_subparsers(
            dest="what", required=True, metavar="ACTION"
        )
        s = s.add_parser(verb, help=verb_text, parents=[common])
        for argument, argument_text in arguments.items():
            s.add_argument(argument, help=argument_text)
        s.set_defaults(fn=fn)
