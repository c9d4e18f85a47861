"""Simulation scenarios of the primitives (issue 25, item 7), registered with
:mod:`tests.support.simulations`: idempotency with fenced takeover and
``commit_with_completion``, leases, counters with tokens and limits, sessions' per-key
serialization and watermark close, versioned objects.

Each scenario builds one :class:`~stateless_state.Store` per invocation (concurrent Lambda
invocations never share a container, so never share its hints), records what each call
answered, and checks it against what is stored afterwards. Checks also note, in
:data:`WITNESSED`, the interesting states a schedule reached (a takeover, a refused stale
renew...), so that a test can assert the exploration went there at all: an invariant that
holds only because the bad interleaving was never reached proves nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

from stateless_state import LeaseLost, LeaseUnavailable, LimitExceeded, Store, keys
from stateless_state.counter import Count, Counter
from stateless_state.idempotency import commit_with_completion, idempotent
from stateless_state.sessions import Session, SessionUpdate, SessionWindows
from stateless_state.testing import simulation as sim
from stateless_state.testing.history import History, Op, check_linearizable
from stateless_state.versioned import Version, Versioned

from .simulations import Spec, register

TABLE = "state"

Handler = Callable[[Any, Any], Any]

WITNESSED: defaultdict[str, set[str]] = defaultdict(set)
"""Per scenario name, the interesting states some schedule reached (filled by the checks)."""


def setup(world: sim.World) -> None:
    """The state table every schedule starts from."""
    Store(TABLE, client=world.client("dynamodb")).create_table()


def _store(world: sim.World) -> Store:
    return Store(TABLE, client=world.client("dynamodb"))


def _item_key(pk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}}


def _bump(pk: str) -> dict[str, Any]:
    """A ``TransactWriteItems`` entry adding 1 to ``n`` of item ``pk``: applied twice, it
    shows 2."""
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _item_key(pk),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _bumps(world: sim.World, pk: str) -> int:
    item = world.client("dynamodb").get_item(
        TableName=TABLE, Key=_item_key(pk), ConsistentRead=True
    )
    return int(item["Item"]["n"]["N"]) if "Item" in item else 0


# -- idempotency --------------------------------------------------------------------------------

ORDER = {"id": "order-1"}
EFFECT = "effect#order-1"
# The claim's lease (no Lambda context: the body is a plain function) is shorter than a pause,
# and both are far shorter than the invocation's Lambda timeout: a paused invocation comes back
# as a zombie, not killed by Lambda.
LEASE = 10.0
PAUSE = 20.0
LAMBDA_TIMEOUT = 300.0


def _idempotent_body(
    world: sim.World, fail_first: bool, runs: list[str]
) -> Callable[[Any, str], dict[str, str]]:
    """The body ``process(event, who)``: its effect is one write committed with the completion;
    it returns who ran it; with ``fail_first`` its first run raises."""

    @idempotent(_store(world), key="id", namespace="orders", in_progress_timeout=LEASE)
    def process(event: Any, who: str) -> dict[str, str]:
        runs.append(who)
        if fail_first and len(runs) == 1:
            raise RuntimeError(f"{who}: the body failed")
        commit_with_completion(_bump(EFFECT))
        return {"by": who}

    return process


def _deliver(
    world: sim.World, names: tuple[str, ...], fail_first: bool = False
) -> tuple[list[str], list[str]]:
    """Deliver ORDER to ``names``; returns the body's runs and the invocations that ended in
    :class:`LeaseLost` (zombies told their claim was taken over)."""
    runs: list[str] = []
    lost: list[str] = []

    def handler(who: str) -> Callable[[Any, Any], Any]:
        process = _idempotent_body(world, fail_first, runs)

        def run(event: Any, context: Any) -> dict[str, str]:
            try:
                return process(event, who)
            except LeaseLost:
                lost.append(who)
                raise

        return run

    for name in names:
        world.invoke(handler(name), ORDER, name=name, timeout=LAMBDA_TIMEOUT)
    return runs, lost


def _check_once(world: sim.World, scenario: str, runs: list[str], lost: list[str]) -> None:
    """The effect exactly once iff the key completed; every successful delivery answered the
    stored result (a zombie's completion never replaced the taker's)."""
    record = _store(world).idempotency("orders").record("order-1")
    effect = _bumps(world, EFFECT)
    answers = [o.result for o in world.outcomes if o.status == "ok"]
    if record is not None and record["status"] == "completed":
        stored = json.loads(record["result"])
        assert effect == 1, f"the effect applied {effect} times; runs {runs}"
        assert all(a == stored for a in answers), f"answered {answers}, stored {stored}"
        assert stored["by"] in runs
    else:
        assert effect == 0, f"effect {effect} without a completion (record {record})"
        assert not answers, f"answered {answers} without a completion (record {record})"
    if lost:
        WITNESSED[scenario].add("zombie refused")
    if len(set(runs)) > 1:
        WITNESSED[scenario].add("taken over")


def idempotency_zombie(world: sim.World) -> None:
    """Three deliveries of one event; a pause makes one a zombie whose claim is taken over."""
    runs, lost = _deliver(world, ("a", "b", "c"))

    @world.check
    def effect_once() -> None:
        _check_once(world, "idempotency.zombie", runs, lost)
        zombies = [o.name for o in world.outcomes if o.status == "error"]
        assert set(lost) <= set(zombies), (lost, zombies)


def idempotency_failure(world: sim.World) -> None:
    """The body's first run raises: the claim is freed and a redelivery runs the body again.
    With a pause the failing run is a zombie whose release must not free the taker's record."""
    runs, lost = _deliver(world, ("a", "b"), fail_first=True)

    @world.check
    def freed_and_retried() -> None:
        _check_once(world, "idempotency.failure", runs, lost)
        record = _store(world).idempotency("orders").record("order-1")
        failed = [o for o in world.outcomes if isinstance(o.error, RuntimeError)]
        assert len(failed) == 1, [o.error for o in world.outcomes]
        if record is not None and record["status"] == "completed":
            # the failing run released the key: some later run completed it
            assert len(runs) >= 2, runs
            WITNESSED["idempotency.failure"].add("retried after failure")


