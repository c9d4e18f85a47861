"""The versioned head's write condition, with tests that fail without it.

V1: a write moves the head only from the version it read (``number = :expected``). The history
item's ``attribute_not_exists(sk)`` catches a stale writer too, but only while the version it
would write is still stored: with ``keep_last`` that item is deleted, and the head condition is
all that stands between a stale writer and a lost update (and a head that goes backwards).
"""

from __future__ import annotations

from typing import Any

import pytest

from stateless_state import Store, VersionConflict


def test_a_stale_put_is_refused_after_keep_last_deleted_its_version(moto_store: Store) -> None:
    doc = moto_store.versioned("config", keep_last=1)
    for n in (1, 2, 3):
        doc.put({"n": n}, expected=None if n == 1 else n - 1)
    assert doc.raw_item(2) is None, "keep_last=1 deleted version 2's history item"
    with pytest.raises(VersionConflict):
        doc.put({"n": "stale"}, expected=1)
    latest = doc.get()
    assert latest is not None and (latest.number, latest.value) == (3, {"n": 3})


def test_an_update_that_read_before_two_other_writes_loses_neither(ddb_store: Store) -> None:
    """Forced interleaving on DynamoDB Local: between this update's read and its write, another
    container writes two versions (the hook is ``fn``, which runs between the two)."""
    mine = ddb_store.versioned("config", keep_last=1)
    theirs = Store(ddb_store.table_name, client=ddb_store.client).versioned("config", keep_last=1)
    mine.put({"items": []}, expected=None)
    calls: list[list[Any]] = []

    def add_mine(value: dict[str, Any]) -> dict[str, Any]:
        calls.append(list(value["items"]))
        if len(calls) == 1:
            theirs.update(lambda v: {"items": [*v["items"], "theirs-1"]})
            theirs.update(lambda v: {"items": [*v["items"], "theirs-2"]})
        return {"items": [*value["items"], "mine"]}

    result = mine.update(add_mine)
    assert calls == [[], ["theirs-1", "theirs-2"]], "the stale attempt was retried from a re-read"
    assert (result.number, result.value) == (4, {"items": ["theirs-1", "theirs-2", "mine"]})
    latest = mine.get()
    assert latest is not None and latest.value == result.value
