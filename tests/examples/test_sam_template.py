"""The SAM templates (the batcher's and the Quick start's): valid (cfn-lint with its
informational checks), their IAM grants exactly what the functions call, and their operations:
alarms on metrics the code publishes, log retention, retain policies, the staged copies' expiry.

What the functions call is observed, not listed by hand: the real handlers and sweeper run
against DynamoDB Local and the local S3 with a recorder on every client (recovery paths provoked
with injected ambiguous writes), and the Data API through a recording fake.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from patterns import S3ToRedshift, Thresholds
from patterns.health import publish_health
from patterns.loaders.redshift import RedshiftDataApiLoader
from patterns.testing import LocalS3, direct, put_object, sqs
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, FaultInjector
from tests.support.sam import FakeDataApi, Recorder, Warehouse, lambda_env, published_metrics
from tools.lambda_artifact import RUNTIME

EXAMPLES = Path(__file__).parents[2] / "examples"
TEMPLATE = EXAMPLES / "s3_redshift_batcher" / "template.yaml"
QUICK_START = EXAMPLES / "quickstart" / "template.yaml"
TEMPLATES = [TEMPLATE, QUICK_START]
# Called by the platform with the function's role, not by our code: the Data API reads the
# secret with the caller's permissions, and Lambda sends the sweeper's failed (asynchronous)
# invocations to the dead-letter queue. The loader's failed messages SQS itself redrives.
PLATFORM = {
    "LoaderFunction": {"secretsmanager:GetSecretValue"},
    "SweeperFunction": {"secretsmanager:GetSecretValue", "sqs:SendMessage"},
}
WORKGROUP_ARN = "arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/wg"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name)
def test_template_passes_cfn_lint_with_its_informational_checks(path: Path) -> None:
    problems = lint_file(path, ManualArgs(include_checks=["I"]))
    assert problems == [], "\n".join(str(p) for p in problems)


def load(path: Path) -> dict[str, Any]:
    template, problems = decode(str(path))
    assert not problems and template is not None
    return dict(template)


def granted(function: str, path: Path = TEMPLATE) -> set[str]:
    template = load(path)
    actions: set[str] = set()
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def pipeline(
    store: Store, s3: Any, bucket: str, recorder: Recorder, warehouse: Warehouse
) -> S3ToRedshift:
    recorder.attach(store.client, "dynamodb")
    recorder.attach(s3, "s3")
    loader = RedshiftDataApiLoader(
        table="analytics.events",
        iam_role="arn:aws:iam::123456789012:role/copy",
        database="dev",
        workgroup_name="wg",
        client=FakeDataApi(recorder, warehouse, WORKGROUP_ARN),
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

    warehouse = Warehouse(local_s3.client())
    handler_calls = Recorder()
    handler = pipeline(ddb_store, s3, bucket, handler_calls, warehouse)
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
    sweeper = pipeline(sweeper_store, sweeper_s3, bucket, sweeper_calls, warehouse)
    sweeper.sweep()
    publish_health(sweeper.batcher, namespace="S3ToRedshift")  # as the deployed sweeper does

    assert granted("LoaderFunction") == handler_calls.actions | PLATFORM["LoaderFunction"]
    assert granted("SweeperFunction") == sweeper_calls.actions | PLATFORM["SweeperFunction"]
    # The staged copies are where the template's lifecycle rule expires them, and nothing else
    # the functions copy is (a manifest must outlive its batch's load).
    (rule,) = load(TEMPLATE)["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"][
        "Rules"
    ]
    prefix = str(rule["Prefix"]["Fn::Sub"]).replace("${ManifestPrefix}", "manifests/")
    copies = handler_calls.copied_to + sweeper_calls.copied_to
    assert len(copies) == 2 and all(key.startswith(prefix) for key in copies), copies
    assert warehouse.rows == {'"analytics"."events"': 62}  # every object, once


@pytest.fixture
def quick_start(
    ddb_store: Store, dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Recorder]:
    """The Quick start's handler module, imported as Lambda imports it with the template's
    environment, and the recorder of what its store's client sends."""
    lambda_env(
        monkeypatch,
        {
            "STATELESS_STATE_TABLE": ddb_store.table_name,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
        },
    )
    sys.modules.pop("examples.quickstart.handler", None)
    module = importlib.import_module("examples.quickstart.handler")
    calls = Recorder()
    calls.attach(module.store.client, "dynamodb")
    return module, calls


@pytest.mark.race
def test_the_quick_start_grants_exactly_what_its_handler_calls(
    quick_start: tuple[Any, Recorder],
) -> None:
    """The Quick start's handler, imported as Lambda would with the template's environment,
    counting created objects with duplicates and ambiguous writes; its function's grants are
    exactly the calls (and the table is the template's: no call makes or describes it)."""
    module, calls = quick_start

    def created(key: str, sequencer: str) -> dict[str, Any]:
        return {"s3": {"object": {"key": key, "sequencer": sequencer}}}

    events = [
        {"Records": [created(f"in/{i}.csv", f"0A{i}") for i in range(j, j + 3)]}
        for j in range(0, 30, 3)
    ]
    with FaultInjector(module.store.client, seed=3) as faults:
        faults.add("ambiguous", rate=0.4, operations=["TransactWriteItems"])
        for event in [*events, events[0], events[-1]]:  # two redeliveries
            module.handler(event, FakeLambdaContext(30_000))
        assert faults.injected["ambiguous"] > 2
    assert granted("CounterFunction", QUICK_START) == calls.actions
    assert module.store.counter("files-today").get() == 30  # each object once


