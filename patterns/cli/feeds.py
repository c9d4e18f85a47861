"""The CLI's ``feeds`` commands: the feeds' configuration (:mod:`patterns.feeds.config`) shown,
edited and audited, and the arrivals no feed took.

A feed or a change is JSON, as ``feeds show --json`` prints a feed, given inline or as
``@file``::

    stateless-state feeds add '{"name": "orders", "bucket": "landing", "prefix": "orders/",
        "target": {"kind": "redshift", "table": "sales.orders", "iam_role": "arn:...",
                   "database": "dev", "workgroup_name": "wg"}}' --why "new feed"
    stateless-state feeds update orders '{"target": {"table": "sales.orders_v2"}}' --why v2

Every edit shows the version it read and what it will write, asks for confirmation (``--yes``
skips it), and writes only from that version: another operator's edit in between refuses it
(exit 4, nothing changed; show it again and decide again). Bad input exits 2 and a state that
refuses the edit (not drained, already paused) exits 4, each with the reason and the fix.

The CLI cannot know a deployment's manifest location (its ``manifest_bucket`` and
``manifest_prefix`` are the deployment's settings, not the configuration's), so it accepts a
feed located there; the deployment logs it as an error and records its files as unrouted
(:mod:`patterns.feeds.pipeline`): keep feeds out of the manifest prefix.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stateless_state import InvalidArgument, StateConflict, VersionConflict, clock
from stateless_state.codec import DuplicateKey, loads_strict

from ..feeds.config import DEFAULT_CONFIG_NAME, FeedsConfig, FeedSet
from ..feeds.feed import Feed, LocalTarget, feed_from_json
from ..feeds.pipeline import FeedLoader
from ..feeds.unrouted import list_unrouted
from .terminal import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STATE,
    EXIT_USAGE,
    CliError,
    common_options,
    confirm,
    emit,
    open_store,
    record_cost,
    who,
)

if TYPE_CHECKING:
    from ..loaders.base import Loader

__all__ = ["add_feed_commands", "feed_loader"]

FEED_COLUMNS = ("name", "state", "bucket", "prefix", "suffix", "stream", "target", "lanes")


def _config(args: argparse.Namespace) -> FeedsConfig:
    name = getattr(args, "config", None) or os.environ.get("FEEDS_CONFIG") or DEFAULT_CONFIG_NAME
    try:
        return FeedsConfig(open_store(args), name)
    except InvalidArgument as e:
        raise CliError(str(e), EXIT_USAGE) from None


def _json_argument(text: str, what: str) -> Any:
    """JSON given inline, or ``@path`` to read it from a file."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text()
        except OSError as e:
            raise CliError(
                f"cannot read {what} from {text[1:]}: {e.strerror}", EXIT_USAGE
            ) from None
    try:
        return loads_strict(source)
    except json.JSONDecodeError as e:
        raise CliError(
            f"{what} is not JSON ({e.msg} at {e.pos}): give it as `feeds show --json` prints "
            "a feed, inline or as @file",
            EXIT_USAGE,
        ) from None
    except DuplicateKey as e:
        raise CliError(f"{what}: {e}; give each field once; nothing changed", EXIT_USAGE) from None


def _target_text(feed: Feed) -> str:
    target = feed.target
    where = f"{target.path}:{target.table}" if isinstance(target, LocalTarget) else target.table
    extra = f" ({target.format})" if target.format is not None else ""
    return f"{target.kind}:{where}{extra}"


def _row(feed: Feed) -> dict[str, Any]:
    state = "removed" if feed.removed else "paused" if feed.paused else "running"
    return {**feed.to_json(), "state": state, "target": _target_text(feed)}


