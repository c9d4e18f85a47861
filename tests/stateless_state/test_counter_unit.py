"""Counter behaviour on moto: single-threaded, fast. Races live in test_counter_races.py."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from stateless_state import (
    Count,
    InvalidArgument,
    LimitExceeded,
    Store,
    TableNotFound,
)


def test_add_get_reset(moto_store: Store) -> None:
    c = moto_store.counter("pages")
    assert c.get() == 0
    assert c.add() == Count(1, 0, True)
    assert c.add(4) == Count(5, 1, True)
    assert c.add(-2) == Count(3, 5, True, monotone=False)
    assert c.get() == 3
    c.reset()
    assert c.get() == 0
    assert c.add(2).monotone, "a reset starts a new sequence of crossings"
    c.reset(10)
    assert c.get(consistent=False) == 10


def test_counters_are_independent(moto_store: Store) -> None:
    a, b = moto_store.counter("a"), moto_store.counter("a#token#x")
    a.add(2, token="x")
    b.add(5)
    assert (a.get(), b.get()) == (2, 5)


def test_token_counts_once_and_replay_reports_original(moto_store: Store) -> None:
    c = moto_store.counter("events")
    first = c.add(3, token="evt-1")
    c.add(1, token="evt-2")
    replay = c.add(3, token="evt-1")
    assert first == Count(3, 0, True)
    assert replay == Count(3, 0, False)
    assert c.get() == 4
    assert replay.crossed(2), "a replay reports the original range so a retry can finish the job"


def test_reset_keeps_tokens_counted(moto_store: Store) -> None:
    c = moto_store.counter("events")
    c.add(1, token="t")
    c.reset()
    assert not c.add(1, token="t").applied
    assert c.get() == 0


def test_crossed() -> None:
    assert Count(10, 7).crossed(10)
    assert Count(10, 7).crossed(8)
    assert not Count(10, 7).crossed(7)
    assert not Count(10, 7).crossed(11)


@pytest.mark.parametrize("use_token", [False, True])
def test_limit_is_never_exceeded_and_nothing_applies(moto_store: Store, use_token: bool) -> None:
    c = moto_store.counter("quota")

    def tok(i: int) -> str | None:
        return f"t{i}" if use_token else None

    for i in range(3):
        c.add(3, limit=10, token=tok(i))
    with pytest.raises(LimitExceeded) as err:
        c.add(2, limit=10, token=tok(9))
    assert (err.value.value, err.value.amount, err.value.limit) == (9, 2, 10)
    assert "would exceed its limit of 10" in str(err.value)
    assert c.get() == 9
    assert c.add(1, limit=10, token=tok(10)).value == 10


def test_limit_on_a_new_counter(moto_store: Store) -> None:
    c = moto_store.counter("fresh")
    with pytest.raises(LimitExceeded):
        c.add(5, limit=4)
    with pytest.raises(LimitExceeded):
        c.add(5, limit=4, token="x")
    assert c.get() == 0


def test_replayed_token_at_the_limit_is_a_replay_not_an_error(moto_store: Store) -> None:
    c = moto_store.counter("quota")
    c.add(10, limit=10, token="t")
    assert c.add(10, limit=10, token="t") == Count(10, 0, False)


@pytest.mark.parametrize("amount", [1.5, "1", None, True, 2.0])
def test_non_integer_amount_is_rejected(moto_store: Store, amount: Any) -> None:
    with pytest.raises(InvalidArgument, match="amount must be an int"):
        moto_store.counter("c").add(amount)
    assert moto_store.metrics.total.requests == 0, "nothing is sent for bad input"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 256, "the limit is 255"),
        (5, "must be a str"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_bad_names_are_rejected(moto_store: Store, name: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        moto_store.counter(name)
    with pytest.raises(InvalidArgument, match=message):
        moto_store.counter("ok").add(1, token=name)


@pytest.mark.parametrize("shards", [0, 101, 1.5, True])
def test_bad_shard_counts(moto_store: Store, shards: Any) -> None:
    with pytest.raises(InvalidArgument, match="shards must be an int"):
        moto_store.sharded_counter("s", shards=shards)


@pytest.mark.parametrize("name", ["ab", "has space", "x" * 256, ""])
def test_bad_table_name(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid DynamoDB table name"):
        Store(name, client=object())


def test_missing_table_is_a_clear_error() -> None:
    with mock_aws():
        client = boto3.session.Session().client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        store = Store("no-such-table", client=client)
        with pytest.raises(TableNotFound, match="create_table"):
            store.counter("c").add(1)
        with pytest.raises(TableNotFound):
            store.check_table()


def test_create_table_is_idempotent(moto_store: Store) -> None:
    assert moto_store.create_table() is False
    ttl = moto_store.client.describe_time_to_live(TableName=moto_store.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATELESS_STATE_TABLE", raising=False)
    with pytest.raises(InvalidArgument, match="STATELESS_STATE_TABLE"):
        Store.from_env(client=object())
    monkeypatch.setenv("STATELESS_STATE_TABLE", "my-table")
    assert Store.from_env(client=object()).table_name == "my-table"


def test_client_and_endpoint_are_exclusive() -> None:
    with pytest.raises(InvalidArgument, match="not both"):
        Store("tbl", client=object(), endpoint_url="http://localhost:1")


def test_sharded_counter(moto_store: Store) -> None:
    s = moto_store.sharded_counter("hot", shards=8)
    for _ in range(40):
        assert s.add(2)
    assert s.add(5, token="once")
    assert not s.add(5, token="once")
    assert s.get() == 85


def test_metrics_count_requests_and_units(moto_store: Store) -> None:
    c = moto_store.counter("m")
    before = moto_store.metrics.snapshot()
    c.add(1)
    spent = (moto_store.metrics.snapshot() - before).by_operation
    assert set(spent) == {"UpdateItem"}
    assert spent["UpdateItem"].requests == 1
    with pytest.raises(LimitExceeded):
        c.add(5, limit=2)
    assert moto_store.metrics.by_operation["UpdateItem"].condition_failures == 1


@pytest.mark.parametrize("token", [None, "t"])
def test_a_counter_that_went_down_refuses_to_answer_crossings(
    moto_store: Store, token: str | None
) -> None:
    """With negative amounts a counter can pass a threshold twice; crossed() must not then
    name two different adds as the one crossing, so it raises instead."""
    c = moto_store.counter(f"down-{token}")

    def add(n: int, t: str) -> Count:
        return c.add(n, token=None if token is None else t)

    first = add(5, "a")
    assert first.crossed(5)
    assert not add(-3, "b").monotone
    again = add(3, "c")
    assert again.value == 5 and not again.monotone
    with pytest.raises(InvalidArgument, match="not unique"):
        again.crossed(5)
    assert first.crossed(5), "crossings made before the counter went down stay valid"
    if token is not None:
        assert not c.add(3, token="c").monotone, "a replay reports what the add saw"
    c.reset()
    assert add(5, "d").crossed(5)


def test_control_characters_and_separators_are_ordinary_name_characters(
    moto_store: Store,
) -> None:
    names = ["a\nb", "a\x01", "a#b", "a%23b", "a%b", "a/b c"]
    for i, name in enumerate(names):
        moto_store.counter(name).add(i + 1, token=name)
    assert [moto_store.counter(n).get() for n in names] == list(range(1, len(names) + 1))
