"""The batcher's load-claim conditions, each with a test that fails without it.

B8: ``claim_load`` takes a ``loading`` batch only when its ``lease_until`` has passed (a crashed
loader). A sweeper decides to claim on ``pending()``, an eventually consistent index read, so it
will try batches that a live loader holds: the claim's own condition is what refuses them.
B9: a sealed batch is claimed only once its retry backoff (``next_attempt_at``) has passed.
"""

from __future__ import annotations

import time

import pytest

from patterns.batcher import Arrival, Batcher, BatchState, Thresholds
from stateless_state import LeaseUnavailable, Store


def test_a_live_loaders_batch_is_not_claimed_again(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=1, bytes=None, age=None))
    sealed = b.add(Arrival("s3://b/k", 10, time.time(), {"bucket": "b", "key": "k"})).sealed
    assert sealed is not None
    live = b.claim_load(sealed.id, lease=300)
    # What a sweeper sees: the batch is still pending (loading), so it tries to claim it.
    assert [p.id for p in b.pending()] == [sealed.id]
    with pytest.raises(LeaseUnavailable):
        b.claim_load(sealed.id)
    batch = b.batch(sealed.id)
    assert batch is not None and (batch.state, batch.fence, batch.attempts) == (
        BatchState.LOADING,
        live.fence,
        1,
    )
    live.loaded()  # its fence is still current
    done = b.batch(sealed.id)
    assert done is not None and done.state == BatchState.LOADED


def test_a_crashed_loaders_batch_is_claimed_once_its_lease_has_passed(moto_store: Store) -> None:
    b = Batcher(moto_store, "s", Thresholds(count=1, bytes=None, age=None))
    sealed = b.add(Arrival("s3://b/k", 10, time.time(), {"bucket": "b", "key": "k"})).sealed
    assert sealed is not None
    crashed = b.claim_load(sealed.id, lease=0.01)
    time.sleep(0.05)
    assert b.claim_load(sealed.id).fence == crashed.fence + 1


def test_a_failed_batch_is_not_claimed_before_its_backoff_ends(moto_store: Store) -> None:
    """B9 (``next_attempt_at <= now``): a sealed batch waiting out a retry backoff is pending,
    so sweepers try it; its claim is refused until the backoff has passed."""
    b = Batcher(moto_store, "s", Thresholds(count=1, bytes=None, age=None), retry_backoff=300)
    sealed = b.add(Arrival("s3://b/k", 10, time.time(), {"bucket": "b", "key": "k"})).sealed
    assert sealed is not None
    assert b.claim_load(sealed.id).failed("boom") == BatchState.SEALED
    assert [p.id for p in b.pending()] == [sealed.id]
    with pytest.raises(LeaseUnavailable):
        b.claim_load(sealed.id)
    batch = b.batch(sealed.id)
    assert batch is not None and (batch.state, batch.attempts) == (BatchState.SEALED, 1)