def _edited(args: argparse.Namespace, config: FeedsConfig, what: str, edit: Any) -> int:
    """Show what the edit acts on, confirm, and apply it from the version shown."""
    current = config.read()
    print(f"feeds configuration {config.name!r}, version {current.version}: {what}")
    confirm(args, what)
    try:
        written: FeedSet = edit(current.version)
    except VersionConflict as e:
        raise CliError(
            f"the feeds configuration changed since version {current.version} was shown "
            f"(now {e.actual}): show it again and decide again; nothing changed",
            EXIT_STATE,
        ) from None
    except StateConflict as e:
        raise CliError(str(e), EXIT_STATE) from None
    except InvalidArgument as e:
        raise CliError(f"{e}; nothing changed", EXIT_USAGE) from None
    record_cost(config.store)
    print(f"version {written.version} written")
    return EXIT_OK


def feed_loader(args: argparse.Namespace, stream: str) -> Loader | None:
    """The loader of the feed whose stream is ``stream`` (:class:`~patterns.feeds.FeedLoader`:
    each batch in the ledger of the target it was sealed for), or None when no feed of the
    configuration batches it. One ``GetItem``."""
    config = _config(args)
    feed = config.read().by_stream(stream)
    if feed is None:
        return None
    return FeedLoader(config.store, config, feed.name, lambda target: target.loader())


def cmd_list(args: argparse.Namespace) -> int:
    config = _config(args)
    current = config.read()
    record_cost(config.store)
    feeds = [f for f in current.feeds.values() if args.all or not f.removed]
    rows = [_row(f) for f in sorted(feeds, key=lambda f: f.name)]
    emit(
        args,
        rows,
        FEED_COLUMNS,
        f"feeds (configuration {config.name!r}, version {current.version})",
    )
    return EXIT_OK


def _find(current: FeedSet, name: str) -> Feed:
    found = current.feeds.get(name)
    if found is None:
        raise CliError(f"no feed {name!r} in version {current.version}", EXIT_NOT_FOUND)
    return found


