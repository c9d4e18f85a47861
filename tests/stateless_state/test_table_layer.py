"""The table layer the primitives share: its request shapes (one-item query, batch get, put,
stored get), hints kept apart per primitive, and each primitive's options checked in one place."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from stateless_state import ConditionFailed, Store, keys
from stateless_state.counter import CounterOptions, CounterSettings
from stateless_state.expressions import Attr
from stateless_state.table import INDEX_PK, MAX_BATCH_GET, Hints
from stateless_state.versioned import VersionedOptions, VersionedSettings
from stateless_state.window_rules import SessionOptions, SessionRules, WindowOptions, WindowRules


def calls(store: Store, operation: str) -> int:
    stats = store.metrics.snapshot().by_operation.get(operation)
    return stats.calls if stats else 0


def test_query_one_reads_one_item_from_either_end(moto_store: Store) -> None:
    t = moto_store.table
    for sk in ("a", "b", "c"):
        t.put({"pk": "p", "sk": sk, "n": 1})
    first = t.query_one(Attr("pk").eq("p"), consistent=True)
    last = t.query_one(Attr("pk").eq("p"), consistent=True, reverse=True)
    assert first is not None and last is not None
    assert (first["sk"], last["sk"], first["n"]) == ("a", "c", 1)
    assert t.query_one(Attr("pk").eq("nothing")) is None
    assert calls(moto_store, "Query") == 3


def test_batch_get_splits_at_the_service_limit_and_skips_missing_items(moto_store: Store) -> None:
    t = moto_store.table
    stored = [{"pk": f"k{i}", "sk": "s", "v": i} for i in range(0, MAX_BATCH_GET + 50, 2)]
    for item in stored:
        t.put(item)
    wanted = [{"pk": f"k{i}", "sk": "s"} for i in range(MAX_BATCH_GET + 50)]
    found = t.batch_get(wanted)
    assert sorted(i["v"] for i in found) == [i["v"] for i in stored]
    assert calls(moto_store, "BatchGetItem") == 2


def test_a_conditional_put_reports_the_item_as_it_was(moto_store: Store) -> None:
    t = moto_store.table
    t.put({"pk": "p", "sk": "s", "owner": "first"}, condition=Attr("pk").not_exists())
    with pytest.raises(ConditionFailed) as refused:
        t.put({"pk": "p", "sk": "s", "owner": "second"}, condition=Attr("pk").not_exists())
    assert refused.value.old is not None and refused.value.old["owner"] == "first"
    assert t.get_stored({"pk": "p", "sk": "s"}) == {
        "pk": {"S": "p"},
        "sk": {"S": "s"},
        "owner": {"S": "first"},
    }
    t.delete({"pk": "p", "sk": "s"})
    assert t.get({"pk": "p", "sk": "s"}) is None


def test_hints_are_kept_per_primitive_and_bounded_each() -> None:
    mine, theirs = Hints(limit=2), Hints(limit=2)
    theirs.put("x", 7)
    for i in range(3):
        mine.put(f"k{i}", i)
    assert (mine.get("k0"), mine.get("k2")) == (None, 2), "past its bound it starts over"
    assert theirs.get("x") == 7, "one primitive's bound never clears another's hints"
    mine.forget("k2")
    assert mine.get("k2") is None


def test_the_table_hands_each_primitive_its_own_hints(moto_store: Store) -> None:
    t = moto_store.table
    assert t.hints("counter") is t.hints("counter")
    assert t.hints("counter") is not t.hints("sessions.head")


def test_index_entries_use_the_index_constants() -> None:
    entry = keys.session_due("sessions", "n", 5.0, "k", "id")
    assert entry.index_item() == {INDEX_PK: entry.pk, keys.INDEX_SK: entry.sk}


def options_of(typed: Any) -> set[str]:
    return set(typed.__required_keys__ | typed.__optional_keys__)


@pytest.mark.parametrize(
    ("typed", "settings"),
    [
        (CounterOptions, CounterSettings),
        (VersionedOptions, VersionedSettings),
        (SessionOptions, SessionRules),
        (WindowOptions, WindowRules),
    ],
)
def test_every_declared_option_is_settled_in_one_place(typed: Any, settings: Any) -> None:
    assert options_of(typed) == {f.name for f in fields(settings)}


def test_an_unknown_or_missing_option_is_a_type_error(moto_store: Store) -> None:
    # Typed as Any: these are the calls a type checker refuses, made anyway.
    typo: Any = {"token_tl": 5}
    keep: Any = {"keep": 1}
    gap: Any = {"gap": 1}
    with pytest.raises(TypeError, match="token_tl"):
        moto_store.counter("c", **typo)
    with pytest.raises(TypeError, match="token_tl"):
        moto_store.sharded_counter("c", shards=2, **typo)
    with pytest.raises(TypeError, match="keep"):
        moto_store.versioned("v", **keep)
    with pytest.raises(TypeError, match="max_duration"):
        moto_store.sessions("s", **gap)
    with pytest.raises(TypeError, match="'gap'"):
        moto_store.windows("w", **gap)


def test_defaults_fill_what_is_not_given(moto_store: Store) -> None:
    s = moto_store.sessions("s", gap=10, max_duration=100)
    assert (s.allowed_lateness, s.retention) == (0.0, 7 * 86400.0)
    v = moto_store.versioned("v")
    assert (v.keep_last, v.keep_for) == (None, None)
    assert CounterSettings.of({}).token_ttl == 7 * 86400.0