def idempotency_completion(world: sim.World) -> None:
    """Two deliveries under crashes, ambiguous writes and transaction conflicts: the user's
    write lands with the completion, and only with it."""
    runs, lost = _deliver(world, ("a", "b"))

    @world.check
    def atomic() -> None:
        _check_once(world, "idempotency.completion", runs, lost)
        crashed = {o.status for o in world.outcomes} & {"crashed"}
        if crashed:
            WITNESSED["idempotency.completion"].add("crash")


IDEM_FAULTS = sim.Faults(pause=1, pause_for=PAUSE, redeliveries=1)

register(
    Spec(
        name="idempotency.zombie",
        scenario=idempotency_zombie,
        setup=setup,
        faults=IDEM_FAULTS,
        full=lambda: sim.Exhaustive(preemptions=1),
        ci=lambda: sim.PCT(40, depth=2, steps_hint=15),
        bounds="3 deliveries, 1 zombie pause of 20 s past a 10 s claim, 1 redelivery, "
        "exhaustive under 1 preemption",
    )
)
register(
    Spec(
        name="idempotency.failure",
        scenario=idempotency_failure,
        setup=setup,
        faults=IDEM_FAULTS,
        full=lambda: sim.Exhaustive(preemptions=2, max_schedules=3000),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 deliveries, the first run raising, 1 zombie pause, 1 redelivery, "
        "exhaustive under 2 preemptions (at most 3,000 schedules)",
    )
)
register(
    Spec(
        name="idempotency.completion",
        scenario=idempotency_completion,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1, conflict=1, redeliveries=1),
        full=lambda: sim.Exhaustive(preemptions=1),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 deliveries, 1 crash, 1 ambiguous write, 1 transaction conflict, "
        "1 redelivery, exhaustive under 1 preemption",
        ci_faults=sim.Faults(crash=1, redeliveries=1),
    )
)


