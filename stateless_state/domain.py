"""The input domain: what the library accepts as a name, an instant, a duration or a number.

Every primitive and pattern validates its arguments here, before any request, so a bad input is
an :class:`~stateless_state.errors.InvalidArgument` that names the field and the allowed range,
and nothing is half-written.

* **Names, keys and tokens** are opaque strings: any non-empty Unicode string of at most
  :data:`MAX_NAME_BYTES` bytes in UTF-8. ``#``, ``/``, spaces, control characters, emoji, a name
  that is a prefix of another: all allowed, and :mod:`stateless_state.keys` maps distinct names
  to distinct items. Rejected: the empty string, non-strings, longer strings, and lone
  surrogates (``"\\ud800"``: not encodable as UTF-8, so DynamoDB cannot store them).
* **Instants** are an aware :class:`~datetime.datetime` or epoch seconds (``int``/``float``),
  from :data:`MIN_INSTANT` (0001-01-01) to :data:`MAX_INSTANT` (9999-12-31), before the epoch
  included. A naive datetime is rejected: its time zone would be a guess.
* **Durations** are a :class:`~datetime.timedelta` or seconds; finite, and positive (or
  non-negative where zero means "none").
* **Options** of a primitive are the keys of its ``*Options`` TypedDict (:func:`options`); a
  name it does not declare, or a required one left out, is a :class:`TypeError`, as Python
  raises for a wrong keyword argument.
* **Numbers** stored in DynamoDB: finite, at most 38 significant digits, magnitude from 1E-130 to
  below 1E+126 (DynamoDB's range). Exact integers (counters, sizes) are bounded by
  :data:`MAX_INTEGER`, 38 digits, so any sum DynamoDB computes stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from . import clock
from .errors import InvalidArgument

__all__ = [
    "MAX_INSTANT",
    "MAX_INTEGER",
    "MAX_NAME_BYTES",
    "MIN_INSTANT",
    "check_storable",
    "duration",
    "instant",
    "integer",
    "name",
    "number",
    "options",
]

MAX_NAME_BYTES = 255
"""The longest name, key or token, in bytes of UTF-8."""
MIN_INSTANT = datetime(1, 1, 1, tzinfo=UTC).timestamp()
"""The earliest instant accepted, in epoch seconds: 0001-01-01T00:00:00Z."""
MAX_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest instant accepted, in epoch seconds: 9999-12-31T23:59:59Z."""
MAX_INTEGER = 10**38 - 1
"""The largest integer DynamoDB stores exactly (38 digits): the bound of counters and sizes."""


def name(kind: str, value: object) -> str:
    """``value`` if it is a valid name, key or token (see the module docstring)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{kind} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{kind} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"{kind} {value!r} contains a lone surrogate, which is not valid Unicode text and "
            "cannot be stored; decode your input with errors='replace' first"
        ) from None
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(
            f"{kind} is {size} bytes in UTF-8; the limit is {MAX_NAME_BYTES}. "
            "Hash long identifiers (e.g. hashlib.sha256(x).hexdigest()) before passing them."
        )
    return value


def options(
    given: Mapping[str, object],
    declared: Collection[str],
    what: str,
    *,
    required: Collection[str] = (),
) -> None:
    """Raise :class:`TypeError` unless every option in ``given`` is ``declared`` (the keys of
    ``what``'s ``*Options`` TypedDict) and every ``required`` one is there. Required names are
    passed because Python 3.11 loses ``Required[...]`` under postponed annotations."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TypeError(
            f"{what} got an unexpected option {unknown[0]!r}; its options are "
            f"{', '.join(sorted(declared))}"
        )
    missing = [n for n in required if n not in given]
    if missing:
        raise TypeError(f"{what} needs the option {missing[0]!r}")


