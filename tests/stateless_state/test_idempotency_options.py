"""Idempotency's and leases' options: each one's default and rule in one place (the *Settings
classes), and the same rules whichever way the options arrive (store, decorator, class)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stateless_state import InvalidArgument, Store, idempotent
from stateless_state.idempotency import IdempotencySettings
from stateless_state.lease import LeaseSettings, lease_seconds


def test_idempotency_defaults_are_an_hour_a_quarter_and_no_cache() -> None:
    assert IdempotencySettings.of({}) == IdempotencySettings(3600.0, 900.0, 0)
    given = IdempotencySettings.of({"expires_after": timedelta(minutes=2), "cache_size": 5})
    assert given == IdempotencySettings(120.0, 900.0, 5)


def test_lease_defaults_are_a_minute_and_a_host_owner() -> None:
    settings = LeaseSettings.of({})
    assert settings.duration == 60.0 and settings.owner.count(":") == 2
    assert LeaseSettings.of({"duration": 5, "owner": "me"}) == LeaseSettings(5.0, "me")
    assert lease_seconds(timedelta(seconds=3)) == 3.0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"expires_after": 0}, "expires_after"),
        ({"in_progress_timeout": -1}, "in_progress_timeout"),
        ({"cache_size": -1}, "cache_size"),
        ({"cache_size": True}, "cache_size"),
    ],
)
def test_each_way_in_applies_the_same_rule(
    moto_store: Store, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        moto_store.idempotency("n", **options)
    with pytest.raises(InvalidArgument, match=named):
        idempotent(moto_store, **options)(lambda event, context: None)


@pytest.mark.parametrize(
    ("options", "named"), [({"duration": 0}, "duration"), ({"owner": ""}, "owner")]
)
def test_a_lease_refuses_a_bad_option(
    moto_store: Store, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidArgument, match=named):
        moto_store.lease("l", **options)
    held = moto_store.lease("l").acquire()
    with pytest.raises(InvalidArgument, match="duration"):
        held.renew(0)


def test_an_option_that_does_not_exist_is_a_type_error(moto_store: Store) -> None:
    with pytest.raises(TypeError, match="expire_after"):
        moto_store.idempotency("n", expire_after=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="durration"):
        moto_store.lease("l", durration=5)  # type: ignore[call-arg]
