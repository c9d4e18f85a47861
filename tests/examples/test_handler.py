"""The example's Lambda handler module, imported and invoked as Lambda would (configured by the
environment), printing its DynamoDB cost as EMF lines."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, fresh_table_name
from tests.support.emf import check_emf


def test_the_example_handler_loads_a_batch_and_reports_its_cost(
    dynamodb_local: DynamoDBLocal,
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3, bucket = s3_bucket
    table = fresh_table_name()
    Store(table, client=dynamodb_local.client()).create_table()
    for name, value in {
        "STATELESS_STATE_TABLE": table,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
        "AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "MANIFEST_BUCKET": bucket,
        "LOCAL_WAREHOUSE": str(tmp_path / "warehouse.db"),
        "STREAM": "orders#eu/1",
        "THRESHOLD_COUNT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("examples.s3_redshift_batcher.handler", None)
    module = importlib.import_module("examples.s3_redshift_batcher.handler")
    records = [
        put_object(s3, bucket, f"in/{name}", b'{"id": 1}\n') for name in ("a#1.json", "b 2.json")
    ]
    capsys.readouterr()
    summary = module.handler(direct(*records), FakeLambdaContext(300_000))
    assert summary["arrivals"] == 2
    assert list(summary["loads"].values()) == ["loaded"], summary
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    for doc in docs:
        check_emf(doc)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "S3ToRedshift"
    spent = {doc["Operation"]: doc for doc in docs}
    assert spent["TransactWriteItems"]["Requests"] >= 1
    assert sum(doc["ConsumedWCU"] for doc in docs) > 0
    module.sweeper({}, FakeLambdaContext(60_000))
    for line in capsys.readouterr().out.splitlines():
        check_emf(json.loads(line))