# -- leases -------------------------------------------------------------------------------------

LEASE_FOR = 10.0
RESOURCE = "resource#job"


def lease_fencing(world: sim.World) -> None:
    """Three holders (see :func:`_lease_holders`)."""
    _lease_holders(world, ("a", "b", "c"), "lease.fencing")


def lease_pair(world: sim.World) -> None:
    """Two holders (see :func:`_lease_holders`): small enough for every schedule."""
    _lease_holders(world, ("a", "b"), "lease.pair")


def _lease_holders(world: sim.World, holders: tuple[str, ...], scenario: str) -> None:
    """Holders each acquire, write fenced, renew and release; a pause
    makes one a stale holder. Each call is logged as it begins (``None``) and as it ends (whether
    it succeeded): one invocation runs at a time, so the log is in the order requests reached
    DynamoDB. A call's effect lands between its two entries (an ambiguous write's first
    attempt may land, the retry then find it: a success logged after a later acquisition), so
    a successful call is stale only if a newer fence was acquired before it began."""
    log: list[tuple[str, str, int, bool | None]] = []  # (who, what, fence, succeeded)

    def holder(who: str) -> Callable[[Any, Any], None]:
        lease = _store(world).lease("job", duration=LEASE_FOR, owner=who)

        def run(event: Any, context: Any) -> None:
            try:
                held = lease.acquire()
            except LeaseUnavailable:
                log.append((who, "acquire", 0, False))
                return
            log.append((who, "acquire", held.fence, True))
            for what in ("write", "renew"):
                log.append((who, what, held.fence, None))
                try:
                    if what == "renew":
                        held.renew()
                    else:
                        held.write(_bump(RESOURCE))
                except LeaseLost:
                    log.append((who, what, held.fence, False))
                    return
                log.append((who, what, held.fence, True))
            log.append((who, "release", held.fence, None))
            log.append((who, "release", held.fence, held.release()))

        return run

    for name in holders:
        world.invoke(holder(name), name=name, timeout=LAMBDA_TIMEOUT, redeliver=False)

    @world.check
    def fenced() -> None:
        fences = [f for _, what, f, ok in log if what == "acquire" and ok]
        assert fences == sorted(set(fences)), f"fences not strictly increasing: {fences}"
        latest = 0
        began: dict[str, int] = {}  # the newest fence acquired when each holder's call began
        for who, what, fence, ok in log:
            if what == "acquire" and ok:
                latest = fence
            elif ok is None:
                began[who] = latest
            elif ok:
                assert fence == began[who], (
                    f"{who}'s {what} with stale fence {fence} succeeded (fence {began[who]} "
                    "was acquired before it began)"
                )
            elif what != "acquire":
                WITNESSED[scenario].add(f"stale {what} refused")
        writes = sum(1 for _, what, _, ok in log if what == "write" and ok)
        assert _bumps(world, RESOURCE) == writes, (log, _bumps(world, RESOURCE))


register(
    Spec(
        name="lease.fencing",
        scenario=lease_fencing,
        setup=setup,
        faults=sim.Faults(pause=1, pause_for=PAUSE, ambiguous=1),
        full=lambda: sim.PCT(500, depth=3, steps_hint=30),
        ci=lambda: sim.PCT(50, depth=2, steps_hint=15),
        bounds="3 holders (acquire, fenced write, renew, release), 1 pause of 20 s past a "
        "10 s lease, 1 ambiguous write, 500 PCT schedules of depth 3",
        ci_faults=sim.Faults(pause=1, pause_for=PAUSE),
    )
)

