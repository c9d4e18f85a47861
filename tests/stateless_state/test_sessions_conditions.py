"""The session and window write conditions, each with a test that fails without it.

Races run on DynamoDB Local with real threads: one add runs in a thread of its own, on a client
of its own (another container), and is held just before its ``TransactWriteItems``, after its
reads; the interleaved writes run meanwhile, then the held add goes on. Nothing rests on timing.

S1: the key's head version is what keeps two first events of a key in one session (each reads
no session and would create its own, at different item keys).
S3: a merge deletes the sessions it absorbs only while they are as it read them and open: a
sweeper that closed one in between makes the event late instead of deleting a closed session.
S5: a tumbling window's put is conditional on the window it read (or its absence): no lost
update, no closed window opened again.
S6: ``close_due``'s ``due <= :watermark`` is not redundant: the due index orders ``due`` to the
microsecond, so the index Query returns a session due a fraction of a microsecond after the
watermark, and only the condition, on the stored ``due``, keeps it open.
S7 / S8: ``close_due``'s ``version = :v`` and ``state = open``, on what its (eventually
consistent) index Query returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from stateless_state import SessionUpdate, Store
from stateless_state.testing import DynamoDBLocal

T = TypeVar("T")


def held_before_write(
    client: Any, held: Callable[[], T], meanwhile: Callable[[], None], operation: str
) -> T:
    """Run ``held`` in a thread, hold its first ``operation`` request on ``client`` until
    ``meanwhile`` has run in this thread, then let it go on; ``held``'s result."""
    reached, go = threading.Event(), threading.Event()
    fired: list[bool] = []

    def hold(**_: Any) -> None:
        if not fired:
            fired.append(True)
            reached.set()
            assert go.wait(60), "never released"

    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(held())
        except BaseException as e:  # handed to the test thread
            errors.append(e)

    event = f"before-call.dynamodb.{operation}"
    client.meta.events.register(event, hold)
    thread = threading.Thread(target=run)
    try:
        thread.start()
        assert reached.wait(60), f"the held call never sent {operation}"
        meanwhile()
    finally:
        go.set()
        thread.join(60)
        client.meta.events.unregister(event, hold)
    if errors:
        raise errors[0]
    return out[0]


@pytest.fixture
def container(ddb_store: Store, dynamodb_local: DynamoDBLocal) -> Store:
    """Another container: the same table through a client (and hints) of its own."""
    return Store(ddb_store.table_name, client=dynamodb_local.client())


def test_two_first_events_of_a_key_end_in_one_session(ddb_store: Store, container: Store) -> None:
    opts: dict[str, Any] = {"gap": 10, "max_duration": 1000}
    mine, theirs = container.sessions("s", **opts), ddb_store.sessions("s", **opts)
    held = held_before_write(
        container.client,
        lambda: mine.add("u", 100.0),
        lambda: None if theirs.add("u", 105.0).created else pytest.fail("not first"),
        "TransactWriteItems",
    )
    assert held.session is not None and not held.created, "joined the session written meanwhile"
    [session] = theirs.sessions("u")
    assert (session.start, session.last, session.count) == (100.0, 105.0, 2)


def test_a_merge_never_deletes_a_session_a_sweeper_closed_meanwhile(
    ddb_store: Store, container: Store
) -> None:
    opts: dict[str, Any] = {"gap": 10, "max_duration": 1000}
    mine, theirs = container.sessions("s", **opts), ddb_store.sessions("s", **opts)
    first = theirs.add("u", 100.0).session
    assert first is not None
    closed: list[list[str]] = []
    # 95 extends the session backwards: a new item (start 95) replaces it, the old one deleted.
    held: SessionUpdate = held_before_write(
        container.client,
        lambda: mine.add("u", 95.0),
        lambda: closed.append([s.id for s in theirs.close_due(now=200.0)]),
        "TransactWriteItems",
    )
    assert closed == [[first.id]]
    assert held.late and held.session is None
    [stored] = theirs.sessions("u")
    assert (stored.id, stored.start, stored.count, stored.closed) == (first.id, 100.0, 1, True)


