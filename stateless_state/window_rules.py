"""The arithmetic of session and tumbling windows, apart from how they are stored.

What each kind of window takes as options (checked once, with their defaults), when a session or
window is due to close, how long its items must outlive their last write, which sessions an event
joins and what their aggregates become. Pure functions of event time: no request and no clock
(the stores add the wall clock for expiry). The stores are :mod:`stateless_state.sessions` and
:mod:`stateless_state.tumbling`, on :mod:`stateless_state.window_store`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, Required, TypedDict

from . import domain
from .errors import InvalidArgument

__all__ = [
    "DEFAULT_RETENTION",
    "Instant",
    "Session",
    "SessionOptions",
    "SessionRules",
    "SessionUpdate",
    "WindowOptions",
    "WindowRules",
    "WindowSpan",
    "combine",
    "plan_session",
]

Instant = datetime | float
"""An instant of event time: an aware ``datetime`` or epoch seconds."""
DEFAULT_RETENTION = timedelta(days=7)
"""How long window items outlive their last write (plus the gap, lateness and ``max_duration``), and
a closed session its close: wall-clock time, never event time."""
DEFAULT_ALLOWED_LATENESS = 0.0


class SessionOptions(TypedDict, total=False):
    """The options of session windows, as ``store.sessions(name, **options)`` takes them;
    their defaults and checks are :meth:`SessionRules.of`."""

    gap: Required[timedelta | float]
    max_duration: Required[timedelta | float]
    allowed_lateness: timedelta | float
    retention: timedelta | float


class WindowOptions(TypedDict, total=False):
    """The options of tumbling windows, as ``store.windows(name, **options)`` takes them;
    their defaults and checks are :meth:`WindowRules.of`."""

    size: Required[timedelta | float]
    allowed_lateness: timedelta | float
    retention: timedelta | float


@dataclass(frozen=True, slots=True)
class Session:
    """One session (or tumbling window) of one key, with its aggregates. ``start`` and
    ``last`` are the first and last event times (epoch seconds)."""

    key: str
    id: str
    start: float
    last: float
    count: int
    sum: float
    min: float
    max: float
    closed: bool = False


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """What an add did. ``session`` is the session the event is now in (None when ``late`` or
    ``duplicate``); ``absorbed`` the ids of sessions merged into it."""

    session: Session | None
    absorbed: tuple[str, ...] = ()
    created: bool = False
    late: bool = False
    duplicate: bool = False


class WindowSpan(Protocol):
    """What a store of windows needs to know of its kind's arithmetic (all in seconds)."""

    @property
    def allowed_lateness(self) -> float: ...

    @property
    def retention(self) -> float: ...

    def due(self, s: Session) -> float:
        """The event time at which ``s`` may be closed."""
        ...

    def span(self) -> float:
        """The longest a session or window lasts from its start to its last event."""
        ...

    def hold(self) -> float:
        """How long past its span an open session or window waits to be closed."""
        ...


def _lateness(options: SessionOptions | WindowOptions) -> float:
    value = options.get("allowed_lateness", DEFAULT_ALLOWED_LATENESS)
    return domain.duration(value, "allowed_lateness", allow_zero=True)


def _retention(options: SessionOptions | WindowOptions) -> float:
    return domain.duration(options.get("retention", DEFAULT_RETENTION), "retention")


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Session windows' options, checked and completed with their defaults (the one place of
    both: no allowed lateness, a retention of 7 days), and the arithmetic they decide."""

    gap: float
    max_duration: float
    allowed_lateness: float
    retention: float

    @classmethod
    def of(cls, options: SessionOptions) -> SessionRules:
        """The rules ``options`` ask for; :class:`InvalidArgument` for a bad value,
        :class:`TypeError` for an option session windows do not take or a missing one."""
        declared = SessionOptions.__required_keys__ | SessionOptions.__optional_keys__
        domain.options(options, declared, "session windows", required=("gap", "max_duration"))
        return cls(
            gap=domain.duration(options["gap"], "gap"),
            max_duration=domain.duration(options["max_duration"], "max_duration"),
            allowed_lateness=_lateness(options),
            retention=_retention(options),
        )

    def due(self, s: Session) -> float:
        return s.last + self.gap + self.allowed_lateness

    def span(self) -> float:
        return self.max_duration

    def hold(self) -> float:
        return self.gap + self.allowed_lateness

    def reach(self, at: float) -> tuple[float, float]:
        """The starts of every session an event at ``at`` can touch."""
        return at - self.gap - self.max_duration, at + self.gap

    def touches(self, s: Session, at: float) -> bool:
        """An event at ``at`` is less than ``gap`` from ``s``: it joins or extends it."""
        return s.start - self.gap < at < s.last + self.gap


@dataclass(frozen=True, slots=True)
class WindowRules:
    """Tumbling windows' options, checked and completed with their defaults (the one place of
    both: no allowed lateness, a retention of 7 days), and the arithmetic they decide."""

    size: float
    allowed_lateness: float
    retention: float

    @classmethod
    def of(cls, options: WindowOptions) -> WindowRules:
        """The rules ``options`` ask for; :class:`InvalidArgument` for a bad value,
        :class:`TypeError` for an option tumbling windows do not take or a missing one."""
        declared = WindowOptions.__required_keys__ | WindowOptions.__optional_keys__
        domain.options(options, declared, "tumbling windows", required=("size",))
        return cls(
            size=domain.duration(options["size"], "size"),
            allowed_lateness=_lateness(options),
            retention=_retention(options),
        )

    def due(self, s: Session) -> float:
        return s.start + self.size + self.allowed_lateness

    def span(self) -> float:
        return self.size

    def hold(self) -> float:
        return self.allowed_lateness

    def start_of(self, at: float) -> float:
        """The start of the window holding an event at ``at``; :class:`InvalidArgument` when it
        would fall before year 1."""
        start = math.floor(at / self.size) * self.size
        if start < domain.MIN_INSTANT:
            raise InvalidArgument(
                f"the {self.size:g}-second window of at={at!r} would start before year 1; "
                "use a smaller size for events that old"
            )
        return start


def combine(a: Session, b: Session) -> Session:
    """``a`` with ``b``'s events added: ``a``'s key and id, the aggregates of both."""
    return Session(
        a.key,
        a.id,
        min(a.start, b.start),
        max(a.last, b.last),
        a.count + b.count,
        a.sum + b.sum,
        min(a.min, b.min),
        max(a.max, b.max),
    )


def plan_session(touching: list[Session], at: float, max_duration: float) -> frozenset[str]:
    """The ids of the sessions an event joins. All it touches (a merge) if the result stays
    within ``max_duration``; else the latest-starting one it can join within it; else none (the
    event starts a new session)."""
    if not touching:
        return frozenset()
    start = min([at, *(s.start for s in touching)])
    last = max([at, *(s.last for s in touching)])
    if last - start <= max_duration:
        return frozenset(s.id for s in touching)
    for s in sorted(touching, key=lambda s: s.start, reverse=True):
        if max(s.last, at) - min(s.start, at) <= max_duration:
            return frozenset({s.id})
    return frozenset()
