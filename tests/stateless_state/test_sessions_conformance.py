"""Conformance with the session windows of Apache Beam and Apache Flink.

The scenarios (event times, gaps, watermarks and the sessions they must give) are those of Beam's
``SessionsTest`` and of the session cases of Flink's ``WindowOperatorTest`` (whose merge
bookkeeping ``MergingWindowSetTest`` covers), restated in seconds against our API. Where our
documented semantics differ, the case asserts ours and says what the other system does:

* **Touching sessions.** Two events exactly ``gap`` apart are two sessions here and in Beam (its
  ``IntervalWindow`` ``[t, t + gap)`` windows are disjoint when one ends where the other
  starts). Flink's ``TimeWindow.intersects`` counts touching windows as intersecting and merges
  them into one session.
* **When a session closes.** Here a session closes once the watermark reaches ``last + gap +
  allowed_lateness``. Flink fires a window at its ``maxTimestamp`` (``end - 1 ms``) and keeps it
  for ``allowed_lateness`` more; with lateness the two agree on the last moment an event can
  still change the session, and we emit once, at the end, instead of firing again per late
  event.
* **Events near a closed session.** An event within ``gap`` of a closed session is ``late`` and
  changes nothing (Flink drops it: its merged window is late; Beam drops it as late data). An
  event that touches no closed session starts a new one however far behind the watermark it is:
  an add does not know any sweeper's watermark, so lateness is decided against stored sessions.
  Flink and Beam, whose operators hold the watermark, drop such an event.
* **Maximum duration.** Neither has one; ``max_duration`` here bounds a session (and the merge
  lookup). The cases below set it high enough never to matter.
"""

from __future__ import annotations

import pytest

from stateless_state import Session, SessionWindows, Store

Summary = tuple[str, float, float, int, float]


def summaries(sessions: list[Session]) -> set[Summary]:
    return {(s.key, s.start, s.last, s.count, s.sum) for s in sessions}


def windows(store: Store, gap: float, lateness: float = 0.0) -> SessionWindows:
    return store.sessions("conformance", gap=gap, max_duration=1e6, allowed_lateness=lateness)


def add_all(s: SessionWindows, events: list[tuple[str, float, float]]) -> None:
    for key, at, value in events:
        s.add(key, at, value)


# Beam SessionsTest: gap 10 ms, event times in ms (here seconds: the scale does not matter).
BEAM = [
    ("simple", 10.0, [0, 10, 101], {(0, 0, 1), (10, 10, 1), (101, 101, 1)}),
    ("consecutive", 10.0, [1, 2, 5, 9, 100, 101], {(1, 9, 4), (100, 101, 2)}),
    ("merging", 10.0, [1, 15, 30, 100, 101, 95, 22, 10], {(1, 30, 5), (95, 101, 3)}),
    (
        "time unit",
        1.0,
        [0.001, 0.002, 1.0, 5.0, 5.001, 10.0],
        {(0.001, 1.0, 3), (5.0, 5.001, 2), (10.0, 10.0, 1)},
    ),
]


@pytest.mark.parametrize(("case", "gap", "times", "expected"), BEAM, ids=[c[0] for c in BEAM])
def test_beam_sessions(
    moto_store: Store,
    case: str,
    gap: float,
    times: list[float],
    expected: set[tuple[float, float, int]],
) -> None:
    s = windows(moto_store, gap)
    add_all(s, [("k", float(t), 1.0) for t in times])
    assert {(x.start, x.last, x.count) for x in s.sessions("k")} == expected, case


def test_flink_session_windows(moto_store: Store) -> None:
    """Flink ``testSessionWindows``: gap 3 s, two keys, out of order, a repeated element."""
    s = windows(moto_store, 3.0)
    add_all(
        s,
        [
            ("key2", 0.0, 1),
            ("key2", 1.0, 2),
            ("key2", 2.5, 3),
            ("key1", 0.010, 1),
            ("key1", 1.0, 2),
            ("key1", 2.5, 3),
            ("key2", 5.501, 4),
            ("key2", 6.0, 5),
            ("key2", 6.0, 5),  # the same element twice, no token: counted twice, as in Flink
            ("key2", 6.05, 6),
        ],
    )
    # Flink's windows: key1 [10, 5500) sum 6, key2 [0, 5500) sum 6, key2 [5501, 9050) sum 20.
    assert summaries(s.close_due(now=12.0)) == {
        ("key1", 0.010, 2.5, 3, 6.0),
        ("key2", 0.0, 2.5, 3, 6.0),
        ("key2", 5.501, 6.05, 4, 20.0),
    }
    add_all(s, [("key2", 15.0, 10), ("key2", 15.0, 20)])
    # Flink fires [15000, 18000) at watermark 17999 (its maxTimestamp); we close at 18.
    assert s.close_due(now=17.999) == []
    assert summaries(s.close_due(now=18.0)) == {("key2", 15.0, 15.0, 2, 30.0)}


