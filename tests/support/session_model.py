"""A plain in-memory sessionizer with the library's semantics, written independently of it:
the reference the DynamoDB-backed sessions are checked against."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelSession:
    key: str
    start: float
    last: float
    count: int
    sum: float
    min: float
    max: float
    closed: bool = False

    def summary(self) -> tuple[str, float, float, int, float, float, float]:
        return (self.key, self.start, self.last, self.count, self.sum, self.min, self.max)


@dataclass
class ModelSessions:
    gap: float
    max_duration: float
    allowed_lateness: float
    sessions: list[ModelSession] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)

    def add(self, key: str, at: float, value: float, token: str | None) -> str:
        touching = [
            s for s in self.sessions if s.key == key and s.start - self.gap < at < s.last + self.gap
        ]
        if any(s.closed for s in touching):
            return "duplicate" if token in self.tokens else "late"
        if token is not None and token in self.tokens:
            return "duplicate"
        joined = self._joined(touching, at)
        merged = ModelSession(key, at, at, 1, value, value, value)
        for s in joined:
            merged = ModelSession(
                key,
                min(merged.start, s.start),
                max(merged.last, s.last),
                merged.count + s.count,
                merged.sum + s.sum,
                min(merged.min, s.min),
                max(merged.max, s.max),
            )
            self.sessions.remove(s)
        self.sessions.append(merged)
        if token is not None:
            self.tokens.add(token)
        return "merged" if len(joined) > 1 else "joined" if joined else "new"

    def _joined(self, touching: list[ModelSession], at: float) -> list[ModelSession]:
        if not touching:
            return []
        span = max([at, *(s.last for s in touching)]) - min([at, *(s.start for s in touching)])
        if span <= self.max_duration:
            return touching
        for s in sorted(touching, key=lambda s: -s.start):
            if max(s.last, at) - min(s.start, at) <= self.max_duration:
                return [s]
        return []

    def close_due(self, now: float) -> set[tuple[str, float, float, int, float, float, float]]:
        out = set()
        for s in self.sessions:
            if not s.closed and s.last + self.gap + self.allowed_lateness <= now:
                s.closed = True
                out.add(s.summary())
        return out


@dataclass
class ModelWindows:
    """Tumbling windows of ``size``: an event belongs to the window starting at the multiple of
    ``size`` at or before it; a window closes ``size + allowed_lateness`` after its start."""

    size: float
    allowed_lateness: float
    windows: dict[tuple[str, float], ModelSession] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def add(self, key: str, at: float, value: float, token: str | None) -> str:
        start = (at // self.size) * self.size
        w = self.windows.get((key, start))
        if w is not None and w.closed:
            return "duplicate" if token in self.tokens else "late"
        if token is not None and token in self.tokens:
            return "duplicate"
        if token is not None:
            self.tokens.add(token)
        if w is None:
            self.windows[(key, start)] = ModelSession(key, start, at, 1, value, value, value)
            return "new"
        w.last, w.count, w.sum = max(w.last, at), w.count + 1, w.sum + value
        w.min, w.max = min(w.min, value), max(w.max, value)
        return "joined"

    def close_due(self, now: float) -> set[tuple[str, float, float, int, float, float, float]]:
        out = set()
        for w in self.windows.values():
            if not w.closed and w.start + self.size + self.allowed_lateness <= now:
                w.closed = True
                out.add(w.summary())
        return out
