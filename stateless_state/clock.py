"""Time and chance: the one seam through which the library reads clocks, sleeps and draws chance.

Every wall-clock instant (``ttl``, lease expiry, ``opened_at``), every monotonic deadline, every
sleep between retries, every backoff jitter, every nonce and every owner name the library writes
comes from the
:class:`Clock` that is current in the calling context. In production that is :data:`SYSTEM`
(``time`` and ``secrets``); :mod:`stateless_state.testing.simulation` installs a virtual clock
per simulated invocation, so a 30 s lease expiry costs no wall time, each invocation can run with
its own skew, and a replay draws the same nonces and sends the same requests.

The current clock is held in a :class:`~contextvars.ContextVar`: a new thread starts on
:data:`SYSTEM`, and :func:`using` changes it only for the code it wraps. Cost: one context
variable read per call.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    # Only named in annotations: DynamoDB's numbers as boto3 decodes them. Importing decimal
    # would cost every cold start for a type float() takes anyway.
    from decimal import Decimal

__all__ = [
    "SYSTEM",
    "Clock",
    "SystemClock",
    "current",
    "describe",
    "identity",
    "iso8601",
    "monotonic",
    "now",
    "randrange",
    "relative",
    "sleep",
    "token_hex",
    "uniform",
    "using",
]


class Clock(Protocol):
    """What the library asks of time and chance."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (what ``ttl`` and expiry instants are made of)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (what deadlines are made of)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    def uniform(self, a: float, b: float) -> float:
        """A random float in ``[a, b]`` (backoff jitter)."""
        ...

    def randrange(self, n: int) -> int:
        """A random integer in ``[0, n)`` (a shard to write to)."""
        ...

    def token_hex(self, nbytes: int) -> str:
        """``nbytes`` random bytes as hex (nonces, owner tokens): unguessable in production."""
        ...

    def identity(self) -> str:
        """Who is running, for readable owner names (``host:pid`` in production)."""
        ...


class SystemClock:
    """The machine's clocks, :func:`time.sleep`, :mod:`random` for jitter, :mod:`secrets` for
    nonces."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def uniform(self, a: float, b: float) -> float:
        return random.uniform(a, b)

    def randrange(self, n: int) -> int:
        return random.randrange(n)

    def token_hex(self, nbytes: int) -> str:
        return secrets.token_hex(nbytes)

    def identity(self) -> str:
        import os
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"


SYSTEM: Final[Clock] = SystemClock()
"""The machine's clock and chance: the current :class:`Clock` wherever :func:`using` has not set
another."""
_current: ContextVar[Clock] = ContextVar("stateless_state.clock", default=SYSTEM)


def current() -> Clock:
    """The clock in force in this context."""
    return _current.get()


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` current for the code inside the ``with`` block (this context only)."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


def now() -> float:
    """The current clock's wall-clock time, in epoch seconds."""
    return _current.get().time()


def monotonic() -> float:
    """The current clock's monotonic time."""
    return _current.get().monotonic()


def sleep(seconds: float) -> None:
    """Sleep on the current clock (virtual time under a simulation: no wall time passes)."""
    _current.get().sleep(seconds)


def uniform(a: float, b: float) -> float:
    """A random float in ``[a, b]`` from the current clock."""
    return _current.get().uniform(a, b)


def randrange(n: int) -> int:
    """A random integer in ``[0, n)`` from the current clock."""
    return _current.get().randrange(n)


def token_hex(nbytes: int) -> str:
    """A random hex token of ``nbytes`` bytes from the current clock."""
    return _current.get().token_hex(nbytes)


def identity() -> str:
    """Who is running, from the current clock: ``host:pid`` in production, the invocation's name
    under a simulation (so that owner names, and the requests carrying them, replay the same)."""
    return _current.get().identity()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def iso8601(t: float | int | Decimal) -> str:
    """Epoch seconds as ISO 8601 in UTC: ``2025-06-01T12:00:00Z``, with milliseconds when ``t``
    has a fraction (``...T12:00:00.250Z``). Any instant from year 1 to 9999 (the input domain's
    range, before 1970 included); outside it, or not finite, the number as given."""
    seconds = float(t)
    if not math.isfinite(seconds):
        return repr(seconds)
    try:
        # Added to the epoch, not fromtimestamp(): that refuses instants before 1970 on some
        # platforms.
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return repr(seconds)
    spec = "seconds" if seconds == int(seconds) else "milliseconds"
    return moment.isoformat(timespec=spec).removesuffix("+00:00") + "Z"


# (unit, its seconds, up to how many of it are shown before the next unit is used)
_UNITS: Final = (("s", 1, 90), ("min", 60, 90), ("h", 3600, 48), ("days", 86400, 730))


def relative(t: float | int | Decimal, now: float | None = None) -> str:
    """How far ``t`` is from ``now`` (default: the current clock's time), in one rounded unit:
    ``"in 3 min"``, ``"2 h ago"``, ``"now"`` (less than a second either way)."""
    delta = float(t) - (_current.get().time() if now is None else now)
    if not math.isfinite(delta):
        return "never" if delta > 0 else "long ago"
    size = abs(delta)
    if size < 1:
        return "now"
    unit, seconds = next(
        ((u, per) for u, per, most in _UNITS if size < per * most), ("years", 365.25 * 86400)
    )
    amount = f"{round(size / seconds)} {unit}"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def describe(t: float | int | Decimal | None, now: float | None = None) -> str:
    """An instant as people read it, in messages and the CLI: ISO 8601 with how far it is from
    now, ``2025-06-01T12:00:00Z (in 3 min)``; ``"never"`` for None. Never a raw epoch."""
    if t is None:
        return "never"
    return f"{iso8601(t)} ({relative(t, now)})"
