"""The SAM template: valid (cfn-lint), and its IAM grants exactly what the functions call.

What the functions call is observed, not listed by hand: the real handler and sweeper run against
DynamoDB Local and the local S3 with a recorder on every client (recovery paths provoked with
injected ambiguous writes), and the Data API through a recording fake.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode

from patterns import S3ToRedshift, Thresholds
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.testing import LocalS3, direct, put_object, sqs
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FaultInjector

TEMPLATE = Path(__file__).parents[2] / "examples" / "s3_redshift_batcher" / "template.yaml"
# Called by the platform with the function's role, not by our code: the Data API reads the
# secret with the caller's permissions, and Lambda sends the sweeper's failed (asynchronous)
# invocations to the dead-letter queue. The loader's failed messages SQS itself redrives.
PLATFORM = {
    "LoaderFunction": {"secretsmanager:GetSecretValue"},
    "SweeperFunction": {"secretsmanager:GetSecretValue", "sqs:SendMessage"},
}
TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def test_template_passes_cfn_lint() -> None:
    problems = lint_file(TEMPLATE)
    assert problems == [], "\n".join(str(p) for p in problems)


def granted(function: str) -> set[str]:
    template, problems = decode(str(TEMPLATE))
    assert not problems
    actions: set[str] = set()
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


class Recorder:
    def __init__(self) -> None:
        self.actions: set[str] = set()

    def attach(self, client: Any, prefix: str) -> None:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            if model.name == "TransactWriteItems":
                for item in params["TransactItems"]:
                    self.actions.update(TRANSACT_ACTIONS[k] for k in item)
            elif model.name == "HeadObject":  # authorized as a read of the object
                self.actions.add("s3:GetObjectVersion" if "VersionId" in params else "s3:GetObject")
            elif model.name == "CopyObject":  # a read of the source, a write of the copy
                read = "GetObjectVersion" if "VersionId" in params["CopySource"] else "GetObject"
                self.actions.update({f"s3:{read}", "s3:PutObject"})
            else:
                self.actions.add(f"{prefix}:{model.name}")

        client.meta.events.register("before-parameter-build.*.*", record)


class FakeDataApi:
    """Answers like the Data API for a statement that finishes at once (in a new session when
    the call asks for one); records the calls."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def batch_execute_statement(self, **params: Any) -> dict[str, Any]:
        self.recorder.actions.add("redshift-data:BatchExecuteStatement")
        if "SessionKeepAliveSeconds" in params:
            return {"Id": "stmt", "SessionId": "0c8d3a1e-1b2c-4d5e-8f90-123456789abc"}
        return {"Id": "stmt"}

    def describe_statement(self, **_: Any) -> dict[str, Any]:
        self.recorder.actions.add("redshift-data:DescribeStatement")
        return {"Id": "stmt", "Status": "FINISHED", "SubStatements": []}


def pipeline(store: Store, s3: Any, bucket: str, recorder: Recorder) -> S3ToRedshift:
    recorder.attach(store.client, "dynamodb")
    recorder.attach(s3, "s3")
    loader = RedshiftDataApiLoader(
        table="analytics.events",
        iam_role="arn:aws:iam::123456789012:role/copy",
        database="dev",
        workgroup_name="wg",
        client=FakeDataApi(recorder),
        poll_interval=0,
    )
    return S3ToRedshift(
        store,
        stream="iam",
        loader=loader,
        manifest_bucket=bucket,
        thresholds=Thresholds(count=4, bytes=None, age=0.2),
        s3_client=s3,
        min_load_time=0,
    )


@pytest.mark.race
def test_iam_grants_exactly_what_the_functions_call(
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    dynamodb_local: DynamoDBLocal,
    local_s3: LocalS3,
) -> None:
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    records = [put_object(s3, bucket, f"incoming/{i}.json", b'{"x": 1}\n') for i in range(62)]
    # Two objects rewritten before their batches load (one loaded by the handler, one by the
    # sweeper): their notified versions are staged, by version id, before COPY.
    for i in (0, 61):
        s3.put_object(Bucket=bucket, Key=f"incoming/{i}.json", Body=b'{"x": 2}\n')
    # The production topology delivers SQS batches; a direct S3 event is the simpler option.
    # With batches of 4, the last 2 records stay open until the sweeper seals them by age.
    events = [sqs(*records[i : i + 5]) for i in range(0, 60, 5)] + [direct(*records[60:])]

    handler_calls = Recorder()
    handler = pipeline(ddb_store, s3, bucket, handler_calls)
    with FaultInjector(ddb_store.client, seed=5) as faults:
        faults.add("ambiguous", rate=0.4, operations=["TransactWriteItems"])
        for event in events:
            handler.handle(event)
        assert faults.injected["ambiguous"] > 3
    handler.handle(events[0])  # a duplicate

    time.sleep(0.3)  # the last open batch ages
    sweeper_store = Store(ddb_store.table_name, client=dynamodb_local.client())
    sweeper_s3 = local_s3.client()
    sweeper_calls = Recorder()
    sweeper = pipeline(sweeper_store, sweeper_s3, bucket, sweeper_calls)
    sweeper.sweep()

    assert granted("LoaderFunction") == handler_calls.actions | PLATFORM["LoaderFunction"]
    assert granted("SweeperFunction") == sweeper_calls.actions | PLATFORM["SweeperFunction"]


def test_the_production_topology_is_s3_to_sqs_to_lambda() -> None:
    """S3 notifies the queue (only this bucket may send, only under the input prefix), the
    loader takes batches with a batching window and reports exactly the failed messages, and
    SQS moves a message that keeps failing to the dead-letter queue."""
    template, problems = decode(str(TEMPLATE))
    assert not problems
    resources = template["Resources"]
    queue = resources["IngestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert int(queue["VisibilityTimeout"]) >= 6 * int(template["Globals"]["Function"]["Timeout"])
    events = resources["LoaderFunction"]["Properties"]["Events"]
    assert [e["Type"] for e in events.values()] == ["SQS"]
    source = next(iter(events.values()))["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert {"BatchSize", "MaximumBatchingWindowInSeconds"} <= set(source)
    notify = resources["DataBucket"]["Properties"]["NotificationConfiguration"]
    (target,) = notify["QueueConfigurations"]
    assert target["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert target["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": {"Ref": "InputPrefix"}}
    ]
    (statement,) = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert set(statement["Condition"]) == {"ArnEquals", "StringEquals"}
    assert "IngestQueuePolicy" in _plain(resources["DataBucket"].get("DependsOn", []))


def test_the_template_declares_the_table_create_table_makes() -> None:
    """One table definition: the SAM template's StateTable is ``table_schema()`` with TTL on
    (and point-in-time recovery, which only a deployed table needs); the CLI's CloudFormation
    is the same."""
    from patterns.cli import cloudformation
    from stateless_state.store import TTL_ATTRIBUTE, table_schema

    template, errors = decode(str(TEMPLATE))
    assert not errors
    declared = dict(template["Resources"]["StateTable"]["Properties"])
    declared.pop("PointInTimeRecoverySpecification")
    expected = {
        **table_schema(),
        "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
    }
    assert _plain(declared) == _plain(expected)
    cli = cloudformation("T")["Resources"]["StateTable"]["Properties"]
    assert _plain({k: v for k, v in cli.items() if k != "TableName"}) == _plain(expected)


def _plain(value: Any) -> Any:
    """cfn-lint's decoded nodes as plain dicts, lists and str, for comparison."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, bool) else str(value)