register(
    Spec(
        name="lease.pair",
        scenario=lease_pair,
        setup=setup,
        faults=sim.Faults(pause=1, pause_for=PAUSE, ambiguous=1),
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 holders (acquire, fenced write, renew, release), 1 pause of 20 s past a "
        "10 s lease, 1 ambiguous write, exhaustive under 2 preemptions",
        ci_faults=sim.Faults(pause=1, pause_for=PAUSE),
    )
)


# -- counters -----------------------------------------------------------------------------------


def _token_add(counter: Counter) -> Handler:
    def run(event: Any, context: Any) -> Count:
        return counter.add(1, token=event)

    return run


def counter_tokens(world: sim.World) -> None:
    """Two deliveries of one event add 1 with its token: counted once, however they interleave,
    crash (and are redelivered) or lose a response."""
    for i in range(2):
        counter = _store(world).counter("hits")
        world.invoke(_token_add(counter), "event-1", name=f"w{i}")

    @world.check
    def exactly_once() -> None:
        delivered = {o.event for o in world.outcomes if o.status == "ok"}
        value = _store(world).counter("hits").get()
        assert value == len(delivered), (value, delivered)
        if any(o.status == "crashed" for o in world.outcomes):
            WITNESSED["counter.tokens"].add("crash")


class LimitedCounter:
    """A counter model for :func:`check_linearizable`: ``add((token, amount, limit))`` counts a
    token once and never past ``limit``; it returns the new value, ``"replay"`` for a token
    already counted, or ``"limit"`` when the add would exceed the limit (nothing applied)."""

    def init(self) -> Hashable:
        return (0, frozenset())

    def step(self, state: Any, fn: str, arg: Any) -> tuple[Hashable, Any]:
        value, tokens = state
        token, amount, limit = arg
        if token in tokens:
            return state, "replay"
        if value + amount > limit:
            return state, "limit"
        return (value + amount, tokens | {token}), value + amount


COUNTER_LIMIT = 3


def counter_limits(world: sim.World) -> None:
    """Three adds (2, 1 and 2, each with its token) against a limit of 3: the value never
    exceeds it, and what each add answered is linearizable against :class:`LimitedCounter`."""
    history = History()

    def adder(who: str, amount: int) -> Callable[[Any, Any], None]:
        counter = _store(world).counter("seats")

        def run(event: Any, context: Any) -> None:
            arg = (who, amount, COUNTER_LIMIT)
            with history.record(who, "add", arg, key="seats") as op:
                try:
                    count = counter.add(amount, token=who, limit=COUNTER_LIMIT)
                except LimitExceeded:
                    op.ok("limit")
                    return
                op.ok(count.value if count.applied else "replay")

        return run

    for who, amount in (("a", 2), ("b", 1), ("c", 2)):
        world.invoke(adder(who, amount), name=who)

    @world.check
    def within_limit() -> None:
        value = _store(world).counter("seats").get()
        assert value <= COUNTER_LIMIT, f"value {value} over the limit {COUNTER_LIMIT}"
        verdict = check_linearizable(history, LimitedCounter())
        assert verdict, _ops(verdict.ops)
        if any(op.result == "limit" for op in history.ops):
            WITNESSED["counter.limits"].add("limit refused")


def _ops(ops: tuple[Op, ...]) -> str:
    return "not linearizable: " + "; ".join(
        f"{o.process} {o.fn}{o.arg} {o.status} {o.result!r} [{o.invoked:.3f}, {o.completed:.3f}]"
        for o in ops
    )


register(
    Spec(
        name="counter.tokens",
        scenario=counter_tokens,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1),
        full=lambda: sim.Exhaustive(preemptions=2, max_schedules=3000),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="2 deliveries of one token, 1 crash, 1 ambiguous write, 2 redeliveries, "
        "exhaustive under 2 preemptions (at most 3,000 schedules)",
        ci_faults=sim.Faults(crash=1),
    )
)
register(
    Spec(
        name="counter.limits",
        scenario=counter_limits,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1, conflict=1),
        full=lambda: sim.PCT(1000, depth=3, steps_hint=30),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="3 tokened adds (2, 1, 2) under a limit of 3, 1 crash, 1 ambiguous write, "
        "1 transaction conflict, 1,000 PCT schedules of depth 3",
        ci_faults=sim.Faults(),
    )
)


