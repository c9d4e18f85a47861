"""Leases on moto: acquire, renew, release, fencing, takeover. Races are elsewhere."""

from __future__ import annotations

import time

import pytest

from stateless_state import InvalidArgument, LeaseLost, LeaseUnavailable, Store
from stateless_state.testing import FakeLambdaContext


def test_acquire_release_and_fences_increase(moto_store: Store) -> None:
    lease = moto_store.lease("loader", duration=30, owner="a")
    with lease.acquire() as first:
        assert first.fence == 1
        with pytest.raises(LeaseUnavailable, match="held by 'a'"):
            moto_store.lease("loader", duration=30, owner="b").acquire()
        assert lease.state().held and lease.state().owner == "a"
    second = moto_store.lease("loader", duration=30, owner="b").acquire()
    assert second.fence == 2
    assert second.release() and second.release(), "release is safe to repeat"
    assert not lease.state().held


def test_expired_lease_is_taken_over_and_stale_holder_loses(moto_store: Store) -> None:
    stale = moto_store.lease("job", duration=0.05, owner="slow").acquire()
    time.sleep(0.1)
    fresh = moto_store.lease("job", duration=30, owner="fast").acquire()
    assert fresh.fence == stale.fence + 1
    with pytest.raises(LeaseLost):
        stale.renew()
    assert stale.release() is False
    assert moto_store.lease("job", duration=1).state().owner == "fast"


def test_renew_extends_an_unclaimed_expired_lease(moto_store: Store) -> None:
    held = moto_store.lease("job", duration=0.05).acquire()
    time.sleep(0.1)
    held.renew(30)
    assert held.remaining > 20
    with pytest.raises(LeaseUnavailable):
        moto_store.lease("job", duration=30).acquire()


def test_duration_is_capped_by_remaining_lambda_time(moto_store: Store) -> None:
    held = moto_store.lease("job", duration=600).acquire(context=FakeLambdaContext(2_000))
    assert held.remaining <= 2.0


def test_break_is_an_operator_action_that_keeps_the_fence(moto_store: Store) -> None:
    lease = moto_store.lease("job", duration=60)
    old = lease.acquire()
    assert lease.break_() is True
    assert lease.break_() is False
    assert lease.acquire().fence == old.fence + 1


def test_fenced_write(moto_store: Store) -> None:
    stale = moto_store.lease("job", duration=0.05).acquire()
    put = {
        "Put": {
            "TableName": moto_store.table_name,
            "Item": {"pk": {"S": "out"}, "sk": {"S": "x"}, "by": {"N": str(stale.fence)}},
        }
    }
    stale.write(put)
    time.sleep(0.1)
    moto_store.lease("job", duration=30).acquire()
    with pytest.raises(LeaseLost, match="not applied"):
        stale.write(put)


@pytest.mark.parametrize("duration", [0, -1, "10", True])
def test_bad_duration(moto_store: Store, duration: object) -> None:
    with pytest.raises(InvalidArgument, match="duration"):
        moto_store.lease("x", duration=duration)  # type: ignore[arg-type]