def instant(value: object, what: str) -> float:
    """Epoch seconds of an aware datetime or a number of epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument(
                f"{what} is a naive datetime ({value.isoformat()}); give it a time zone, e.g. "
                "datetime(..., tzinfo=timezone.utc), or pass epoch seconds"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(
            f"{what} must be an aware datetime or epoch seconds (int or float), "
            f"got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or not MIN_INSTANT <= value <= MAX_INSTANT:
        raise InvalidArgument(
            f"{what} {value!r} is not an instant: epoch seconds must be finite and between "
            f"{MIN_INSTANT:.0f} (0001-01-01) and {MAX_INSTANT:.0f} (9999-12-31){_unit_hint(value)}"
        )
    return float(value)


def _unit_hint(value: float) -> str:
    """For a number past year 9999 that is an instant in a finer unit (JavaScript's
    ``Date.now()``, Java's ``currentTimeMillis()``, ``time.time_ns()``): which unit, and the
    instant it would be in seconds."""
    if not math.isfinite(value) or value <= MAX_INSTANT:
        return ""
    for unit, per_second in (
        ("milliseconds", 10**3),
        ("microseconds", 10**6),
        ("nanoseconds", 10**9),
    ):
        seconds = value / per_second
        if seconds <= MAX_INSTANT:
            return (
                f"; did you pass {unit}? Divide by {per_second:,}: {value!r} {unit} are "
                f"{clock.iso8601(seconds)}"
            )
    return ""


def duration(value: object, what: str, *, allow_zero: bool = False) -> float:
    """Seconds of a timedelta or a number of seconds: finite, positive (or zero if allowed)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidArgument(
            f"{what} must be a timedelta or a number of seconds, got {type(value).__name__}"
        )
    low_ok = seconds >= 0 if allow_zero else seconds > 0
    # About 31,700 years: far past any real duration, and instants plus it stay representable.
    if not math.isfinite(seconds) or not low_ok or seconds > 1e12:
        bound = "non-negative" if allow_zero else "positive"
        raise InvalidArgument(
            f"{what} must be a finite, {bound} duration of at most 1e12 seconds, got {value!r}"
        )
    return float(seconds)


def integer(
    value: object, what: str, *, minimum: int = -MAX_INTEGER, maximum: int = MAX_INTEGER
) -> int:
    """``value`` if it is an int (not a bool) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidArgument(f"{what} {value} is out of range; allowed: {minimum} to {maximum}")
    return value


def number(value: object, what: str) -> int | float:
    """``value`` if it is an int or float that DynamoDB can store exactly as given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number, got {type(value).__name__} {value!r}")
    _check_dynamodb_number(value, what)
    return value


def _check_dynamodb_number(value: int | float, what: str) -> None:
    if isinstance(value, int):
        if -MAX_INTEGER <= value <= MAX_INTEGER:
            return
        digits = len(str(abs(value)).rstrip("0"))
        fits = digits <= 38 and abs(value) < 10**126
    else:
        if not math.isfinite(value):
            raise InvalidArgument(f"{what} is {value!r}; DynamoDB stores only finite numbers")
        # A float's repr has at most 17 significant digits: only its magnitude can be out.
        fits = value == 0 or 1e-130 <= abs(value) < 1e126
    if not fits:
        raise InvalidArgument(
            f"{what} {value!r} cannot be stored in DynamoDB: numbers have at most 38 significant "
            "digits and a magnitude from 1E-130 to below 1E+126 (store it as a string instead)"
        )


def check_storable(value: Any, what: str) -> None:
    """Raise :class:`InvalidArgument` unless every number inside ``value`` (a JSON-like tree of
    dicts, lists, str, int, float, bool and None) is one DynamoDB can store."""
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return
    if isinstance(value, int | float):
        _check_dynamodb_number(value, what)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidArgument(f"{what} has a non-string key {k!r}; use str keys")
            check_storable(v, f"{what}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_storable(v, f"{what}[{i}]")
    else:
        raise InvalidArgument(
            f"{what} is a {type(value).__name__}; use dicts, lists, str, int, float, bool or None"
        )
