"""The lease's write conditions, each with a test that fails without it.

L5: ``Lease.break_(expect_fence=f)`` breaks only the holder the operator saw (``fence = f``);
an acquisition between ``lease show`` and the break is left alone.
L6: an acquire whose outcome is unknown gives its claim back conditional on its own nonce
(``holder = :nonce``), so a failed acquire never releases another holder's lease.
L2: a renewal is conditional on the holder's nonce as well as its fence (a break keeps the
fence).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

from stateless_state import LeaseLost, Store


def test_a_break_acts_only_on_the_holder_the_operator_saw(moto_store: Store) -> None:
    lease = moto_store.lease("flush", duration=300, owner="first")
    first = lease.acquire()
    shown = lease.state()
    assert (shown.owner, shown.fence, shown.held) == ("first", first.fence, True)
    # Between the operator's `lease show` and the break: the holder leaves, another acquires.
    assert first.release()
    second = moto_store.lease("flush", duration=300, owner="second").acquire()
    assert second.fence == shown.fence + 1

    assert not lease.break_(expect_fence=shown.fence, who="ops", why="stuck")
    now = lease.state()
    assert (now.owner, now.fence, now.held) == ("second", second.fence, True)
    second.renew()  # still the holder: its nonce is on the item

    assert lease.break_(expect_fence=second.fence, who="ops", why="stuck")
    assert not lease.state().held


def test_a_failed_acquire_never_releases_another_holders_lease(moto_store: Store) -> None:
    holder = moto_store.lease("flush", duration=300, owner="holder").acquire()
    lost = {"armed": True}

    def lose_the_response(**_: Any) -> None:
        # The claim's UpdateItem never gets an answer: acquire cannot know whether it landed.
        if lost["armed"]:
            lost["armed"] = False
            raise ConnectionClosedError(endpoint_url="https://dynamodb.local")

    events = moto_store.client.meta.events
    events.register("before-call.dynamodb.UpdateItem", lose_the_response)
    try:
        with pytest.raises(ConnectionClosedError):
            moto_store.lease("flush", duration=300, owner="latecomer").acquire()
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", lose_the_response)
    assert not lost["armed"], "the fault was not injected"

    state = moto_store.lease("flush").state()
    assert (state.owner, state.fence, state.held) == ("holder", holder.fence, True)
    holder.renew()  # its nonce is still on the item


def test_a_broken_holder_cannot_renew(moto_store: Store) -> None:
    """L2's holder half (``holder = :nonce``): a break keeps the fence, so the fence alone would
    let the broken holder renew its way back into a lease the operator took from it."""
    lease = moto_store.lease("flush", duration=300, owner="stuck")
    held = lease.acquire()
    assert lease.break_(expect_fence=held.fence, who="ops", why="stuck")
    with pytest.raises(LeaseLost):
        held.renew()
    assert not lease.state().held
    assert moto_store.lease("flush", owner="next").acquire().fence == held.fence + 1