def _retried(world: sim.World) -> bool:
    """Some invocation sent a second transaction: its first was cancelled by another's write."""
    sent = [s.invocation for s in world.trace if s.operation == "TransactWriteItems"]
    return len(sent) > len(set(sent))


# -- sessions -----------------------------------------------------------------------------------

GAP = 10.0


def _sessions(world: sim.World) -> SessionWindows:
    return _store(world).sessions("visits", gap=GAP, max_duration=1000.0)


def _session_add(sessions: SessionWindows, at: float) -> Handler:
    def run(event: Any, context: Any) -> SessionUpdate:
        return sessions.add("k", at, token=event)

    return run


def _sweeper(sessions: SessionWindows, closed: list[Session]) -> Handler:
    def run(event: Any, context: Any) -> None:
        closed.extend(sessions.close_due(now=WATERMARK))

    return run


def _token_applied(world: sim.World, token: str) -> bool:
    key = keys.session_token("sessions", "visits", token).item()
    return _store(world).table.get(key) is not None


def sessions_per_key(world: sim.World) -> None:
    """Three adds of one key at 100, 104 and 108 (each within the gap of the others): one
    session holding every applied add, whatever the interleaving; a first add can never see
    "no session" alongside another first add and create a second."""
    events = {"a": 100.0, "b": 104.0, "c": 108.0}
    for who, at in events.items():
        world.invoke(_session_add(_sessions(world), at), who, name=who)

    @world.check
    def one_session() -> None:
        stored = _sessions(world).sessions("k")
        applied = [w for w in events if _token_applied(world, w)]
        ok = {o.event for o in world.outcomes if o.status == "ok"}
        assert ok <= set(applied), (ok, applied)
        assert len(stored) == (1 if applied else 0), f"sessions {stored} for adds {applied}"
        if stored:
            s = stored[0]
            assert s.count == len(applied), f"{s} counts {s.count}, applied {applied}"
            assert s.sum == len(applied) and s.start == min(events[w] for w in applied)
            assert s.last == max(events[w] for w in applied), (s, applied)
        # Serialized, the first add applied creates the session and every later one joins it
        # (all three are within the gap of each other): none absorbs another's session.
        reports = [o.result for o in world.outcomes if o.status == "ok"]
        created = [u.session for u in reports if u.created]
        assert len(created) <= 1, f"two adds each created a session: {created}"
        assert not any(u.absorbed for u in reports), f"an add merged split sessions: {reports}"
        if _retried(world):
            WITNESSED["sessions.per_key"].add("retried on a moved head")


WATERMARK = 111.0


def sessions_setup(world: sim.World) -> None:
    """The table and one open session of key ``k``: [100, 100], due at 110."""
    setup(world)
    _sessions(world).add("k", 100.0, token="first")


def sessions_watermark(world: sim.World) -> None:
    """Two sweepers close what is due by the watermark 111 while an event at 100 arrives (inside
    the session: its due time stays 110). The session is closed once; a closed session as a
    sweeper reports it is the one stored; the add is counted in its session or reported late
    for a closed one, never lost."""
    events = {"in": 100.0}
    closed: list[Session] = []
    for who, at in events.items():
        world.invoke(_session_add(_sessions(world), at), who, name=who)
    for who in ("s1", "s2"):
        world.invoke(_sweeper(_sessions(world), closed), name=who)

    @world.check
    def closed_once_and_nothing_lost() -> None:
        stored = {s.id: s for s in _sessions(world).sessions("k")}
        ids = [s.id for s in closed]
        assert len(ids) == len(set(ids)), f"closed twice: {closed}"
        for s in closed:
            assert stored[s.id] == s, f"a sweeper reported {s}, stored {stored[s.id]}"
            WITNESSED["sessions.watermark"].add("closed")
        applied = [w for w in events if _token_applied(world, w)]
        assert sum(s.count for s in stored.values()) == 1 + len(applied), (stored, applied)
        for o in world.outcomes:
            if o.status != "ok" or o.event not in events:
                continue
            update = o.result
            if update.late:
                WITNESSED["sessions.watermark"].add("late")
                assert o.event not in applied, o
                assert any(s.closed for s in stored.values()), (o, stored)
            else:
                assert o.event in applied and update.session is not None, o


