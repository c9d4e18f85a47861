"""The counter's write conditions, each with a test that fails without it.

C2: a token add pins ``attribute_not_exists(fell)`` when this container has not seen the
counter go down, because the token record it writes says ``monotone``. The value condition
alone cannot see an ABA: another container takes the counter down and back up to the very
value this container last saw.
"""

from __future__ import annotations

import pytest

from stateless_state import InvalidArgument, Store


def test_a_counter_that_fell_and_came_back_is_not_recorded_monotone(moto_store: Store) -> None:
    mine = moto_store.counter("pages")
    assert mine.add(5, token="t1").crossed(5)
    # Another container (its own hints): down one and back up, to the value `mine` last saw.
    other = Store(moto_store.table_name, client=moto_store.client).counter("pages")
    assert not other.add(-1, token="t2").monotone
    assert not other.add(1, token="t3").monotone
    assert other.get() == 5

    count = mine.add(1, token="t4")
    assert (count.previous, count.value, count.applied) == (5, 6, True)
    assert not count.monotone, "the counter went down before this add: its record must say so"
    with pytest.raises(InvalidArgument, match="went down"):
        count.crossed(6)
    replay = mine.add(1, token="t4")
    assert not replay.applied and not replay.monotone, "the stored token record says it too"
