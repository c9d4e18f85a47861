"""The Redshift Data API loader: exact SQL, input validation, statement-id recovery.

moto does not implement BatchExecuteStatement, so the Data API is a botocore Stubber: it checks
every request's exact parameters and fails on any call the test did not expect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from patterns.batcher import Arrival, Batcher, Thresholds
from patterns.batcher.load_ticket import LoadTicket
from patterns.batcher.manifest import Manifest, build_manifest
from patterns.loaders.redshift import CopyFormat, RedshiftDataApiLoader, RedshiftLoadError
from stateless_state import InvalidArgument, Store

ROLE = "arn:aws:iam::123456789012:role/redshift-copy"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rs-admin-AbCdEf"


@pytest.fixture
def data_api() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session().client(
        "redshift-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def loader(client: Any, **kwargs: Any) -> RedshiftDataApiLoader:
    base: dict[str, Any] = {
        "table": "analytics.clicks",
        "iam_role": ROLE,
        "database": "dev",
        "cluster_identifier": "prod-cluster",
        "secret_arn": SECRET,
        "copy_format": CopyFormat.JSON_AUTO,
        "gzip": True,
        "copy_options": ("TIMEFORMAT 'auto'", "MAXERROR 0"),
        "client": client,
        "poll_interval": 0,
    }
    return RedshiftDataApiLoader(**{**base, **kwargs})


def sealed_ticket(store: Store) -> tuple[Batcher, LoadTicket]:
    b = Batcher(store, "clicks", Thresholds(count=2, bytes=None, age=None))
    b.add(Arrival("s3://data/a.json", 10, time.time(), {"bucket": "data", "key": "a.json"}))
    sealed = b.add(
        Arrival("s3://data/b.json", 20, time.time(), {"bucket": "data", "key": "b.json"})
    ).sealed
    assert sealed is not None
    return b, b.claim_load(sealed.id)


EXPECTED_SQL = [
    'LOCK "analytics"."stateless_state_ledger_clicks"',
    'CREATE TEMP TABLE "stage_clicks_0_000000000000" (LIKE "analytics"."clicks")',
    "COPY \"stage_clicks_0_000000000000\" FROM 's3://manifests/m/clicks/0/000000000000.0.manifest' "
    f"IAM_ROLE '{ROLE}' MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto' MAXERROR 0",
    'INSERT INTO "analytics"."clicks" SELECT * FROM "stage_clicks_0_000000000000" WHERE NOT '
    'EXISTS (SELECT 1 FROM "analytics"."stateless_state_ledger_clicks" '
    "WHERE batch_id = 'clicks/0/000000000000')",
    'INSERT INTO "analytics"."stateless_state_ledger_clicks" (batch_id, fence, loaded_at, status) '
    "SELECT 'clicks/0/000000000000', 1, GETDATE(), 'loaded' WHERE NOT EXISTS (SELECT 1 FROM "
    '"analytics"."stateless_state_ledger_clicks" WHERE batch_id = \'clicks/0/000000000000\')',
    'UPDATE "analytics"."stateless_state_ledger_clicks" SET status = status '
    "WHERE batch_id = 'clicks/0/000000000000' AND status = 'abandoned'",
]


def ticket_and_manifest(
    store: Store, statement: str | None = None
) -> tuple[Batcher, LoadTicket, Manifest]:
    """The batcher, a sealed batch's load ticket (``statement`` recorded on it first, if
    given) and the manifest of its members."""
    b, ticket = sealed_ticket(store)
    if statement is not None:
        ticket.record_statement(statement)
    manifest = build_manifest(
        ticket.batch.id, b.members(ticket.batch.id), bucket="manifests", prefix="m/"
    )
    return b, ticket, manifest


def test_exact_statements(data_api: tuple[Any, Stubber]) -> None:
    sql = loader(data_api[0]).statements(
        "clicks/0/000000000000", "s3://manifests/m/clicks/0/000000000000.0.manifest", 1
    )
    assert sql == EXPECTED_SQL


def test_load_records_statement_id_before_waiting(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    client, stub = data_api
    b, ticket, manifest = ticket_and_manifest(moto_store)
    stub.add_response(
        "batch_execute_statement",
        {"Id": "stmt-1"},
        {
            "Sqls": EXPECTED_SQL,
            "StatementName": "stateless_state:clicks/0/000000000000",
            "Database": "dev",
            "ClusterIdentifier": "prod-cluster",
            "SecretArn": SECRET,
        },
    )
    stub.add_response("describe_statement", {"Id": "stmt-1", "Status": "STARTED"}, {"Id": "stmt-1"})
    stub.add_response(
        "describe_statement",
        {
            "Id": "stmt-1",
            "Status": "FINISHED",
            "SubStatements": [
                {"Id": f"stmt-1:{i}", "ResultRows": r} for i, r in enumerate([0, 0, 2, 2, 1, 0], 1)
            ],
        },
        {"Id": "stmt-1"},
    )
    outcome = loader(client).load(ticket, manifest)
    assert outcome.committed and outcome.statement_id == "stmt-1" and outcome.rows == 2
    stored = b.batch(ticket.batch.id)
    assert stored is not None and stored.statement_id == "stmt-1"


def finished(statement_id: str, rows: list[int]) -> dict[str, Any]:
    return {
        "Id": statement_id,
        "Status": "FINISHED",
        "SubStatements": [
            {"Id": f"{statement_id}:{i}", "ResultRows": r} for i, r in enumerate(rows, 1)
        ],
    }


def test_a_load_of_an_abandoned_batch_commits_nothing_and_says_so(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    client, stub = data_api
    _, ticket, manifest = ticket_and_manifest(moto_store)
    stub.add_response("batch_execute_statement", {"Id": "stmt-1"})
    # The ledger held the abandon's tombstone: no rows inserted, no ledger row, the probe hit.
    stub.add_response("describe_statement", finished("stmt-1", [0, 0, 2, 0, 0, 1]))
    outcome = loader(client).load(ticket, manifest)
    assert (outcome.committed, outcome.abandoned, outcome.rows) == (False, True, 0)
    # A successor finds that statement on the batch and asks what it did, not loading again.
    stub.add_response("describe_statement", finished("stmt-1", [0, 0, 2, 0, 0, 1]))
    outcome = loader(client).load(ticket, manifest)
    assert (outcome.committed, outcome.abandoned, outcome.statement_id) == (False, True, "stmt-1")
    # Had another load committed, the probe would have missed.
    stub.add_response("describe_statement", finished("stmt-1", [0, 0, 2, 0, 0, 0]))
    outcome = loader(client).load(ticket, manifest)
    assert (outcome.committed, outcome.abandoned) == (False, False)


EXPECTED_ABANDON_SQL = [
    'LOCK "analytics"."stateless_state_ledger_clicks"',
    'INSERT INTO "analytics"."stateless_state_ledger_clicks" (batch_id, fence, loaded_at, status) '
    "SELECT 'clicks/0/000000000000', 0, GETDATE(), 'abandoned' WHERE NOT EXISTS (SELECT 1 FROM "
    '"analytics"."stateless_state_ledger_clicks" WHERE batch_id = \'clicks/0/000000000000\')',
    'UPDATE "analytics"."stateless_state_ledger_clicks" SET status = status '
    "WHERE batch_id = 'clicks/0/000000000000' AND status = 'loaded'",
]


def test_abandon_writes_a_tombstone_unless_a_load_committed(
    data_api: tuple[Any, Stubber],
) -> None:
    client, stub = data_api
    expected = {
        "Sqls": EXPECTED_ABANDON_SQL,
        "StatementName": "stateless_state:abandon:clicks/0/000000000000",
        "Database": "dev",
        "ClusterIdentifier": "prod-cluster",
        "SecretArn": SECRET,
    }
    stub.add_response("batch_execute_statement", {"Id": "ab-1"}, expected)
    stub.add_response("describe_statement", finished("ab-1", [0, 1, 0]), {"Id": "ab-1"})
    assert loader(client).abandon("clicks/0/000000000000") == "abandoned"
    stub.add_response("batch_execute_statement", {"Id": "ab-2"}, expected)
    stub.add_response("describe_statement", finished("ab-2", [0, 0, 1]), {"Id": "ab-2"})
    assert loader(client).abandon("clicks/0/000000000000") == "loaded"
    with pytest.raises(InvalidArgument, match="batch id"):
        loader(client).abandon("clicks/0/0'; DROP TABLE x; --")


def test_recovery_asks_the_data_api_instead_of_loading_again(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    client, stub = data_api
    _, first, manifest = ticket_and_manifest(moto_store, statement="stmt-old")
    stub.add_response(
        "describe_statement", {"Id": "stmt-old", "Status": "FINISHED"}, {"Id": "stmt-old"}
    )
    outcome = loader(client).load(first, manifest)
    assert not outcome.committed and outcome.statement_id == "stmt-old"


def test_recovery_reloads_after_a_failed_statement(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    client, stub = data_api
    b, ticket, manifest = ticket_and_manifest(moto_store, statement="stmt-old")
    stub.add_response(
        "describe_statement",
        {"Id": "stmt-old", "Status": "FAILED", "Error": "disk full"},
        {"Id": "stmt-old"},
    )
    stub.add_response("batch_execute_statement", {"Id": "stmt-2"})
    stub.add_response(
        "describe_statement",
        {"Id": "stmt-2", "Status": "ABORTED", "Error": "cancelled"},
        {"Id": "stmt-2"},
    )
    with pytest.raises(RedshiftLoadError, match="stmt-2 ABORTED: cancelled"):
        loader(client).load(ticket, manifest)
    stored = b.batch(ticket.batch.id)
    assert stored is not None and stored.statement_id == "stmt-2"


def test_serverless_with_iam_auth(data_api: tuple[Any, Stubber]) -> None:
    rl = loader(
        data_api[0], cluster_identifier=None, workgroup_name="wg", secret_arn=None, db_user="loader"
    )
    assert rl._connection() == {"Database": "dev", "WorkgroupName": "wg", "DbUser": "loader"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": 'clicks"; DROP TABLE users; --'}, "not a valid Redshift identifier"),
        ({"table": "a.b.c"}, "not a valid Redshift identifier"),
        ({"ledger_table": "ledger; DELETE"}, "not a valid Redshift identifier"),
        ({"iam_role": "arn:aws:iam::123456789012:role/x' CREDENTIALS 'y"}, "IAM role ARN"),
        ({"database": "dev; --"}, "database name"),
        ({"copy_options": ("CREDENTIALS 'aws_access_key_id=AKIA'",)}, "not in the allowlist"),
        ({"copy_options": ("IGNOREHEADER 1; DROP TABLE x",)}, "not in the allowlist"),
        ({"copy_format": "FORMAT AS AVRO 's3://x'"}, "CopyFormat"),
        ({"workgroup_name": "wg"}, "exactly one of cluster_identifier or workgroup_name"),
        ({"secret_arn": "arn:aws:secretsmanager:x'"}, "secret ARN"),
    ],
)
def test_injection_attempts_are_rejected(
    data_api: tuple[Any, Stubber], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        loader(data_api[0], **kwargs)


@pytest.mark.parametrize(
    ("batch", "url", "message"),
    [
        ("cl'icks/0/000000000000", "s3://b-1/m.manifest", "batch id"),
        ("clicks/0/000000000000", "s3://b-1/m' IAM_ROLE 'x", "manifest URL"),
        ("clicks/0/000000000000", "https://evil/m", "manifest URL"),
    ],
)
def test_statement_inputs_are_validated(
    data_api: tuple[Any, Stubber], batch: str, url: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        loader(data_api[0]).statements(batch, url, 1)


def test_a_stream_redshift_cannot_name_is_refused_when_the_pipeline_is_built(
    moto_store: Store,
) -> None:
    from patterns.pipeline import S3ToRedshift

    with pytest.raises(InvalidArgument, match="stream names loaded into Redshift"):
        S3ToRedshift(moto_store, stream="a#b", loader=loader(None), manifest_bucket="bkt-1")
    S3ToRedshift(moto_store, stream="clicks:eu-1", loader=loader(None), manifest_bucket="bkt-1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"session_keep_alive": 0}, "session_keep_alive"),
        ({"session_keep_alive": 86401}, "session_keep_alive"),
        ({"session_keep_alive": True}, "session_keep_alive"),
        ({"session_keep_alive": "300"}, "session_keep_alive"),
        ({"max_rechecks": -1}, "max_rechecks"),
        ({"max_rechecks": 9}, "max_rechecks"),
        ({"copy_options": ("MAXERROR 0", "MAXERROR 10")}, "MAXERROR more than once"),
        ({"copy_options": ("TIMEFORMAT 'auto'", "TIMEFORMAT 'auto'")}, "more than once"),
        ({"copy_format": CopyFormat.PARQUET}, "Parquet does not take GZIP"),
        (
            {"copy_format": CopyFormat.PARQUET, "gzip": False, "copy_options": ("MAXERROR 0",)},
            "Parquet does not take MAXERROR 0",
        ),
        (
            {
                "copy_format": CopyFormat.PARQUET,
                "gzip": False,
                "copy_options": ("REGION 'eu-west-1'",),
            },
            "Parquet does not take REGION",
        ),
    ],
)
def test_settings_every_load_would_fail_on_are_refused_when_built(
    data_api: tuple[Any, Stubber], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        loader(data_api[0], **kwargs)


def test_parquet_takes_the_options_redshift_accepts_for_columnar_files(
    data_api: tuple[Any, Stubber],
) -> None:
    rl = loader(
        data_api[0],
        copy_format=CopyFormat.PARQUET,
        gzip=False,
        copy_options=("ACCEPTINVCHARS", "STATUPDATE OFF"),
    )
    assert rl.copy_statements("c/0/000000000000", "s3://bkt/m")[1].endswith(
        "MANIFEST FORMAT AS PARQUET ACCEPTINVCHARS STATUPDATE OFF"
    )


def test_a_manifest_key_up_to_s3s_limit_is_accepted(data_api: tuple[Any, Stubber]) -> None:
    """The pipeline accepts manifest prefixes whose keys reach S3's 1,024 bytes; the loader must
    take such URLs (a shorter cap failed every load of them)."""
    key = "m/" + "k" * 1020 + ".m"
    assert len(key) == 1024
    assert (
        f"'s3://bkt/{key}'"
        in loader(data_api[0]).copy_statements("c/0/000000000000", f"s3://bkt/{key}")[1]
    )
    with pytest.raises(InvalidArgument, match="manifest URL"):
        loader(data_api[0]).copy_statements("c/0/000000000000", f"s3://bkt/{key}x")


def rewritable(b: Batcher, ticket: LoadTicket, rechecks: list[bool]) -> Any:
    """The ticket's manifest with an entry that names mutable content (an ETag) and a recheck
    that records each call and finds nothing changed."""
    from dataclasses import replace

    def unchanged(manifest: Any, *, everything: bool = False) -> None:
        rechecks.append(everything)

    manifest = build_manifest(
        ticket.batch.id, b.members(ticket.batch.id), bucket="manifests", prefix="m/"
    )
    entries = tuple(replace(e, etag='"abc"') for e in manifest.entries)
    return replace(manifest, entries=entries, recheck=unchanged)


def test_a_manifest_of_mutable_keys_loads_in_a_session(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    """Exact calls: COPY in a new session (keep-alive, the connection named), the recheck, then
    the commit on the session id alone (the Data API refuses a session id with the connection's
    names), its statement id recorded before the wait; the outcome read from the commit's last
    three row counts."""
    client, stub = data_api
    b, ticket = sealed_ticket(moto_store)
    rechecks: list[bool] = []
    manifest = rewritable(b, ticket, rechecks)
    session = "0c8d3a1e-1b2c-4d5e-8f90-123456789abc"
    connection = {"Database": "dev", "ClusterIdentifier": "prod-cluster", "SecretArn": SECRET}
    stub.add_response(
        "batch_execute_statement",
        {"Id": "copy-1", "SessionId": session},
        {
            "Sqls": EXPECTED_SQL[1:3],
            "StatementName": "stateless_state:copy:clicks/0/000000000000",
            "SessionKeepAliveSeconds": 300,
            **connection,
        },
    )
    stub.add_response("describe_statement", finished("copy-1", [0, 2]), {"Id": "copy-1"})
    stub.add_response(
        "batch_execute_statement",
        {"Id": "commit-1"},
        {
            "Sqls": [EXPECTED_SQL[0], *EXPECTED_SQL[3:]],
            "StatementName": "stateless_state:clicks/0/000000000000",
            "SessionId": session,
        },
    )
    stub.add_response("describe_statement", finished("commit-1", [0, 2, 1, 0]), {"Id": "commit-1"})
    outcome = loader(client).load(ticket, manifest)
    assert (outcome.committed, outcome.rows, outcome.statement_id) == (True, 2, "commit-1")
    assert rechecks == [False], "checked once after COPY, and nothing had changed"
    stored = b.batch(ticket.batch.id)
    assert stored is not None and stored.statement_id == "commit-1"


def test_a_failed_session_copy_commits_nothing_and_records_no_statement(
    moto_store: Store, data_api: tuple[Any, Stubber]
) -> None:
    client, stub = data_api
    b, ticket = sealed_ticket(moto_store)
    rechecks: list[bool] = []
    manifest = rewritable(b, ticket, rechecks)
    stub.add_response(
        "batch_execute_statement",
        {"Id": "copy-1", "SessionId": "0c8d3a1e-1b2c-4d5e-8f90-123456789abc"},
    )
    stub.add_response(
        "describe_statement", {"Id": "copy-1", "Status": "FAILED", "Error": "S3 denied"}
    )
    with pytest.raises(RedshiftLoadError, match="COPY of batch clicks/0/000000000000"):
        loader(client).load(ticket, manifest)
    assert rechecks == []
    stored = b.batch(ticket.batch.id)
    assert stored is not None and stored.statement_id is None, "a successor loads afresh"
