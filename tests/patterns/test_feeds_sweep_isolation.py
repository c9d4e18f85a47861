"""One feed's sealing or listing fails (its DynamoDB Query refused after botocore's retries, a
hot partition): the sweep reports it under ``errors`` and still loads the other feeds' batches
(issue 27: a failing feed backs off on its own without delaying the sweeper's work on the
others). Found by the adversary: the seal then ran outside the per-feed guard."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from patterns.batcher import BatchState, Thresholds
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext

COUNT1 = Thresholds(count=1, bytes=None, age=None)
BROKEN = "a-broken-feed"


def test_one_feeds_failing_seal_does_not_stop_the_others_loads(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Any
) -> None:
    s3, bucket = s3_bucket
    config = FeedsConfig(ddb_store)
    config.add(
        Feed(BROKEN, bucket, LocalTarget(str(tmp_path / "b.db")), prefix="b/"), who="op", why="adv"
    )
    config.add(
        Feed("z-good", bucket, LocalTarget(str(tmp_path / "g.db")), prefix="g/", thresholds=COUNT1),
        who="op",
        why="test",
    )
    feeds = S3Feeds(ddb_store, manifest_bucket=bucket, s3_client=s3, min_load_time=10)
    body = (json.dumps({"o": "x"}) + "\n").encode()
    r = feeds.handle(direct(put_object(s3, bucket, "g/x.jsonl", body)), FakeLambdaContext(5000))
    assert r["sealed"] and not r["loads"], "sealed, left for the sweeper"

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if BROKEN in json.dumps(params, default=str):
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "hot"}},
                "Query",
            )

    ddb_store.client.meta.events.register("provide-client-params.dynamodb.Query", refuse)
    try:
        try:
            swept: dict[str, Any] | None = feeds.sweep()
        except ClientError as e:
            swept = None
            error = e
        good = [b.state for b in feeds.pipeline("z-good").batcher.batches()]
    finally:
        ddb_store.client.meta.events.unregister("provide-client-params.dynamodb.Query", refuse)
    assert swept is not None, f"the whole sweep raised for feed {BROKEN!r}'s error: {error}"
    assert BROKEN in swept["errors"]
    assert good == [BatchState.LOADED], f"the healthy feed's batch was left {good}"
