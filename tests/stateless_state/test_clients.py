"""The clients the library builds when given none: the region from ``AWS_REGION`` (Lambda's,
which botocore does not read), and without any region a clear error naming the settings, from
every entry point a deployment starts at, never botocore's ``NoRegionError``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from patterns import S3ToRedshift
from patterns.feeds import S3Feeds
from patterns.loaders.redshift import RedshiftDataApiLoader
from stateless_state import InvalidArgument, Store
from stateless_state.clients import aws_client


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No region anywhere boto3 looks: no variable, a profile without one."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "config"
    empty.write_text("[default]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


ONE_STREAM = {"STATELESS_STATE_TABLE": "state", "MANIFEST_BUCKET": "manifests", "STREAM": "s1"}

ENTRY_POINTS: dict[str, Callable[[], Any]] = {
    "Store": lambda: Store("state"),
    "aws_client": lambda: aws_client("dynamodb"),
    "S3ToRedshift.from_env": lambda: S3ToRedshift.from_env(
        {**ONE_STREAM, "LOCAL_WAREHOUSE": "/tmp/warehouse.db"}
    ),
    "S3Feeds.from_env": lambda: S3Feeds.from_env(
        {"STATELESS_STATE_TABLE": "state", "MANIFEST_BUCKET": "manifests"}
    ),
    "RedshiftDataApiLoader": lambda: RedshiftDataApiLoader(
        table="analytics.events",
        iam_role="arn:aws:iam::123456789012:role/copy",
        database="dev",
        workgroup_name="wg",
    )._client(),
}


@pytest.mark.usefixtures("no_region")
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_no_region_is_a_clear_error_naming_the_settings(entry: str) -> None:
    with pytest.raises(InvalidArgument, match=r"no AWS region .*set AWS_REGION") as raised:
        ENTRY_POINTS[entry]()
    assert "NoRegionError" not in repr(raised.value.__cause__)


@pytest.mark.usefixtures("no_region")
def test_lambdas_aws_region_is_the_clients_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert Store("state").client.meta.region_name == "eu-west-3"
    assert aws_client("s3").meta.region_name == "eu-west-3"


@pytest.mark.usefixtures("no_region")
def test_a_given_region_or_sessions_region_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert aws_client("s3", region_name="ap-south-1").meta.region_name == "ap-south-1"
    session = boto3.session.Session(region_name="sa-east-1")
    assert aws_client("dynamodb", session=session).meta.region_name == "sa-east-1"