def test_a_window_add_loses_no_update_made_meanwhile(ddb_store: Store, container: Store) -> None:
    # One window: [60, 120).
    mine, theirs = container.windows("w", size=60), ddb_store.windows("w", size=60)
    theirs.add("u", 100.0, 1.0)
    held = held_before_write(
        container.client,
        lambda: mine.add("u", 110.0, 2.0),
        lambda: None if theirs.add("u", 115.0, 4.0).session else pytest.fail("not added"),
        "TransactWriteItems",
    )
    assert held.session is not None and (held.session.count, held.session.sum) == (3, 7.0)
    [window] = theirs.sessions("u")
    assert (window.count, window.sum, window.last) == (3, 7.0, 115.0)


def test_two_first_events_of_a_window_are_both_counted(ddb_store: Store, container: Store) -> None:
    mine, theirs = container.windows("w", size=60), ddb_store.windows("w", size=60)
    held = held_before_write(
        container.client,
        lambda: mine.add("u", 110.0, 2.0),
        lambda: None if theirs.add("u", 100.0, 1.0).created else pytest.fail("not first"),
        "TransactWriteItems",
    )
    assert held.session is not None and not held.created
    [window] = theirs.sessions("u")
    assert (window.count, window.sum, window.start) == (2, 3.0, 60.0)


def test_a_window_closed_meanwhile_is_not_opened_again(ddb_store: Store, container: Store) -> None:
    mine, theirs = container.windows("w", size=60), ddb_store.windows("w", size=60)
    theirs.add("u", 100.0, 1.0)
    closed: list[int] = []
    held = held_before_write(
        container.client,
        lambda: mine.add("u", 110.0, 2.0),
        lambda: closed.append(len(theirs.close_due(now=1000.0))),
        "TransactWriteItems",
    )
    assert closed == [1]
    assert held.late
    [window] = theirs.sessions("u")
    assert (window.count, window.closed) == (1, True)
    assert theirs.close_due(now=2000.0) == [], "closed exactly once"


def test_close_due_compares_the_exact_due_not_the_indexs_microseconds(ddb_store: Store) -> None:
    sessions = ddb_store.sessions("s", gap=10, max_duration=1000)
    at = 1_700_000_000.0000004
    sessions.add("u", at)
    due = at + 10
    watermark = 1_700_000_010.0000001
    assert watermark < due and round(watermark * 1e6) == round(due * 1e6)
    assert sessions.close_due(now=watermark) == [], "not due yet by the watermark"
    [still] = sessions.sessions("u")
    assert not still.closed
    [closed] = sessions.close_due(now=due)
    assert closed.last == at


def test_a_sweeper_never_closes_a_session_changed_since_its_index_read(
    ddb_store: Store, container: Store
) -> None:
    """S7 (``version = :v``): an event inside a due session changes its aggregates, not its due;
    a close decided on the index's older copy would return the older aggregates."""
    opts: dict[str, Any] = {"gap": 10, "max_duration": 1000}
    sweeper, writer = container.sessions("s", **opts), ddb_store.sessions("s", **opts)
    writer.add("u", 100.0)
    writer.add("u", 110.0)
    held = held_before_write(
        container.client,
        lambda: sweeper.close_due(now=200.0),
        lambda: None if writer.add("u", 105.0).session else pytest.fail("not added"),
        "UpdateItem",
    )
    assert held == [], "the session changed after the index showed it"
    [closed] = writer.close_due(now=200.0)
    assert (closed.count, closed.start, closed.last) == (3, 100.0, 110.0)


def test_two_sweepers_that_read_one_due_session_close_it_once(
    ddb_store: Store, container: Store
) -> None:
    """S8 (``state = open``): closing does not bump the version, so only the state term stops a
    second sweeper that read the same index entry from closing and returning it again."""
    opts: dict[str, Any] = {"gap": 10, "max_duration": 1000}
    late, first = container.sessions("s", **opts), ddb_store.sessions("s", **opts)
    first.add("u", 100.0)
    by_first: list[int] = []
    held = held_before_write(
        container.client,
        lambda: late.close_due(now=200.0),
        lambda: by_first.append(len(first.close_due(now=200.0))),
        "UpdateItem",
    )
    assert by_first == [1]
    assert held == [], "closed exactly once across sweepers"
