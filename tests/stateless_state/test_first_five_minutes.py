"""What a new user meets first, outside the CLI: instants shown as ISO 8601 with how far they are
(never raw epochs, in error messages too), an epoch in milliseconds told as such, and the
decorator's two common slips (a bare ``@idempotent``, an ``async def`` handler) refused when the
function is decorated, not when it is first invoked."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from patterns.batcher import Arrival
from stateless_state import (
    AlreadyInProgress,
    InvalidArgument,
    LeaseUnavailable,
    Store,
    clock,
    domain,
    idempotent,
)

# An epoch in seconds as a float repr or an int: what a message must never show alone.
RAW_EPOCH = re.compile(r"(?<![\d.])1[0-9]{9}(\.[0-9]+)?(?![\d])")


def test_instants_read_as_iso_8601_with_how_far_they_are() -> None:
    now = 1_750_000_000.0  # 2025-06-15T15:06:40Z
    assert clock.iso8601(now) == "2025-06-15T15:06:40Z"
    assert clock.iso8601(now + 0.25) == "2025-06-15T15:06:40.250Z"
    assert clock.iso8601(0) == "1970-01-01T00:00:00Z"
    assert clock.iso8601(domain.MIN_INSTANT) == "0001-01-01T00:00:00Z"
    assert clock.iso8601(domain.MAX_INSTANT) == "9999-12-31T23:59:59Z"
    cases = {
        0.4: "now",
        -0.4: "now",
        42: "in 42 s",
        180: "in 3 min",
        -180: "3 min ago",
        3 * 3600: "in 3 h",
        -5 * 86400: "5 days ago",
        3 * 365.25 * 86400: "in 3 years",
    }
    for delta, text in cases.items():
        assert clock.relative(now + delta, now) == text, delta
    assert clock.describe(now + 180, now) == "2025-06-15T15:09:40Z (in 3 min)"
    assert clock.describe(None) == "never"


def test_a_held_lease_names_its_expiry_as_a_time_not_an_epoch(moto_store: Store) -> None:
    moto_store.lease("nightly", duration=timedelta(minutes=3), owner="a").acquire()
    with pytest.raises(LeaseUnavailable) as e:
        moto_store.lease("nightly", duration=60, owner="b").acquire()
    message = str(e.value)
    assert re.search(r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z \(in 3 min\)", message)
    assert not RAW_EPOCH.search(message), message


def test_a_claim_in_progress_names_its_lease_as_a_time(moto_store: Store) -> None:
    records = moto_store.idempotency("orders", in_progress_timeout=timedelta(minutes=10))
    records.claim("order-1")
    with pytest.raises(AlreadyInProgress) as e:
        records.claim("order-1")
    message = str(e.value)
    assert "(in 10 min)" in message and not RAW_EPOCH.search(message), message


@pytest.mark.parametrize(
    ("scale", "unit"),
    [(10**3, "milliseconds"), (10**6, "microseconds"), (10**9, "nanoseconds")],
)
def test_an_epoch_in_a_finer_unit_gets_a_hint(scale: int, unit: str) -> None:
    seconds = 1_750_000_000
    for value in (seconds * scale, float(seconds * scale)):
        with pytest.raises(InvalidArgument) as e:
            domain.instant(value, "Arrival.at")
        message = str(e.value)
        assert f"did you pass {unit}?" in message, message
        assert f"Divide by {scale:,}" in message and "2025-06-15T15:06:40Z" in message


def test_the_hint_reaches_every_instant_a_user_passes(moto_store: Store) -> None:
    ms = int(time.time() * 1000)
    before = moto_store.metrics.as_dict()
    with pytest.raises(InvalidArgument, match="did you pass milliseconds"):
        Arrival("s3://b/k", 1, ms, {})
    with pytest.raises(InvalidArgument, match="did you pass milliseconds"):
        moto_store.sessions("clicks", gap=60, max_duration=3600).add("u1", ms)
    assert moto_store.metrics.as_dict() == before, "refused before any request"


@pytest.mark.parametrize("value", [1e30, -1e13, float("inf"), float("nan")])
def test_no_hint_where_no_finer_unit_fits(value: float) -> None:
    with pytest.raises(InvalidArgument) as e:
        domain.instant(value, "at")
    assert "did you pass" not in str(e.value)


def test_a_bare_idempotent_fails_at_decoration_with_the_usage() -> None:
    with pytest.raises(InvalidArgument) as e:

        @idempotent
        def handler(event: dict[str, Any], context: Any) -> Any:
            return event

    message = str(e.value)
    assert "without arguments on" in message and "handler" in message
    assert "@idempotent(store, key=...)" in message


def test_idempotent_without_a_store_names_what_it_got() -> None:
    with pytest.raises(InvalidArgument, match=r"needs a stateless_state\.Store, got str"):
        idempotent("my-table")


def test_an_async_handler_is_refused_at_decoration(moto_store: Store) -> None:
    guard = idempotent(moto_store, key="id")
    before = moto_store.metrics.as_dict()

    async def handler(event: dict[str, Any], context: Any) -> Any:
        return event

    async def stream(event: dict[str, Any]) -> AsyncIterator[int]:
        yield 1

    class Handler:
        async def __call__(self, event: dict[str, Any], context: Any) -> Any:
            return event

    for fn in (handler, stream, Handler()):
        with pytest.raises(InvalidArgument) as e:
            guard(fn)
        message = str(e.value)
        assert "async def" in message and "asyncio.run" in message, message
    assert moto_store.metrics.as_dict() == before, "refused before any request"