def cmd_show(args: argparse.Namespace) -> int:
    config = _config(args)
    current = config.read() if args.version is None else config.at(args.version)
    feed = _find(current, args.name)
    record_cost(config.store)
    if args.json:
        print(json.dumps(feed.to_json(), indent=2, sort_keys=True))
        return EXIT_OK
    row = {**_row(feed), "version": current.version, "ledger": feed.target.ledger}
    th = feed.thresholds
    row["thresholds"] = f"count {th.count}, bytes {th.bytes}, age {th.age_seconds}"
    emit(args, row, (*FEED_COLUMNS, "thresholds", "ledger", "version"), f"feed {feed.name}")
    print(f"ledger DDL (run once): {feed.target.ledger_ddl()}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        feed = feed_from_json(_json_argument(args.feed, "the feed"))
        feed.check()
    except InvalidArgument as e:
        raise CliError(f"{e}; nothing changed", EXIT_USAGE) from None
    print(json.dumps(feed.to_json(), indent=2, sort_keys=True))
    return _edited(
        args,
        config,
        f"add feed {feed.name}",
        lambda v: config.add(feed, who=who(args), why=args.why, expected=v),
    )


def cmd_update(args: argparse.Namespace) -> int:
    config = _config(args)
    changes = _json_argument(args.changes, "the changes")
    if not isinstance(changes, dict):
        raise CliError('the changes must be a JSON object, e.g. {"lanes": 2}', EXIT_USAGE)
    current = config.read()
    old = _find(current, args.name)
    try:
        new = old.with_changes(changes)
    except InvalidArgument as e:
        raise CliError(f"{e}; nothing changed", EXIT_USAGE) from None
    before, after = old.to_json(), new.to_json()
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            print(f"  {key}: {json.dumps(before.get(key))} -> {json.dumps(after.get(key))}")
    return _edited(
        args,
        config,
        f"update feed {args.name}",
        lambda v: config.update(args.name, changes, who=who(args), why=args.why, expected=v),
    )


def cmd_pause(args: argparse.Namespace) -> int:
    config = _config(args)
    return _edited(
        args,
        config,
        f"pause feed {args.name}",
        lambda v: config.pause(args.name, who=who(args), why=args.why, expected=v),
    )


def cmd_resume(args: argparse.Namespace) -> int:
    config = _config(args)
    return _edited(
        args,
        config,
        f"resume feed {args.name}",
        lambda v: config.resume(args.name, who=who(args), why=args.why, expected=v),
    )


def cmd_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    return _edited(
        args,
        config,
        f"remove feed {args.name}",
        lambda v: config.remove(args.name, who=who(args), why=args.why, expected=v),
    )


def cmd_drain(args: argparse.Namespace) -> int:
    config = _config(args)
    _find(config.read(), args.name)
    confirm(args, f"seal the open batches of feed {args.name} now")
    sealed = config.seal_open(args.name)
    record_cost(config.store)
    print(f"{len(sealed)} batches sealed: {', '.join(b.id for b in sealed) or 'none open'}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    config = _config(args)
    rows = []
    for v in config.history():
        change = v.change
        if change is None or (args.name and args.name not in change.feeds):
            continue
        rows.append(
            {
                "version": v.version,
                "at": change.at,
                "action": change.action,
                "feeds": ", ".join(change.feeds),
                "who": change.who,
                "why": change.why,
            }
        )
    record_cost(config.store)
    emit(
        args,
        rows,
        ("version", "at", "action", "feeds", "who", "why"),
        f"history of {config.name!r}",
    )
    return EXIT_OK


def cmd_unrouted(args: argparse.Namespace) -> int:
    config = _config(args)
    found = list_unrouted(config.store, config.name, limit=args.limit)
    record_cost(config.store)
    rows = [
        {"bucket": u.bucket, "key": u.key, "size": u.size, "at": u.at, "recorded_at": u.recorded_at}
        for u in found
    ]
    emit(args, rows, ("at", "bucket", "key", "size", "recorded_at"), "arrivals no feed took")
    if not args.json and not rows:
        print(f"none in the last retention period (as of {clock.iso8601(clock.now())})")
    return EXIT_OK


# The positional arguments of the feeds commands, and their help.
_ARGUMENTS = {
    "name": "the feed's name",
    "feed": "the feed as JSON (as `feeds show --json` prints one), inline or @file",
    "changes": "the fields to change, as JSON, inline or @file",
}


def add_feed_commands(sub: Any) -> None:
    """The ``feeds`` subcommands, each taking the options of every command
    (:func:`~patterns.cli.terminal.common_options`); ``feeds show`` has a ``--version`` of its
    own (a configuration version), so not the tool's."""
    feeds = sub.add_parser(
        "feeds", help="the feeds' configuration", parents=[common_options()]
    ).add_subparsers(dest="what", required=True, metavar="ACTION")

    def command(name: str, fn: Any, text: str, *arguments: str, edit: bool = False) -> Any:
        common = common_options(version=name != "show")
        s = feeds.add_parser(name, help=text, parents=[common])
        for argument in arguments:
            s.add_argument(argument, help=_ARGUMENTS[argument])
        s.add_argument(
            "--config", help="the configuration's name (default: $FEEDS_CONFIG or 'feeds')"
        )
        if edit:
            s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            s.add_argument("--why", required=True, help="recorded with the change")
            s.add_argument("--who", help="recorded with the change (default: user@host)")
        s.set_defaults(fn=fn)
        return s

    command("list", cmd_list, "the feeds").add_argument(
        "--all", action="store_true", help="removed feeds too"
    )
    command("show", cmd_show, "one feed", "name").add_argument(
        "--version", type=int, help="as configuration version N had it"
    )
    command("add", cmd_add, "add a feed (JSON, inline or @file)", "feed", edit=True)
    command("update", cmd_update, "change a feed (JSON changes)", "name", "changes", edit=True)
    command("pause", cmd_pause, "stop loading a feed (it still seals)", "name", edit=True)
    command("resume", cmd_resume, "load a paused feed again", "name", edit=True)
    command("remove", cmd_remove, "remove a drained feed", "name", edit=True)
    s = command("drain", cmd_drain, "seal a feed's open batches now", "name")
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command("history", cmd_history, "every change, who and why").add_argument(
        "name", nargs="?", help="only the changes of this feed"
    )
    command("unrouted", cmd_unrouted, "arrivals no feed took").add_argument(
        "--limit", type=int, default=100, help="show at most this many (default 100)"
    )
