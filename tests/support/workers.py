"""Functions run in worker processes by the race tests (importable by the spawn start method)."""

from __future__ import annotations

from typing import Any

from stateless_state import LimitExceeded, Store
from stateless_state.testing.service import local_client


def _store(endpoint: str, table: str) -> Store:
    return Store(table, client=local_client("dynamodb", endpoint))


def token_adds(endpoint: str, table: str, name: str, tokens: list[str]) -> list[tuple[Any, ...]]:
    """Add 1 per token, each token submitted as given (duplicates included)."""
    c = _store(endpoint, table).counter(name)
    out = []
    for t in tokens:
        r = c.add(1, token=t)
        out.append((t, r.value, r.previous, r.applied))
    return out


def limited_adds(endpoint: str, table: str, name: str, amounts: list[int], limit: int) -> list[Any]:
    c = _store(endpoint, table).counter(name)
    out: list[Any] = []
    for a in amounts:
        try:
            r = c.add(a, limit=limit)
            out.append((a, r.value, r.previous))
        except LimitExceeded:
            out.append((a, None, None))
    return out


def lease_worker(
    endpoint: str, table: str, name: str, rounds: int, hold: float
) -> list[tuple[int, str, float, float]]:
    """Try to take the lease ``rounds`` times; record (fence, owner, start, end) of each hold."""
    import secrets
    import time

    from stateless_state import LeaseUnavailable

    owner = secrets.token_hex(4)
    lease = _store(endpoint, table).lease(name, duration=30, owner=owner)
    out = []
    for _ in range(rounds):
        try:
            held = lease.acquire()
        except LeaseUnavailable:
            time.sleep(0.005)
            continue
        start = time.monotonic()
        time.sleep(hold)
        end = time.monotonic()
        held.release()
        out.append((held.fence, owner, start, end))
    return out


def idempotent_caller(endpoint: str, table: str, key: str, marker: str) -> list[Any]:
    """Call an idempotent body that counts its executions; retry while it is in progress."""
    import time

    from stateless_state import AlreadyInProgress, idempotent
    from stateless_state.testing import FakeLambdaContext

    store = _store(endpoint, table)

    @idempotent(store, key="id", namespace="race")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runs = store.counter(f"runs-{event['id']}").add(1)
        time.sleep(0.05)
        return {"ran_by": marker, "run": runs.value}

    outcomes: list[Any] = []
    while True:
        try:
            outcomes.append(handler({"id": key}, FakeLambdaContext(60_000)))
            return outcomes
        except AlreadyInProgress:
            outcomes.append("in_progress")
            time.sleep(0.01)


def batcher_adds(
    endpoint: str,
    table: str,
    stream: str,
    thresholds: tuple[Any, ...],
    lanes: int,
    arrivals: list[tuple[str, int]],
    per_request: int = 1,
    seed: int = 0,
) -> list[tuple[str, str, bool, str | None]]:
    """Add arrivals (id, size) to a batcher; record (id, batch id, duplicate, sealed batch id).
    With ``per_request`` > 1, ``add_many`` takes requests of 1 to ``per_request`` arrivals, a
    third of them carrying a repeat of one of their own arrivals."""
    import random
    import time

    from patterns.batcher import Arrival, Batcher, Thresholds

    b = Batcher(_store(endpoint, table), stream, Thresholds(*thresholds), lanes)
    rng = random.Random(seed)
    out = []
    i = 0
    while i < len(arrivals):
        n = 1 if per_request == 1 else rng.randint(1, per_request)
        part = arrivals[i : i + n]
        i += n
        if per_request > 1 and rng.random() < 1 / 3:
            part = [*part, rng.choice(part)]
        request = [Arrival(a, size, time.time(), {"bucket": "b", "key": a}) for a, size in part]
        results = b.add_many(request) if per_request > 1 else [b.add(request[0])]
        out += [
            (a.id, r.batch_id, r.duplicate, r.sealed.id if r.sealed else None)
            for a, r in zip(request, results, strict=True)
        ]
    return out


def versioned_appends(endpoint: str, table: str, name: str, worker: str, n: int) -> list[int]:
    """Append ``n`` tokens to a list held by a versioned object; return the versions written."""
    v = _store(endpoint, table).versioned(name)
    written = []
    for i in range(n):

        def append(items: list[str], token: str = f"{worker}-{i}") -> list[str]:
            return [*items, token]

        written.append(v.update(append, create=[]).number)
    return written


def session_events(
    endpoint: str, table: str, name: str, events: list[tuple[str, float, float, str]]
) -> list[tuple[str, str]]:
    """Add (key, at, value, token) events; return (token, outcome) for each."""
    s = _store(endpoint, table).sessions(name, gap=5, max_duration=40, allowed_lateness=2)
    out = []
    for key, at, value, token in events:
        u = s.add(key, at, value, token=token)
        out.append((token, "late" if u.late else "duplicate" if u.duplicate else "accepted"))
    return out


def session_rounds(
    endpoint: str,
    table: str,
    name: str,
    rounds: list[list[tuple[str, float, float]]],
    barrier: Any,
    gap: float,
) -> list[str]:
    """Add this writer's (key, at, value) events round by round, meeting the other writers at
    ``barrier`` before each round so that the round's adds race. Returns each add's outcome."""
    s = _store(endpoint, table).sessions(name, gap=gap, max_duration=1e6)
    out = []
    for events in rounds:
        barrier.wait(timeout=120)
        for key, at, value in events:
            u = s.add(key, at, value)
            out.append("late" if u.late else "duplicate" if u.duplicate else "accepted")
    return out
