"""collect_garbage against a write in flight (DynamoDB Local, local S3, the interleaving forced):
a write whose body is already in S3 (an orphan an older version left) must not lose it to a
collection that runs between the write's put and its commit."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stateless_state import Store


def test_a_collection_between_a_put_and_its_commit_keeps_the_body(
    ddb_store: Store, s3_bucket: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client, bucket = s3_bucket
    a, b = "A" * 100, "B" * 100
    v = ddb_store.versioned("cfg", s3=s3_client, bucket=bucket, inline_limit=10, keep_last=1)
    v.put(a, expected=None)  # version 1: body(A)
    v.put(b, expected=1)  # version 2: body(B); version 1 deleted (keep_last=1): body(A) orphaned
    time.sleep(3)  # body(A) is now older than the 2 s grace
    real = ddb_store.table.call
    ran: list[int] = []

    def gc_before_commit(operation: str, **kwargs: Any) -> Any:
        # The forced interleaving: the writer of A again has put body(A), already in S3 as an
        # orphan, and not yet committed; a sweeper collects now.
        if operation == "TransactWriteItems" and not ran:
            ran.append(v.collect_garbage(grace=2))
        return real(operation, **kwargs)

    monkeypatch.setattr(ddb_store.table, "call", gc_before_commit)
    v.put(a, expected=2)  # version 3 names body(A)
    monkeypatch.undo()
    assert ran == [0], "the body the write is about to name is not collected"
    latest = v.get()
    assert latest is not None and latest.value == a
