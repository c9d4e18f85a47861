"""Two tenants whose names, keys and tokens come from a hostile alphabet never observe each
other's writes: reads, Queries, close_due, duplicates (DynamoDB Local, AWS's own engine).

Each example draws two (name, key) pairs that a naive ``name#key`` layout would confuse
(``("a#b", "c")`` and ``("a", "b#c")``, prefixes, unrelated hostile strings) and prepends a
fresh salt to both names, so the examples share one table without sharing items, while
keeping the prefix structure under test.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from patterns.batcher import Arrival, Batcher, Thresholds
from stateless_state import LeaseUnavailable, Store
from stateless_state.testing.strategies import colliding_pairs, hostile_names

Pair = tuple[tuple[str, str], tuple[str, str]]
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def salted(pairs: Pair) -> Pair:
    salt = uuid.uuid4().hex[:6]
    (n1, k1), (n2, k2) = pairs
    return (salt + n1, k1), (salt + n2, k2)


@SETTINGS
@given(pairs=colliding_pairs())
def test_counters_and_tokens(ddb_store: Store, pairs: Pair) -> None:
    (n1, t1), (n2, t2) = salted(pairs)
    assume(n1 != n2)
    a, b = ddb_store.counter(n1), ddb_store.counter(n2)
    assert a.add(3, token=t1).applied
    assert b.add(5, token=t2).applied, "another counter's token is not a duplicate"
    assert b.add(5, token=t1).applied or t1 == t2
    assert a.add(7).value == 10
    assert (a.get(), b.get()) == (10, 5 if t1 == t2 else 10)
    s1, s2 = ddb_store.sharded_counter(n1, shards=3), ddb_store.sharded_counter(n2, shards=3)
    assert s1.add(2, token=t1) and s2.add(4, token=t1)
    assert s2.add(4, token=t2) == (t1 != t2)
    assert (s1.get(), s2.get()) == (2, 4 if t1 == t2 else 8)


@SETTINGS
@given(pairs=colliding_pairs())
def test_leases_and_versioned(ddb_store: Store, pairs: Pair) -> None:
    (n1, k1), (n2, k2) = salted(pairs)
    names = [f"{n1}#{k1}", f"{n2}#{k2}"]
    if names[0] == names[1]:
        names = [n1, n2]
    held = ddb_store.lease(names[0], duration=30).acquire()
    try:
        other = ddb_store.lease(names[1], duration=30).acquire()
    except LeaseUnavailable as e:
        raise AssertionError(f"{names[1]!r} is blocked by {names[0]!r}") from e
    assert held.fence == other.fence == 1
    v1, v2 = ddb_store.versioned(names[0]), ddb_store.versioned(names[1])
    v1.put({"who": 1}, expected=None)
    assert v2.get() is None
    v2.put({"who": 2}, expected=None)
    assert [x.value for x in v1.history()] == [{"who": 1}]
    assert v1.get().value == {"who": 1}  # type: ignore[union-attr]


@SETTINGS
@given(pairs=colliding_pairs())
def test_idempotency_namespaces_and_keys(ddb_store: Store, pairs: Pair) -> None:
    (n1, k1), (n2, k2) = salted(pairs)
    a, b = ddb_store.idempotency(n1), ddb_store.idempotency(n2)
    first = a.claim(k1)
    first.complete("a")
    second = b.claim(k2)
    assert not second.replay, "another namespace's key is not a replay"
    second.complete("b")
    assert (a.claim(k1).result, b.claim(k2).result) == ("a", "b")


@SETTINGS
@given(pairs=colliding_pairs(), token=hostile_names())
def test_sessions_and_windows(ddb_store: Store, pairs: Pair, token: str) -> None:
    (n1, k1), (n2, k2) = salted(pairs)
    assume(n1 != n2)  # one token in one name is a duplicate, as it should be
    for make in (
        lambda n: ddb_store.sessions(n, gap=10, max_duration=100),
        lambda n: ddb_store.windows(n, size=60),
    ):
        a, b = make(n1), make(n2)
        ua = a.add(k1, 1_000.0, 1.0, token=token)
        ub = b.add(k2, 1_001.0, 2.0, token=token)
        assert not ua.duplicate and not ub.duplicate, "a token of another tenant is no duplicate"
        assert ub.created, "b's first event starts its own session"
        assert [s.sum for s in a.sessions(k1)] == [1.0]
        assert [s.sum for s in b.sessions(k2)] == [2.0]
        closed_a = a.close_due(now=10_000.0)
        assert [(s.key, s.sum) for s in closed_a] == [(k1, 1.0)]
        assert [(s.key, s.sum) for s in b.close_due(now=10_000.0)] == [(k2, 2.0)]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pairs=colliding_pairs(), ids=st.lists(hostile_names(), min_size=1, max_size=4, unique=True))
def test_batcher_streams(ddb_store: Store, pairs: Pair, ids: list[str]) -> None:
    (n1, k1), (n2, k2) = salted(pairs)
    streams = [f"{n1}#{k1}", f"{n2}#{k2}"]
    if streams[0] == streams[1]:
        streams = [n1, n2]
    a, b = (Batcher(ddb_store, s, Thresholds(count=2, bytes=None, age=None)) for s in streams)
    for i in ids:
        assert not a.add(Arrival(i, 1, 1_000.0)).duplicate
    for i in ids:
        assert not b.add(Arrival(i, 1, 1_000.0)).duplicate, "same id in another stream"
    for batcher, other in ((a, b), (b, a)):
        batches = list(batcher.batches())
        assert {x.stream for x in batches} == {batcher.stream}
        members = sorted(m.id for x in batches for m in batcher.members(x.id))
        assert members == sorted(set(ids))
        assert {x.id for x in batcher.pending()} <= {x.id for x in batches}
        assert not {x.id for x in batcher.pending()} & {x.id for x in other.batches()}
