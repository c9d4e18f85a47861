"""Feeds do not wait on each other in the handler either: every feed's share of an event is
added before any feed's sealed batch is loaded, so a slow target (a COPY that takes minutes, a
warehouse that hangs until its connect timeout) holds up no other feed's arrivals, nor has a
Lambda timeout in its load leave them not added. Found by the adversary: each feed's batches
were loaded right after its own adds."""

from __future__ import annotations

import time
from typing import Any

from patterns.batcher import Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.loaders.base import AbandonOutcome, LoadOutcome
from patterns.testing import direct, s3_record
from stateless_state import Store

SLOW = 3.0


class SlowLoader:
    target = "slow"

    def load(self, ticket: Any, manifest: Any) -> LoadOutcome:
        time.sleep(SLOW)
        return LoadOutcome(manifest.batch_id, True, None, 0)

    def recorded(self, ticket: Any) -> None:
        return None

    def abandon(self, batch_id: str) -> AbandonOutcome:
        return "abandoned"


def test_one_feeds_slow_load_does_not_delay_another_feeds_adds(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    one = Thresholds(count=1, bytes=None, age=None)
    many = Thresholds(count=100, bytes=None, age=None)
    config.add(
        Feed("a", bucket, LocalTarget(str(tmp_path / "a.db")), prefix="a/", thresholds=one),
        who="op",
        why="test",
    )
    config.add(
        Feed("b", bucket, LocalTarget(str(tmp_path / "b.db")), prefix="b/", thresholds=many),
        who="op",
        why="test",
    )
    feeds = S3Feeds(
        ddb_store,
        manifest_bucket=bucket,
        s3_client=s3,
        min_load_time=0,
        loader_factory=lambda t: SlowLoader(),
    )
    feeds.prepare()
    start = time.time()
    # a's file alone in a's prefix; b's file in the same event (one queue for every feed)
    r = feeds.handle(direct(s3_record(bucket, "a/1.jsonl", 10), s3_record(bucket, "b/1.jsonl", 10)))
    assert r["by_feed"] == {"a": 1, "b": 1}
    [b_batch] = list(feeds.pipeline("b").batcher.batches())
    waited = b_batch.opened_at - start
    assert waited < 1.0, (
        f"feed b's arrival was added {waited:.1f} s into the event, after feed a's load"
    )
