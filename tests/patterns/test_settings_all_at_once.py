"""A first deployment meets every missing or refused setting in one error, not one per redeploy:
the pipeline's own variables, the warehouse's (every missing ``REDSHIFT_*`` at once), and every
value refused beside them. No request is made."""

from __future__ import annotations

import pytest

from patterns.config import SettingsRefused, build_loader, pipeline_settings
from patterns.pipeline import S3ToRedshift
from stateless_state import InvalidArgument

ROLE = "arn:aws:iam::123456789012:role/copy"


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Store the settings build needs a region (Lambda always sets one); it sends nothing."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def problems_of(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsRefused) as e:
        pipeline_settings(env, s3=object())
    message = str(e.value)
    assert len(message.splitlines()) == 1, "one line, for a log and for the CLI"
    assert message.startswith(f"{len(e.value.problems)} problems")
    for i, problem in enumerate(e.value.problems, 1):
        assert f"({i}) {problem}" in message
    return e.value.problems


def test_an_empty_environment_names_everything_it_needs() -> None:
    problems = problems_of({})
    assert len(problems) == 3
    assert "STATELESS_STATE_TABLE" in problems[0]
    assert "MANIFEST_BUCKET" in problems[1]
    assert all(name in problems[2] for name in ("LOCAL_WAREHOUSE", "POSTGRES_DSN", "REDSHIFT_"))


def test_every_missing_redshift_setting_is_named_at_once() -> None:
    env = {"STATELESS_STATE_TABLE": "state", "MANIFEST_BUCKET": "manifests"}
    with pytest.raises(InvalidArgument) as e:
        pipeline_settings({**env, "REDSHIFT_TABLE": "analytics.clicks"}, s3=object())
    assert not isinstance(e.value, SettingsRefused), "one problem: a plain InvalidArgument"
    for name in (
        "REDSHIFT_IAM_ROLE",
        "REDSHIFT_DATABASE",
        "REDSHIFT_WORKGROUP",
        "REDSHIFT_CLUSTER",
    ):
        assert name in str(e.value), name


def test_every_refused_value_is_named_beside_the_missing_ones() -> None:
    env = {
        # the pipeline's own: a table name DynamoDB refuses, no bucket, lanes of zero, a
        # threshold in another script's digits
        "STATELESS_STATE_TABLE": "t",
        "LANES": "0",
        "THRESHOLD_COUNT": "\u0661\u0662",
        # the warehouse's: a bad table, a bad role, both a cluster and a workgroup, bad gzip
        "REDSHIFT_TABLE": "no spaces allowed",
        "REDSHIFT_IAM_ROLE": "copy-role",
        "REDSHIFT_DATABASE": "dev",
        "REDSHIFT_CLUSTER": "main",
        "REDSHIFT_WORKGROUP": "analytics",
        "REDSHIFT_GZIP": "yes",
    }
    problems = problems_of(env)
    expected = [
        "STATELESS_STATE_TABLE='t'",
        "LANES='0'",
        "THRESHOLD_COUNT=",
        "MANIFEST_BUCKET is not set",
        "REDSHIFT_WORKGROUP and REDSHIFT_CLUSTER are both set",
        "REDSHIFT_GZIP='yes'",
        "REDSHIFT_TABLE='no spaces allowed'",
        "REDSHIFT_IAM_ROLE='copy-role'",
    ]
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    assert len(problems) == len(expected)


def test_build_loader_reports_its_warehouse_problems_at_once() -> None:
    with pytest.raises(SettingsRefused) as e:
        build_loader(
            {
                "REDSHIFT_TABLE": "a.b.c.d",
                "REDSHIFT_IAM_ROLE": ROLE,
                "REDSHIFT_DATABASE": "dev",
                "REDSHIFT_WORKGROUP": "x",
                "REDSHIFT_DB_USER": "admin",
            },
            None,
        )
    assert len(e.value.problems) == 3, e.value.problems
    assert any("REDSHIFT_TABLE" in p for p in e.value.problems)
    assert any("database user for a provisioned cluster only" in p for p in e.value.problems)
    assert any("REDSHIFT_WORKGROUP='x'" in p for p in e.value.problems)


def test_from_env_reports_them_all_too() -> None:
    with pytest.raises(SettingsRefused) as e:
        S3ToRedshift.from_env({"LOCAL_WAREHOUSE": "/tmp/w.db"}, s3=object())
    assert [p.split(" is not set")[0] for p in e.value.problems] == [
        "environment variable STATELESS_STATE_TABLE",
        "environment variable MANIFEST_BUCKET",
    ]


def test_a_valid_environment_still_builds() -> None:
    settings = pipeline_settings(
        {
            "STATELESS_STATE_TABLE": "state",
            "MANIFEST_BUCKET": "manifests",
            "REDSHIFT_TABLE": "analytics.clicks",
            "REDSHIFT_IAM_ROLE": ROLE,
            "REDSHIFT_DATABASE": "dev",
            "REDSHIFT_WORKGROUP": "analytics",
        },
        s3=object(),
    )
    assert settings["lanes"] == 1 and settings["stream"] == "events"