@pytest.mark.race
def test_the_quick_start_order_function_grants_exactly_what_its_handler_calls(
    quick_start: tuple[Any, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    """The Quick start's idempotent handler, imported as Lambda would: EventBridge's orders,
    each delivered up to three times, some changed in flight (refused: same id, other
    payload), under ambiguous writes, and one taken over after a delivery died holding it; each
    order confirmed once, and its function's grants are exactly the calls."""
    from stateless_state import PayloadMismatch

    module, calls = quick_start

    def placed(order: int, total: int = 10) -> dict[str, Any]:
        return {"detail-type": "OrderPlaced", "detail": {"order_id": f"o-{order}", "total": total}}

    capsys.readouterr()
    with FaultInjector(module.store.client, seed=4) as faults:
        faults.add("ambiguous", rate=0.3)
        for order in [*range(8), 0, 3, 7, 3]:
            assert module.on_order(placed(order), FakeLambdaContext(30_000)) == {
                "confirmed": f"o-{order}"
            }
        with pytest.raises(PayloadMismatch):
            module.on_order(placed(5, total=99), FakeLambdaContext(30_000))
        assert faults.injected["ambiguous"] > 1
    # A delivery killed after its claim (its lease over at once): the next takes the key over.
    namespace = f"{module.on_order.__module__}.{module.on_order.__qualname__}"
    module.store.idempotency(namespace).claim("o-8", context=FakeLambdaContext(0))
    assert module.on_order(placed(8), FakeLambdaContext(30_000)) == {"confirmed": "o-8"}
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(f"order o-{i} confirmed" for i in range(9))
    assert granted("OrderFunction", QUICK_START) == calls.actions


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name)
def test_the_functions_build_with_the_makefile_for_the_runtime_on_arm64(path: Path) -> None:
    """Each function is built by the Makefile beside its template (a target named after it:
    ``sam build`` calls ``make build-<LogicalId>``), for the runtime the artifact is built for,
    on Graviton (pure Python: nothing to compile for it)."""
    template = load(path)
    functions = {
        name: r
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    makefile = (path.parent / "Makefile").read_text()
    defaults = template.get("Globals", {}).get("Function", {})
    for name, resource in functions.items():
        props = {**defaults, **resource["Properties"]}
        assert resource["Metadata"] == {"BuildMethod": "makefile"}, name
        assert f"build-{name}" in makefile, name
        assert props["Runtime"] == RUNTIME and props["Architectures"] == ["arm64"], name
        assert props["CodeUri"] == "." and props["Handler"].startswith("handler."), name


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name)
def test_logs_are_kept_for_the_retention_given_and_state_outlives_the_stack(path: Path) -> None:
    template = load(path)
    resources = template["Resources"]
    functions = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    stateful = {"AWS::DynamoDB::Table", "AWS::SQS::Queue"}
    kept = [r for r in resources.values() if r["Type"] in stateful]
    assert kept, "no table or queue found"
    for resource in kept:
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"


def test_the_dead_letter_queue_has_an_alarm_on_its_depth() -> None:
    resources = load(TEMPLATE)["Resources"]
    (alarm,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/SQS"
    ]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert _plain(alarm["Dimensions"]) == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and int(alarm["Threshold"]) == 0
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


@pytest.mark.race
def test_the_stuck_batch_alarms_read_metrics_the_sweeper_publishes(
    dynamodb_local: DynamoDBLocal,
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The example's sweeper, configured as the template configures it, prints documents that
    carry every metric the template's own-namespace alarms read, under the same namespace and
    exactly the dimensions (and values) the alarms name; a batch that cannot load shows."""
    s3, bucket = s3_bucket
    stream = "orders #1"
    lambda_env(
        monkeypatch,
        {
            "STATELESS_STATE_TABLE": ddb_store.table_name,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
            "AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url,
            "MANIFEST_BUCKET": bucket,
            "LOCAL_WAREHOUSE": str(tmp_path / "warehouse.db"),
            "STREAM": stream,
            "THRESHOLD_COUNT": "2",
        },
    )
    sys.modules.pop("examples.s3_redshift_batcher.handler", None)
    module = importlib.import_module("examples.s3_redshift_batcher.handler")
    records = [put_object(s3, bucket, f"in/{i}.json", b'{"id": 1}\n') for i in range(2)]
    no_time = FakeLambdaContext(0)  # nothing loads: the sealed batch waits
    assert module.handler(direct(*records), no_time)["sealed"]
    time.sleep(1.1)
    capsys.readouterr()
    assert module.sweeper({}, no_time)["skipped_for_time"] == 1
    published = published_metrics(capsys.readouterr().out.splitlines())
    refs = {"StateTable": ddb_store.table_name, "Stream": stream}
    health = frozenset({("Table", ddb_store.table_name), ("Stream", stream)})
    alarms = [
        r["Properties"]
        for r in load(TEMPLATE)["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and not r["Properties"]["Namespace"].startswith("AWS/")
    ]
    assert {a["MetricName"] for a in alarms} == {"OldestWaitingBatchAge", "FailedBatches"}
    for alarm in alarms:
        dims = frozenset((d["Name"], refs[d["Value"]["Ref"]]) for d in alarm["Dimensions"])
        key = (alarm["Namespace"], alarm["MetricName"], dims)
        assert key in published, (key, sorted(published))
    assert 1 <= published[("S3ToRedshift", "OldestWaitingBatchAge", health)] < 60
    assert published[("S3ToRedshift", "WaitingBatches", health)] == 1
    assert published[("S3ToRedshift", "FailedBatches", health)] == 0


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


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name)
def test_the_template_declares_the_table_create_table_makes(path: Path) -> None:
    """One table definition: each SAM template's StateTable is ``table_schema()`` with TTL on
    (and point-in-time recovery, which only a deployed table needs); the CLI's CloudFormation
    is the same."""
    from patterns.cli import cloudformation
    from stateless_state.store import TTL_ATTRIBUTE, table_schema

    template = load(path)
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
