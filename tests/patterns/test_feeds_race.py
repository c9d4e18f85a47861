"""Operators editing the feeds' configuration at once, real threads on DynamoDB Local: no edit
is lost, none is applied twice, every change is in the history once with its who and why, and
each version differs from the one before only in the feeds its change names."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from patterns.feeds import Feed, FeedsConfig, FeedSet, RedshiftTarget
from stateless_state import Store, VersionConflict

pytestmark = pytest.mark.race

THREADS, EDITS = 8, 12


def target(table: str) -> RedshiftTarget:
    return RedshiftTarget(
        table=table, iam_role="arn:aws:iam::123456789012:role/c", database="d", workgroup_name="w"
    )


def feed(name: str) -> Feed:
    return Feed(name=name, bucket="landing", prefix=f"{name}/", target=target(f"s.{name}"))


def check_history(history: list[FeedSet], edits: set[tuple[str, str]]) -> None:
    """Versions 1..n, one per edit made (who, why), each touching only the feeds it names."""
    assert [v.version for v in history] == list(range(1, len(history) + 1))
    made = [(v.change.who, v.change.why) for v in history if v.change]
    assert len(made) == len(history) and sorted(made) == sorted(edits), "each edit once"
    previous: dict[str, Feed] = {}
    for v in history:
        assert v.change is not None
        changed = {n for n in set(previous) | set(v.feeds) if previous.get(n) != v.feeds.get(n)}
        assert changed == set(v.change.feeds), (v.version, v.change)
        previous = dict(v.feeds)


def test_concurrent_operators_lose_no_edit(ddb_store: Store) -> None:
    start = threading.Barrier(THREADS)
    expected: dict[str, Feed] = {}
    edits: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def operator(i: int) -> None:
        config = FeedsConfig(ddb_store)  # each operator its own process, as it were
        rng = random.Random(i)
        who, name = f"op{i}", f"feed{i}"
        mine = feed(name)
        start.wait()
        config.add(mine, who=who, why=f"{who}-0")
        done = [f"{who}-0"]
        for k in range(1, EDITS):
            why = f"{who}-{k}"
            choice = rng.choice(["lanes", "count", "pause", "table"])
            if choice == "lanes":
                changes: dict[str, Any] = {"lanes": mine.lanes + 1}
                config.update(name, changes, who=who, why=why)
                mine = mine.with_changes(changes)
            elif choice == "count":
                config.update(name, {"thresholds": {"count": k}}, who=who, why=why)
                mine = mine.with_changes({"thresholds": {"count": k}})
            elif choice == "table":
                config.update(name, {"target": {"table": f"s.{name}_{k}"}}, who=who, why=why)
                mine = mine.with_changes({"target": {"table": f"s.{name}_{k}"}})
            elif mine.paused:
                config.resume(name, who=who, why=why)
                mine = mine.with_changes({"paused": False})
            else:
                config.pause(name, who=who, why=why)
                mine = mine.with_changes({"paused": True})
            done.append(why)
        with lock:
            expected[name] = mine
            edits.update((who, why) for why in done)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(operator, range(THREADS)))
    config = FeedsConfig(ddb_store)
    final = config.read()
    assert dict(final.feeds) == expected, "every operator's last edit is in the final version"
    check_history(config.history(), edits)
    conflicts = ddb_store.metrics.by_operation["feeds.edit"].retries
    assert conflicts > 0, "the operators did conflict (or the test proves nothing)"


def test_an_operator_who_read_before_another_wrote_lands_after_it(ddb_store: Store) -> None:
    """Forced: ``b`` reads version 1, ``a`` reads it too and writes version 2, and only then
    does ``b`` write what it computed from version 1."""
    FeedsConfig(ddb_store).add(feed("base"), who="setup", why="base")
    b_read, a_wrote = threading.Event(), threading.Event()

    class Forced(FeedsConfig):
        first = True

        def read(self) -> FeedSet:
            seen = super().read()
            if self.first:
                self.first = False
                if self is operators["a"]:
                    assert b_read.wait(10)
                else:
                    b_read.set()
                    assert a_wrote.wait(10)
            return seen

    operators = {"a": Forced(ddb_store), "b": Forced(ddb_store)}

    def edit(name: str) -> FeedSet:
        written = operators[name].add(feed(name), who=name, why=f"add {name}")
        if name == "a":
            a_wrote.set()
        return written

    with ThreadPoolExecutor(2) as pool:
        versions = dict(zip("ab", (w.version for w in pool.map(edit, "ab")), strict=True))
    assert versions == {"a": 2, "b": 3}, "b's write from version 1 was refused, then re-applied"
    config = FeedsConfig(ddb_store)
    assert sorted(config.read().feeds) == ["a", "b", "base"]
    check_history(config.history(), {("setup", "base"), ("a", "add a"), ("b", "add b")})


def test_two_operators_acting_on_what_they_were_shown_one_is_refused(ddb_store: Store) -> None:
    shown = FeedsConfig(ddb_store).add(feed("orders"), who="setup", why="new").version
    both_shown = threading.Barrier(2)

    def operator(lanes: int) -> str:
        config = FeedsConfig(ddb_store)
        both_shown.wait()
        try:
            config.update("orders", {"lanes": lanes}, who=f"op{lanes}", why="w", expected=shown)
        except VersionConflict:
            return "refused"
        return "written"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(operator, [2, 3]))
    assert sorted(outcomes) == ["refused", "written"]
    final = FeedsConfig(ddb_store).read()
    assert final.version == 2
    winner = 2 if outcomes[0] == "written" else 3
    assert final.feed("orders").lanes == winner, "the refused edit changed nothing"
    assert final.change is not None and final.change.who == f"op{winner}"
