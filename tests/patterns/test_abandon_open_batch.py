"""Abandoning an open batch while arrivals still join it (DynamoDB Local, the interleaving forced:
an arrival added between the abandon's read and its write).

The abandon's write is conditional on the member count it read: an operator shown one member
(``expect_count``, as the CLI passes) is refused when a second joined meanwhile, and the second
arrival stays in the open batch to be loaded; an abandon without an expectation reads again and
abandons what the batch holds then, never on a decision that did not count it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from patterns.batcher import Arrival, Batch, Batcher, BatchState, Thresholds
from patterns.batcher.abandon import abandon_batch
from stateless_state import StateConflict, Store


def open_batch(store: Store) -> tuple[Batcher, str]:
    b = Batcher(store, f"open-{uuid.uuid4().hex[:6]}", Thresholds(count=100, bytes=None, age=None))
    return b, b.add(Arrival("a1", 1, time.time(), {})).batch_id


def arrival_after_first_read(b: Batcher) -> tuple[Callable[[str], Batch | None], list[Batch]]:
    """``b.batch`` that, on its first call, lets a second arrival join after the read."""
    real = b.batch
    seen: list[Batch] = []

    def read_then_arrival(batch_id: str) -> Batch | None:
        batch = real(batch_id)
        if batch is not None and not seen:
            seen.append(batch)
            b.add(Arrival("a2", 1, time.time(), {}))
        return batch

    return read_then_arrival, seen


def racing_batch(store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Batcher, str, list[Batch]]:
    """An open batch of one member whose first read (``b.batch``, patched for the test) lets a
    second arrival join after it: the batcher, the batch id, the batches that read saw."""
    b, first = open_batch(store)
    reader, seen = arrival_after_first_read(b)
    monkeypatch.setattr(b, "batch", reader)
    return b, first, seen


def test_an_operator_shown_one_member_is_refused_when_a_second_joined(
    ddb_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b, first, seen = racing_batch(ddb_store, monkeypatch)
    with pytest.raises(StateConflict, match="2 members, not the 1 expected"):
        abandon_batch(b, None, first, who="ops", why="poison", expect_count=1)
    monkeypatch.undo()
    assert seen[0].count == 1
    after = b.batch(first)
    assert after is not None and (after.state, after.count) == (BatchState.OPEN, 2)
    # The second arrival is still a member of a batch that will load: nothing lost.
    again = b.add(Arrival("a2", 1, time.time(), {}))
    assert again.duplicate and again.batch_id == first


def test_an_abandon_never_writes_on_a_count_it_did_not_read(
    ddb_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b, first, _ = racing_batch(ddb_store, monkeypatch)
    decided: list[int | None] = []
    real_action = b.operator_action

    def record(*args: Any, **kwargs: Any) -> Batch:
        decided.append(kwargs.get("expect_count"))
        return real_action(*args, **kwargs)

    monkeypatch.setattr(b, "operator_action", record)
    assert abandon_batch(b, None, first, who="ops", why="poison") == "abandoned"
    monkeypatch.undo()
    after = b.batch(first)
    assert after is not None and (after.state, after.count) == (BatchState.ABANDONED, 2)
    assert decided == [1, 2], "the write on the stale count failed; the second counted both"