def test_flink_an_element_that_bridges_two_sessions_merges_them(moto_store: Store) -> None:
    """Flink ``testSessionWindowsWithCountTrigger``: key1 has [10, 5500) and [6000, 10000);
    an element at 4500 lies within the gap of both and merges them: 7 elements, sum 22."""
    s = windows(moto_store, 3.0)
    add_all(s, [("key1", 0.010, 1), ("key1", 1.0, 2), ("key1", 2.5, 3)])
    add_all(s, [("key1", 6.0, 1), ("key1", 6.5, 2), ("key1", 7.0, 3)])
    assert len(s.sessions("key1")) == 2
    bridge = s.add("key1", 4.5, 10)
    assert len(bridge.absorbed) == 1
    assert summaries(s.sessions("key1")) == {("key1", 0.010, 7.0, 7, 22.0)}


def test_touching_events_are_two_sessions_unlike_flink(moto_store: Store) -> None:
    s = windows(moto_store, 3.0)
    add_all(s, [("k", 0.0, 1), ("k", 3.0, 1)])
    # Flink merges [0, 3000) and [3000, 6000) (touching windows intersect there); Beam does not.
    assert {(x.start, x.last) for x in s.sessions("k")} == {(0.0, 0.0), (3.0, 3.0)}
    s.add("k", 1.5, 1)
    assert {(x.start, x.last, x.count) for x in s.sessions("k")} == {(0.0, 3.0, 3)}


def test_allowed_lateness_and_events_near_a_closed_session(moto_store: Store) -> None:
    """Flink's lateness cases: a session stays open ``allowed_lateness`` past its gap and takes
    late elements meanwhile; after that, an element that would change it is dropped."""
    s = windows(moto_store, 3.0, lateness=2.0)
    s.add("k", 0.0, 1)
    assert s.close_due(now=4.0) == []
    joined = s.add("k", 2.0, 1)  # behind the watermark, within lateness: still counts
    assert joined.session is not None and joined.session.count == 2
    assert s.close_due(now=6.999) == []
    [closed] = s.close_due(now=7.0)
    assert (closed.start, closed.last, closed.count) == (0.0, 2.0, 2)
    assert s.add("k", 4.9, 1).late, "within the gap of the closed session: late, dropped"
    assert s.add("k", -0.5, 1).late
    # Exactly gap after its last event touches nothing closed: a new session (Flink would too:
    # the window [5000, 8000) is not yet late at watermark 7000).
    assert s.add("k", 5.0, 1).created


def test_an_event_far_behind_the_watermark_starts_a_session_unlike_flink(
    moto_store: Store,
) -> None:
    s = windows(moto_store, 3.0)
    s.add("k", 100.0, 1)
    assert len(s.close_due(now=1000.0)) == 1
    # Flink drops this element (its window's maxTimestamp is behind the watermark); an add here
    # knows no watermark, so it starts a session that the next sweep closes.
    update = s.add("k", 10.0, 1)
    assert update.created and not update.late
    assert summaries(s.close_due(now=1000.0)) == {("k", 10.0, 10.0, 1, 1.0)}


def test_flink_late_merging_of_three_sessions(moto_store: Store) -> None:
    """Flink ``MergingWindowSetTest.testLateMerging`` (gap 3): sessions at 0, 5 and 10; an
    event between the later two merges them, then one between the first and the rest merges
    all. Flink's windows touch at 3, 5 and 8 there (it merges touching windows); shifted by
    half a unit so that every bridge is strictly within the gap, ours merge the same way."""
    s = windows(moto_store, 3.0)
    add_all(s, [("k", 0.0, 1), ("k", 5.0, 1), ("k", 10.0, 1)])
    assert len(s.sessions("k")) == 3
    assert len(s.add("k", 7.5, 1).absorbed) == 1
    assert {(x.start, x.last) for x in s.sessions("k")} == {(0.0, 0.0), (5.0, 10.0)}
    assert len(s.add("k", 2.5, 1).absorbed) == 1
    assert {(x.start, x.last, x.count) for x in s.sessions("k")} == {(0.0, 10.0, 5)}


def test_flink_late_merging_with_touching_windows_differs(moto_store: Store) -> None:
    """The same test at Flink's own times: its event at 8 merges [5, 8) and [10, 13) because
    [8, 11) touches [5, 8); here 8 is exactly the gap after 5, so it joins only 10."""
    s = windows(moto_store, 3.0)
    add_all(s, [("k", 0.0, 1), ("k", 5.0, 1), ("k", 10.0, 1), ("k", 8.0, 1), ("k", 3.0, 1)])
    # Flink ends with one window [0, 13); Beam's rule and ours give three sessions.
    assert {(x.start, x.last) for x in s.sessions("k")} == {(0.0, 0.0), (3.0, 5.0), (8.0, 10.0)}
