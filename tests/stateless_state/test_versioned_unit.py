"""Versioned objects on moto: CAS, history, retention, large values in S3, crash between writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from stateless_state import InvalidArgument, NotSerializable, Store, VersionConflict


def test_put_get_at_history(moto_store: Store) -> None:
    v = moto_store.versioned("config")
    assert v.get() is None and v.history() == []
    assert v.put({"a": 1}, expected=None).number == 1
    assert v.put({"a": 2}, expected=1).number == 2
    with pytest.raises(VersionConflict, match="expected version 1, found 2"):
        v.put({"a": 3}, expected=1)
    with pytest.raises(VersionConflict):
        v.put({"a": 3}, expected=None)
    latest = v.get()
    assert latest is not None and (latest.number, latest.value) == (2, {"a": 2})
    first = v.at(1)
    assert first is not None and first.value == {"a": 1}
    assert v.at(3) is None and v.at(0) is None
    assert [x.value for x in v.history()] == [{"a": 1}, {"a": 2}]


def test_update_and_explicit_creation(moto_store: Store) -> None:
    v = moto_store.versioned("list")
    with pytest.raises(InvalidArgument, match="does not exist"):
        v.update(lambda x: x)
    v.update(lambda x: [*x, 1], create=[])
    v.update(lambda x: [*x, 2])
    latest = v.get()
    assert latest is not None and latest.value == [1, 2] and latest.number == 2


def test_versions_are_never_modified(moto_store: Store) -> None:
    v = moto_store.versioned("immutable", keep_last=3, keep_for=3600)
    v.put({"n": 1}, expected=None)
    before = v.raw_item(1)
    for n in range(2, 4):
        v.put({"n": n}, expected=n - 1)
    assert v.raw_item(1) == before, "byte-identical after later writes"


def test_keep_last_hides_and_deletes_old_versions(moto_store: Store) -> None:
    v = moto_store.versioned("short", keep_last=2)
    for n in range(1, 6):
        v.put(n, expected=n - 1 or None)
    assert [x.number for x in v.history()] == [4, 5]
    assert v.at(3) is None and v.raw_item(3) is None


def test_keep_for_expires_superseded_versions_but_never_the_latest(moto_store: Store) -> None:
    v = moto_store.versioned("aging", keep_for=1)
    v.put("old", expected=None)
    v.put("new", expected=1)
    time.sleep(2.1)
    assert v.at(1) is None, "expired by its TTL, even before DynamoDB deletes it"
    latest = v.get()
    assert latest is not None and latest.value == "new"
    assert [x.number for x in v.history()] == [2]


def test_unserializable_value_writes_nothing(moto_store: Store) -> None:
    v = moto_store.versioned("bad")
    with pytest.raises(NotSerializable):
        v.put({"x": object()}, expected=None)
    with pytest.raises(NotSerializable):
        v.put(float("nan"), expected=None)
    assert v.get() is None


@pytest.fixture
def s3_client(moto_store: Store) -> Iterator[Any]:
    client = boto3.session.Session().client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="bodies")
    yield client


def test_large_values_go_to_s3_and_read_back(moto_store: Store, s3_client: Any) -> None:
    v = moto_store.versioned("big", s3=s3_client, bucket="bodies", inline_limit=1000)
    big = {"blob": "x" * 5000}
    v.put(big, expected=None)
    v.put({"small": True}, expected=1)
    v.put(big, expected=2)
    first = v.at(1)
    assert first is not None and first.value == big
    latest = v.get()
    assert latest is not None and latest.value == big
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket="bodies")["Contents"]]
    assert len(keys) == 1, "content-addressed: equal bodies share one key"


def test_large_value_without_s3_is_a_clear_error(moto_store: Store) -> None:
    v = moto_store.versioned("big", inline_limit=10)
    with pytest.raises(InvalidArgument, match="pass s3= and bucket="):
        v.put("x" * 100, expected=None)


def test_crash_between_s3_and_dynamodb_leaves_no_version(
    moto_store: Store, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = moto_store.versioned("big", s3=s3_client, bucket="bodies", inline_limit=10)
    v.put("first" * 10, expected=None)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed after the S3 put")

    monkeypatch.setattr(moto_store.table, "call", crash)
    with pytest.raises(RuntimeError):
        v.put("second" * 10, expected=1)
    monkeypatch.undo()
    latest = v.get()
    assert latest is not None and latest.number == 1, "no visible version from the crash"
    assert len(s3_client.list_objects_v2(Bucket="bodies")["Contents"]) == 2, "an orphan body"
    assert v.collect_garbage(grace=0) == 1
    again = v.get()
    assert again is not None and again.value == "first" * 10


def test_bad_arguments(moto_store: Store) -> None:
    with pytest.raises(InvalidArgument):
        moto_store.versioned("x", keep_last=0)
    with pytest.raises(InvalidArgument):
        moto_store.versioned("x", keep_for=-1)
    with pytest.raises(InvalidArgument, match="expected must be"):
        moto_store.versioned("x").put(1, expected="1")  # type: ignore[arg-type]
