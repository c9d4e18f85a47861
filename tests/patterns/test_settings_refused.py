"""Settings that would make every later load fail are refused when the pipeline is built, before
any arrival is stored: each environment variable that is present but invalid, conflicting
settings, manifest buckets S3 refuses, and batch ids that are not the batcher's own spelling
(moto and unit level; the abandon under a non-canonical id runs on DynamoDB Local)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns.batcher.abandon import abandon_batch
from patterns.batcher.batches import batch_id, parse_batch_id
from patterns.config import pipeline_settings
from patterns.loaders import redshift_ledger
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.pipeline import S3ToRedshift
from stateless_state import InvalidArgument, Store
from tests.support.pipelines import sealed_pipeline

ROLE = "arn:aws:iam::123456789012:role/copy"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
REDSHIFT = {
    "REDSHIFT_TABLE": "analytics.clicks",
    "REDSHIFT_IAM_ROLE": ROLE,
    "REDSHIFT_DATABASE": "dev",
    "REDSHIFT_WORKGROUP": "analytics",
}


@pytest.fixture(scope="module")
def store() -> Store:
    """A Store nothing is sent through: building a pipeline makes no request."""
    return Store("settings-refused", region_name="us-east-1")


@pytest.fixture
def build(store: Store, tmp_path: Path) -> Callable[[Mapping[str, str]], dict[str, Any]]:
    """``pipeline_settings`` over a valid local-warehouse environment with ``overrides``
    (an override of ``None`` removes the variable)."""
    warehouse = str(tmp_path / "w.db")

    def run(overrides: Mapping[str, str | None]) -> dict[str, Any]:
        env = {"MANIFEST_BUCKET": "bucket", "LOCAL_WAREHOUSE": warehouse, **overrides}
        return pipeline_settings(
            {k: v for k, v in env.items() if v is not None}, store=store, s3=object()
        )

    return run


def refused(build: Callable[..., Any], overrides: Mapping[str, str | None], *names: str) -> str:
    with pytest.raises(InvalidArgument) as e:
        build(overrides)
    message = str(e.value)
    for name in names:
        assert name in message, f"{name} not named in: {message}"
    return message


# What int() and float() accept but a setting must not: other scripts' digits, full-width
# digits, underscores, whitespace, signs, exponents, hex, nan and infinities.
HOSTILE_NUMBERS = [
    " ",
    "\u0661\u0662",
    "\uff11\uff12",
    "1_000",
    " 12",
    "12 ",
    "12\n",
    "+5",
    "-1",
    "1e3",
    "0x10",
    "nan",
    "inf",
    "-inf",
    "1.",
    ".5",
    "12abc",
]
INTEGERS = {"LANES", "THRESHOLD_COUNT", "THRESHOLD_BYTES"}
SECONDS = {"THRESHOLD_AGE", "LOAD_LEASE"}


@pytest.mark.parametrize("name", sorted(INTEGERS | SECONDS))
@pytest.mark.parametrize("raw", HOSTILE_NUMBERS)
def test_a_number_int_or_float_would_take_is_refused_naming_the_variable(
    build: Any, name: str, raw: str
) -> None:
    message = refused(build, {name: raw}, name, repr(raw))
    assert "ASCII digits" in message, "says what is accepted"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LANES", "0"),
        ("LANES", "257"),
        ("LANES", ""),
        ("LOAD_LEASE", "0"),
        ("LOAD_LEASE", "0.5"),
        ("LOAD_LEASE", "86401"),
        ("LOAD_LEASE", ""),
        ("THRESHOLD_COUNT", "0"),
        ("THRESHOLD_BYTES", "0"),
        ("THRESHOLD_BYTES", str(2**63)),
        ("THRESHOLD_AGE", "0"),
        ("THRESHOLD_AGE", "0.0"),
        ("THRESHOLD_AGE", "1" + "0" * 13),
    ],
)
def test_zero_empty_or_out_of_range_is_refused_not_defaulted(
    build: Any, name: str, raw: str
) -> None:
    refused(build, {name: raw}, name, repr(raw))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(INTEGERS | SECONDS)),
    raw=st.text(max_size=8).filter(lambda s: not re.fullmatch(r"[0-9]+(\.[0-9]+)?", s, re.ASCII)),
)
def test_drawn_text_that_is_no_ascii_number_is_refused(build: Any, name: str, raw: str) -> None:
    if raw == "" and name.startswith("THRESHOLD_"):
        return  # empty turns a threshold off, as documented
    refused(build, {name: raw}, name)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lanes=st.integers(1, 256),
    count=st.integers(1, 10**9),
    age=st.integers(1, 10**6),
    tenths=st.integers(0, 9),
    lease=st.integers(1, 86_399),
)
def test_valid_numbers_are_taken_exactly(
    build: Any, lanes: int, count: int, age: int, tenths: int, lease: int
) -> None:
    got = build(
        {
            "LANES": str(lanes),
            "THRESHOLD_COUNT": str(count),
            "THRESHOLD_BYTES": "",
            "THRESHOLD_AGE": f"{age}.{tenths}",
            "LOAD_LEASE": f"{lease}.{tenths}",
        }
    )
    assert got["lanes"] == lanes
    assert (got["thresholds"].count, got["thresholds"].bytes) == (count, None)
    assert got["thresholds"].age == float(f"{age}.{tenths}")
    assert got["load_lease"] == float(f"{lease}.{tenths}")


def test_every_threshold_off_names_the_three_variables(build: Any) -> None:
    refused(
        build,
        {"THRESHOLD_COUNT": "", "THRESHOLD_BYTES": "", "THRESHOLD_AGE": ""},
        "THRESHOLD_COUNT",
        "THRESHOLD_BYTES",
        "THRESHOLD_AGE",
    )


@pytest.mark.parametrize("raw", ["maybe", "true", "yes", "2", " 1", ""])
def test_redshift_gzip_takes_0_or_1(build: Any, raw: str) -> None:
    env = {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_GZIP": raw}
    if raw == "":
        assert build(env)["loader"].gzip is False, "empty is unset"
        return
    refused(build, env, "REDSHIFT_GZIP", repr(raw))


def test_redshift_gzip_1_and_0(build: Any) -> None:
    for raw, gzip in (("1", True), ("0", False)):
        assert (
            build({"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_GZIP": raw})["loader"].gzip
            is gzip
        )


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"POSTGRES_DSN": "postgresql://h/db", "POSTGRES_TABLE": "t"}, ("LOCAL_WAREHOUSE",)),
        ({"REDSHIFT_TABLE": "t"}, ("LOCAL_WAREHOUSE", "REDSHIFT_TABLE")),
        ({"REDSHIFT_GZIP": "1"}, ("LOCAL_WAREHOUSE", "REDSHIFT_GZIP")),
        ({"LOCAL_WAREHOUSE": None, "POSTGRES_DSN": "x", **REDSHIFT}, ("POSTGRES_DSN",)),
        ({"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_CLUSTER": "c1"}, ("REDSHIFT_CLUSTER",)),
        (
            {
                "LOCAL_WAREHOUSE": None,
                **REDSHIFT,
                "REDSHIFT_SECRET_ARN": SECRET,
                "REDSHIFT_DB_USER": "loader",
            },
            ("REDSHIFT_SECRET_ARN", "REDSHIFT_DB_USER"),
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_DB_USER": "loader"},
            ("REDSHIFT_WORKGROUP", "REDSHIFT_DB_USER"),
        ),
        (
            {"LOCAL_WAREHOUSE": None, "REDSHIFT_TABLE": "t"},
            ("REDSHIFT_TABLE", "REDSHIFT_IAM_ROLE", "REDSHIFT_DATABASE", "REDSHIFT_WORKGROUP"),
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_WORKGROUP": None},
            ("REDSHIFT_WORKGROUP", "REDSHIFT_CLUSTER"),
        ),
        ({"LOCAL_WAREHOUSE": None, "POSTGRES_TABLE": "t"}, ("POSTGRES_TABLE", "POSTGRES_DSN")),
        (
            {"LOCAL_WAREHOUSE": None, "POSTGRES_DSN": "postgresql://h/db"},
            ("POSTGRES_DSN", "POSTGRES_TABLE"),
        ),
        (
            {
                "LOCAL_WAREHOUSE": None,
                "POSTGRES_DSN": "x",
                "POSTGRES_TABLE": "public.Events",
                "POSTGRES_LEDGER_TABLE": "Events",
            },
            ("POSTGRES_TABLE", "POSTGRES_LEDGER_TABLE"),
        ),
        (
            {
                "LOCAL_WAREHOUSE": None,
                **REDSHIFT,
                "REDSHIFT_TABLE": "public.Events",
                "REDSHIFT_LEDGER_TABLE": "events",
            },
            ("REDSHIFT_TABLE", "REDSHIFT_LEDGER_TABLE"),
        ),
        ({"LOCAL_WAREHOUSE": None}, ("LOCAL_WAREHOUSE", "POSTGRES_DSN", "REDSHIFT_TABLE")),
    ],
)
def test_conflicting_or_half_given_warehouse_settings_name_both_variables(
    build: Any, overrides: dict[str, str | None], names: tuple[str, ...]
) -> None:
    refused(build, overrides, *names)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"MANIFEST_BUCKET": "My_Bucket"}, "MANIFEST_BUCKET"),
        ({"MANIFEST_BUCKET": ""}, "MANIFEST_BUCKET"),
        ({"MANIFEST_PREFIX": "my manifests/"}, "MANIFEST_PREFIX"),
        ({"STREAM": ""}, "STREAM"),
        ({"LOCAL_WAREHOUSE": None, **REDSHIFT, "STREAM": "clicks today"}, "STREAM"),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_IAM_ROLE": "arn:aws:iam::1:role/r"},
            "REDSHIFT_IAM_ROLE",
        ),
        ({"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_TABLE": "a b"}, "REDSHIFT_TABLE"),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_LEDGER_TABLE": "a;b"},
            "REDSHIFT_LEDGER_TABLE",
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_TABLE": "s." + "t" * 128},
            "REDSHIFT_TABLE",
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_DATABASE": "d\u0661"},
            "REDSHIFT_DATABASE",
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_SECRET_ARN": "secret"},
            "REDSHIFT_SECRET_ARN",
        ),
        (
            {"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_WORKGROUP": "My_Workgroup"},
            "REDSHIFT_WORKGROUP",
        ),
        (
            {
                "LOCAL_WAREHOUSE": None,
                **REDSHIFT,
                "REDSHIFT_WORKGROUP": None,
                "REDSHIFT_CLUSTER": "Prod-Cluster",
            },
            "REDSHIFT_CLUSTER",
        ),
        (
            {"LOCAL_WAREHOUSE": None, "POSTGRES_DSN": "x", "POSTGRES_TABLE": "a\x00b"},
            "POSTGRES_TABLE",
        ),
    ],
)
def test_an_invalid_value_names_its_variable(
    build: Any, overrides: dict[str, str | None], name: str
) -> None:
    refused(build, overrides, name)


def test_a_complete_redshift_environment_builds(build: Any) -> None:
    loader = build({"LOCAL_WAREHOUSE": None, **REDSHIFT, "REDSHIFT_SECRET_ARN": SECRET})["loader"]
    assert (loader.table, loader.workgroup_name, loader.secret_arn) == (
        "analytics.clicks",
        "analytics",
        SECRET,
    )
    cluster = {**REDSHIFT, "REDSHIFT_WORKGROUP": "", "REDSHIFT_CLUSTER": "prod-1"}
    loader = build({"LOCAL_WAREHOUSE": None, **cluster, "REDSHIFT_DB_USER": "loader"})["loader"]
    assert (loader.cluster_identifier, loader.workgroup_name, loader.db_user) == (
        "prod-1",
        None,
        "loader",
    ), "empty is unset: a template passes every parameter"
    long = {**REDSHIFT, "REDSHIFT_TABLE": "s." + "t" * 110}  # its ledger's name is shortened
    loader = build({"LOCAL_WAREHOUSE": None, **long})["loader"]
    assert loader.ledger_table == redshift_ledger("s." + "t" * 110)


@pytest.mark.parametrize(
    "bucket",
    [
        "a..b",
        "192.168.5.4",
        "xn--bucket",
        "sthree-bucket",
        "amzn-s3-demo-bucket",
        "bucket-s3alias",
        "bucket--ol-s3",
        "bucket.mrap",
        "bucket--x-s3",
        "bucket--table-s3",
        "Bucket",
        "b",
        "b" * 64,
        "bucket\n",
    ],
)
def test_a_manifest_bucket_s3_refuses_is_refused_when_the_pipeline_is_built(
    store: Store, tmp_path: Path, bucket: str
) -> None:
    loader = LocalWarehouseLoader(tmp_path / "w.db", None)
    with pytest.raises(InvalidArgument, match="bucket"):
        S3ToRedshift(store, stream="s", loader=loader, manifest_bucket=bucket)


def test_bucket_names_s3_allows_are_kept(store: Store, tmp_path: Path) -> None:
    loader = LocalWarehouseLoader(tmp_path / "w.db", None)
    for bucket in ("abc", "my.data-2", "1-2-3", "a" * 63, "192.168.5.4a"):
        pipeline = S3ToRedshift(store, stream="s", loader=loader, manifest_bucket=bucket)
        assert pipeline.manifest_bucket == bucket


# Batch ids: only the batcher's own spelling names a batch.

NON_CANONICAL = [
    "s/\u0660/000000000001",  # Arabic-Indic zero
    "s/0/\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff11",  # full-width
    "s/0/000_000_000_001",
    "s/ 0/000000000001",
    "s/0/000000000001 ",
    "s/+0/000000000001",
    "s/-0/000000000001",
    "s/00/000000000001",
    "s/0/1",
    "s/0/0000000000001",
    "/0/000000000001",
    "s/0",
    "s",
]


@pytest.mark.parametrize("value", NON_CANONICAL)
def test_a_batch_id_not_spelt_as_the_batcher_writes_it_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument, match="batch id"):
        parse_batch_id(value)


@given(
    stream=st.text(min_size=1, max_size=30),
    lane=st.integers(0, 255),
    seq=st.integers(0, 10**14),
)
def test_batch_ids_round_trip(stream: str, lane: int, seq: int) -> None:
    assert parse_batch_id(batch_id(stream, lane, seq)) == (stream, lane, seq)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda b: b.replace("/0/", "/00/"),
        lambda b: b.replace("/0/", "/\u0660/"),
        lambda b: b.rsplit("/", 1)[0] + "/0",
    ],
)
def test_an_abandon_under_another_spelling_never_answers_abandoned_while_a_loader_commits(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    at_point: Any,
    spelling: Callable[[str], str],
) -> None:
    """The operator's batch id, spelt otherwise than the batcher writes it, found the batch in
    DynamoDB but wrote the warehouse tombstone under the other spelling: the loader holding
    the batch then committed it after the abandon answered "abandoned"."""
    pipeline, loader, sealed = sealed_pipeline(ddb_store, s3_bucket, tmp_path)
    found: list[object] = []

    def abandon() -> None:
        try:
            found.append(
                abandon_batch(pipeline.batcher, loader, spelling(sealed), who="op", why="x")
            )
        except InvalidArgument as e:
            found.append(e)

    at_point("mid-load", abandon)  # a loader holds the claim, its manifest written
    outcome = pipeline.load(sealed)
    committed = sum(loader.counts_by_object().values())
    assert not (found == ["abandoned"] and committed), f"abandoned, yet {committed} rows"
    assert len(found) == 1 and isinstance(found[0], InvalidArgument), "refused up front"
    assert outcome == "loaded" and committed == 4, "the refused abandon changed nothing"
