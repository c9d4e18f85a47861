"""Every bad input is a library error that names the field, raised before any request: the
table is unchanged afterwards. And every good input over the whole domain is accepted."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns.batcher import Arrival, Batcher, Thresholds
from stateless_state import (
    InvalidArgument,
    SessionWindows,
    Store,
    TumblingWindows,
    domain,
    keys,
)
from stateless_state.testing.strategies import bad_numbers, hostile_names, instants


def scan(store: Store) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = store.client.scan(TableName=store.table_name)["Items"]
    return items


def refused(store: Store, call: Callable[[], object], match: str) -> None:
    """``call`` raises InvalidArgument matching ``match`` and writes nothing."""
    before = scan(store)
    with pytest.raises(InvalidArgument, match=match):
        call()
    assert scan(store) == before, "nothing may be written by a refused call"


NAIVE = datetime(2026, 1, 1, 12, 0)


def test_bad_numbers_and_durations_are_refused_before_any_write(moto_store: Store) -> None:
    s = moto_store
    c = s.counter("c")
    c.add(1)
    refused(s, lambda: c.add(2**130), r"amount .* is out of range")
    refused(s, lambda: c.add(10**38), r"amount .* is out of range")
    refused(s, lambda: c.add(1, token="t", limit=2**130), r"limit .* is out of range")
    refused(s, lambda: c.add(1.5), "amount must be an int")  # type: ignore[arg-type]
    refused(s, lambda: c.add(True), "amount must be an int")
    refused(s, lambda: s.lease("l", duration=float("nan")), "duration must be a finite")
    refused(s, lambda: s.lease("l", duration=float("inf")), "duration must be a finite")
    refused(s, lambda: s.lease("l", duration=-1), "duration must be a finite, positive")
    refused(s, lambda: s.idempotency("n", expires_after=float("nan")), "expires_after")
    refused(s, lambda: s.idempotency("n", in_progress_timeout=0), "in_progress_timeout")
    refused(s, lambda: s.counter("c", token_ttl=float("nan")), "token_ttl")
    refused(s, lambda: s.versioned("v", keep_for=float("nan")), "keep_for")
    refused(s, lambda: s.versioned("v", keep_last=0), "keep_last")
    refused(s, lambda: s.sessions("s", gap=float("nan"), max_duration=10), "gap")
    refused(s, lambda: s.sessions("s", gap=1, max_duration=0), "max_duration")
    refused(s, lambda: s.sessions("s", gap=1, max_duration=9, retention=-1), "retention")
    refused(s, lambda: s.windows("w", size=float("inf")), "size")
    assert c.get() == 1


def test_an_exact_counter_cannot_overflow(moto_store: Store) -> None:
    c = moto_store.counter("big")
    c.add(domain.MAX_INTEGER, token="a")
    refused(moto_store, lambda: c.add(1, token="b"), "leaves the range of an exact counter")
    plain = moto_store.counter("big-plain")
    plain.add(domain.MAX_INTEGER)
    with pytest.raises(InvalidArgument):
        plain.add(1)
    assert plain.get() == domain.MAX_INTEGER


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e200, 2**130, "1", None, NAIVE])
def test_bad_event_times_and_values(moto_store: Store, bad: Any) -> None:
    sessions = moto_store.sessions("s", gap=10, max_duration=100)
    windows = moto_store.windows("w", size=60)
    targets: list[SessionWindows | TumblingWindows] = [sessions, windows]
    for target in targets:
        refused(moto_store, functools.partial(target.add, "k", bad), "at ")
        if not isinstance(bad, datetime):
            refused(moto_store, functools.partial(target.add, "k", 1000.0, bad), "value")
        if bad is not None:  # None is the wall clock
            refused(moto_store, functools.partial(target.close_due, now=bad), "now")
    if bad is not None:
        refused(moto_store, lambda: Batcher(moto_store, "b").seal_due(now=bad), "now")


def test_names_keys_and_tokens(moto_store: Store) -> None:
    s = moto_store
    sessions = s.sessions("s", gap=10, max_duration=100)
    refused(s, lambda: s.counter(""), "counter name must not be empty")
    refused(s, lambda: s.counter("x" * 256), "256 bytes in UTF-8; the limit is 255")
    refused(s, lambda: s.counter("é" * 128), "256 bytes")
    refused(s, lambda: s.counter("\ud800"), "lone surrogate")
    refused(s, lambda: s.counter(7), "must be a str")  # type: ignore[arg-type]
    refused(s, lambda: s.counter("c").add(1, token=""), "token must not be empty")
    refused(s, lambda: sessions.add("", 1.0), "key must not be empty")
    refused(s, lambda: sessions.add("k", 1.0, token="t" * 300), "token is 300 bytes")
    refused(s, lambda: s.idempotency("n").claim(""), "non-empty")
    refused(s, lambda: s.idempotency("n").claim("\udfff"), "lone surrogate")
    # Names at the limit, made of the characters that need escaping, fit every key.
    longest = "#%" * 127 + "#"
    assert len(longest.encode()) == domain.MAX_NAME_BYTES
    sessions = s.sessions(longest, gap=10, max_duration=100)
    assert sessions.add(longest, 1.0, token=longest).created
    assert s.counter(longest).add(1, token=longest).applied
    assert len(keys.session_token("sessions", longest, longest).pk.encode()) <= 2048


def test_arrivals_are_validated_when_built() -> None:
    ok = Arrival("a", 0, datetime(1999, 1, 1, tzinfo=UTC), {"n": 1.5})
    assert ok.at == datetime(1999, 1, 1, tzinfo=UTC).timestamp()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"size": 2**130}, r"Arrival.size .* out of range; allowed: 0 to 9223372036854775807"),
        ({"size": -1}, "Arrival.size -1 is out of range"),
        ({"size": 1.0}, "Arrival.size must be an int"),
        ({"at": float("nan")}, "Arrival.at nan is not an instant"),
        ({"at": NAIVE}, "Arrival.at is a naive datetime"),
        ({"at": 1e300}, "Arrival.at .* is not an instant"),
        ({"data": {"x": float("nan")}}, r"Arrival.data\['x'\] is nan"),
        ({"data": {"x": [1, 2**130]}}, r"Arrival.data\['x'\]\[1\] .* cannot be stored"),
        ({"data": {1: "x"}}, "non-string key"),
        ({"data": {"x": object()}}, "is a object"),
        ({"data": {"x": "y" * 70_000}}, "the limit is 65536"),
        ({"id": ""}, "non-empty"),
        ({"id": "x" * 5000}, "the limit is 4096"),
    ]
    for kwargs, match in cases:
        args: dict[str, Any] = {"id": "a", "size": 1, "at": 1.0, "data": {}} | kwargs
        with pytest.raises(InvalidArgument, match=match):
            Arrival(**args)


@settings(max_examples=60, deadline=None)
@given(value=bad_numbers())
def test_no_bad_number_reaches_dynamodb(value: Any) -> None:
    with pytest.raises(InvalidArgument):
        domain.number(value, "x")
    if not isinstance(value, bool):  # True is a fine BOOL inside data
        with pytest.raises(InvalidArgument, match=r"Arrival\.data"):
            Arrival("a", 1, 1.0, {"x": value})


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(),
        st.integers(-(10**130), 10**130),
        st.sampled_from([10**38, 10**38 + 1, 9 * 10**125, 10**126, 123 * 10**100, 1e-130, 1e126]),
    )
)
def test_number_check_matches_dynamodb_range(value: float) -> None:
    """Accepted exactly when DynamoDB can store the value: 38 digits, 1E-130 to below 1E+126."""
    from decimal import Decimal, localcontext

    with localcontext(prec=400):
        d = (Decimal(repr(value)) if isinstance(value, float) else Decimal(value)).normalize()
        fits = d == 0 or (
            len(d.as_tuple().digits) <= 38 and Decimal("1E-130") <= abs(d) < Decimal("1E126")
        )
    if fits:
        assert domain.number(value, "x") == value
    else:
        with pytest.raises(InvalidArgument, match="cannot be stored"):
            domain.number(value, "x")


def test_instants_accept_aware_datetimes_and_epoch_seconds() -> None:
    tz = timezone(timedelta(hours=-7))
    assert domain.instant(datetime(1970, 1, 1, tzinfo=UTC), "t") == 0.0
    assert domain.instant(datetime(1969, 12, 31, 17, tzinfo=tz), "t") == 0.0
    assert domain.instant(-86400, "t") == -86400.0
    assert domain.instant(datetime(1, 1, 1, tzinfo=UTC), "t") == domain.MIN_INSTANT
    with pytest.raises(InvalidArgument, match="naive"):
        domain.instant(NAIVE, "t")
    with pytest.raises(InvalidArgument, match="between"):
        domain.instant(domain.MIN_INSTANT - 1, "t")
    assert math.isclose(domain.duration(timedelta(days=1), "d"), 86400.0)


@settings(max_examples=50, deadline=None)
@given(a=instants(years_back=2000, minutes_ahead=10**6), b=instants(years_back=2000))
def test_instant_keys_sort_in_time_order(a: float, b: float) -> None:
    assert (keys.instant_part(a) < keys.instant_part(b)) == (round(a * 1e6) < round(b * 1e6))
    assert len(keys.instant_part(a)) == 20


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(hostile_names(), min_size=1, max_size=4))
def test_the_key_encoding_is_injective(parts: list[str]) -> None:
    encoded = keys.join(*parts)
    decoded = [p.replace("%23", "#").replace("%25", "%") for p in encoded.split("#")]
    assert decoded == parts


def test_thresholds_and_batcher_settings() -> None:
    with pytest.raises(InvalidArgument, match=r"Thresholds\.age"):
        Thresholds(age=float("nan"))
    assert Thresholds(age=timedelta(minutes=1)).age_seconds == 60.0


def test_the_reported_collisions_are_gone(moto_store: Store) -> None:
    """The exact leaks found on the first wave's layout, as regressions."""
    ab = moto_store.sessions("a#b", gap=10, max_duration=100)
    a = moto_store.sessions("a", gap=10, max_duration=100)
    ab.add("c", 1000.0)
    assert a.sessions("b#c") == []
    assert not a.add("x", 1000.0, token="b#c").duplicate
    assert not ab.add("y", 1000.0, token="c").duplicate, "another stream's token is no duplicate"
    wab, wa = moto_store.windows("a#b", size=60), moto_store.windows("a", size=60)
    wab.add("c", 1000.0)
    assert wa.sessions("b#c") == []
    assert [s.key for s in ab.close_due(now=10_000.0)] == ["c", "y"]
    assert [s.key for s in a.close_due(now=10_000.0)] == ["x"]


def test_event_times_before_1970_keep_one_session(moto_store: Store) -> None:
    s = moto_store.sessions("old", gap=10, max_duration=100)
    for t in (-5.0, -12.0, 2.0):
        s.add("k", t)
    [session] = s.sessions("k")
    assert (session.start, session.last, session.count) == (-12.0, 2.0, 3)
    w = moto_store.windows("old", size=60)
    for t in (-61.0, -60.0, -0.5, 0.0):
        w.add("k", datetime.fromtimestamp(t, UTC))
    assert [(x.start, x.count) for x in w.sessions("k")] == [(-120.0, 1), (-60.0, 2), (0.0, 1)]
    assert len(w.close_due(now=datetime(1970, 1, 1, 0, 2, tzinfo=UTC))) == 3