SESSION_FAULTS = sim.Faults(crash=1, ambiguous=1, conflict=1, redeliveries=1)

register(
    Spec(
        name="sessions.per_key",
        scenario=sessions_per_key,
        setup=setup,
        faults=SESSION_FAULTS,
        full=lambda: sim.PCT(500, depth=3, steps_hint=30),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="3 adds of one key within the gap, 1 crash, 1 ambiguous write, 1 transaction "
        "conflict, 1 redelivery, 500 PCT schedules of depth 3",
        ci_faults=sim.Faults(),
    )
)
register(
    Spec(
        name="sessions.watermark",
        scenario=sessions_watermark,
        setup=sessions_setup,
        faults=sim.Faults(ambiguous=1, conflict=1),
        full=lambda: sim.Exhaustive(preemptions=2),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="1 open session, 1 add inside it and 2 sweepers at a watermark past its due "
        "time, 1 ambiguous write, 1 transaction conflict, exhaustive under 2 preemptions",
        ci_faults=sim.Faults(),
    )
)


# -- versioned objects --------------------------------------------------------------------------


def _appender(doc: Versioned, who: str) -> Handler:
    def run(event: Any, context: Any) -> Version:
        return doc.update(lambda names: [*names, who], create=[])

    return run


def versioned_cas(world: sim.World) -> None:
    """Three writers each append their name with ``update`` (read, apply, compare-and-set on
    the version read): every version is the one before plus one name, numbered 1, 2, 3...;
    no update is lost, none applied twice, and each writer was told the version it made."""
    for who in ("a", "b", "c"):
        # Not redelivered: a crashed writer's update may have landed, and a second update()
        # is a second update. Within one call, an attempt whose response was lost is
        # recognised by its nonce, never applied twice.
        world.invoke(_appender(_store(world).versioned("doc"), who), name=who, redeliver=False)

    @world.check
    def history_complete() -> None:
        history = _store(world).versioned("doc").history()
        assert [v.number for v in history] == list(range(1, len(history) + 1)), history
        previous: list[str] = []
        for v in history:
            assert len(v.value) == len(previous) + 1 and v.value[:-1] == previous, (
                f"version {v.number} is {v.value}, not {previous} plus one name"
            )
            previous = v.value
        assert len(set(previous)) == len(previous), f"an update applied twice: {previous}"
        for o in world.outcomes:
            if o.status == "ok":
                assert o.name in previous, f"{o.name}'s update was lost: {previous}"
                made = history[o.result.number - 1]
                assert (made.number, made.value) == (o.result.number, o.result.value), (o, made)
        if _retried(world):
            WITNESSED["versioned.cas"].add("retried on a moved head")


register(
    Spec(
        name="versioned.cas",
        scenario=versioned_cas,
        setup=setup,
        faults=sim.Faults(crash=1, ambiguous=1, conflict=1),
        full=lambda: sim.Exhaustive(preemptions=1, max_schedules=3000),
        ci=lambda: sim.Exhaustive(preemptions=1),
        bounds="3 writers appending by update(), 1 crash, 1 ambiguous write, 1 transaction "
        "conflict, exhaustive under 1 preemption (at most 3,000 schedules)",
        ci_faults=sim.Faults(),
    )
)
