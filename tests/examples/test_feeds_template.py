"""The many-feeds SAM template (``examples/s3_feeds``): valid (cfn-lint with its informational
checks), and its IAM scoped to the configured feed buckets and locations **at the resource
level**: every (action, resource) the real handler and sweeper send is granted by a statement
of their function, every granted action and resource is used, and nothing outside the feeds'
locations is readable (an object there is recorded unrouted, never read).

The template is resolved for the parameters a deployment gives (a small resolver of ``Ref``,
``Fn::Sub``, ``Fn::Join``, ``Fn::Split`` and ``Fn::GetAtt``); the functions run against
DynamoDB Local and the local S3 with a recorder on every client (recovery paths provoked with
injected ambiguous writes), and the Data API through a recording fake.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from patterns.config import feeds_settings
from patterns.feeds import S3Feeds
from patterns.health import publish_health
from patterns.testing import LocalS3, direct, put_object, s3_record, sqs
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, FakeLambdaContext, FaultInjector
from tests.support.sam import (
    ACCOUNT,
    REGION,
    FakeDataApi,
    Recorder,
    Warehouse,
    lambda_env,
    published_metrics,
)

TEMPLATE = Path(__file__).parents[2] / "examples" / "s3_feeds" / "template.yaml"
STACK = "feeds"
WORKGROUP_ARN = f"arn:aws:redshift-serverless:{REGION}:{ACCOUNT}:workgroup/wg"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:warehouse"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-DeadLetterQueue"


def test_template_passes_cfn_lint_with_its_informational_checks() -> None:
    problems = lint_file(TEMPLATE, ManualArgs(include_checks=["I"]))
    assert problems == [], "\n".join(str(p) for p in problems)


@functools.cache
def _decoded() -> Any:
    template, problems = decode(str(TEMPLATE))
    assert not problems and template is not None
    return template


def load() -> dict[str, Any]:
    # A copy each time: the property tests resolve the template hundreds of times.
    return dict(copy.deepcopy(_decoded()))


class Refused(ValueError):
    """A parameter value CloudFormation refuses (its ``AllowedPattern``), so no stack has it."""


def refusal(spec: dict[str, Any], value: Any) -> str | None:
    """Why CloudFormation refuses ``value`` for the parameter ``spec``, or None. The pattern
    must match the whole value, each value of a ``CommaDelimitedList``; these patterns mean
    the same in Java's regular expressions, CloudFormation's, as in Python's."""
    pattern = spec.get("AllowedPattern")
    values = value if isinstance(value, list) else [value]
    if pattern is None or all(re.fullmatch(str(pattern), str(v)) for v in values):
        return None
    return str(spec.get("ConstraintDescription", pattern))


class Resolved:
    """The template's values for ``parameters`` (the rest at their defaults) in a stack
    ``STACK`` of account ``ACCOUNT``, with the state table named ``table``."""

    def __init__(self, parameters: dict[str, Any], table: str) -> None:
        self.template = load()
        self.values: dict[str, Any] = {
            name: spec.get("Default") for name, spec in self.template["Parameters"].items()
        }
        for name, spec in self.template["Parameters"].items():
            if spec["Type"] == "CommaDelimitedList" and isinstance(self.values[name], str):
                self.values[name] = str(self.values[name]).split(",")
        self.values.update(parameters)
        for name, spec in self.template["Parameters"].items():
            if (why := refusal(spec, self.values[name])) is not None:
                raise Refused(f"{name}={self.values[name]!r}: {why}")
        for rule in self.template.get("Rules", {}).values():
            for assertion in rule["Assertions"]:
                if not self.holds(assertion["Assert"]):
                    raise Refused(assertion["AssertDescription"])
        self.values.update(
            {
                "AWS::Partition": "aws",
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::StackName": STACK,
                "StateTable": table,
                "StateTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
                "DeadLetterQueue.Arn": DLQ_ARN,
                "DeadLetterQueue.QueueName": f"{STACK}-DeadLetterQueue",
                "IngestQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-IngestQueue",
                "AlarmTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-AlarmTopic",
            }
        )

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(n) for n in node]
        if not isinstance(node, dict):
            return str(node) if not isinstance(node, bool | int) else node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self.values[str(arg)]
            if fn == "Fn::GetAtt":
                return self.values[".".join(map(str, arg))]
            if fn == "Fn::Join":
                return str(arg[0]).join(self(arg[1]))
            if fn == "Fn::Split":
                return self(arg[1]).split(str(arg[0]))
            if fn == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
                scope = {**self.values, **names}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(scope[m.group(1)]), str(text))
        return {str(k): self(v) for k, v in node.items()}

    def holds(self, node: Any) -> bool:
        """A rule's assertion (the condition functions the template uses), as CloudFormation
        checks it before it creates anything."""
        ((fn, arg),) = node.items()
        if fn == "Fn::Or":
            return any(self.holds(a) for a in arg)
        if fn == "Fn::And":
            return all(self.holds(a) for a in arg)
        if fn == "Fn::Not":
            return not self.holds(arg[0])
        if fn == "Fn::Equals":
            return bool(self(arg[0]) == self(arg[1]))
        raise AssertionError(f"a rule function the test does not know: {fn}")

    def environment(self) -> dict[str, str]:
        variables = self.template["Globals"]["Function"]["Environment"]["Variables"]
        return {str(k): str(self(v)) for k, v in variables.items()}

    def granted(self, function: str) -> list[tuple[str, str]]:
        """The function's (action, resource pattern) pairs."""
        out = []
        for policy in self.template["Resources"][function]["Properties"]["Policies"]:
            for statement in self(policy["Statement"]):
                assert statement["Effect"] == "Allow" and "Condition" not in statement
                actions, resources = statement["Action"], statement["Resource"]
                for action in [actions] if isinstance(actions, str) else actions:
                    for resource in [resources] if isinstance(resources, str) else resources:
                        out.append((action, resource))
        return out


def allows(pattern: str, arn: str) -> bool:
    """IAM's resource match: ``*`` any run of characters, ``?`` any one, ``${*}``, ``${?}``,
    ``${$}`` the literal character, the rest literal. Any other ``${...}`` is a policy variable,
    whose value depends on the request: no test may rely on what it matches."""
    regex = []
    for escaped, variable, char in re.findall(r"\$\{([*?$])\}|(\$\{)|(.)", pattern, re.DOTALL):
        assert not variable, f"{pattern!r} holds a policy variable"
        if escaped:
            regex.append(re.escape(escaped))
        else:
            regex.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.fullmatch("".join(regex), arn, re.DOTALL) is not None


PLAIN = {"orders": "orders/", "events": "events/"}
# Prefixes the template accepts, with what S3 events percent-encode and what IAM and ARNs do
# not treat specially (spaces, +, =, &, %, non-ASCII, a colon).
HOSTILE = {"orders": "orders 2026+Q1=&%/", "events": "évents:(1) ~'#/"}


def declaration(
    bucket: str, target: dict[str, Any], revision: int = 1, prefixes: dict[str, str] = PLAIN
) -> str:
    feeds = [
        {
            "name": name,
            "bucket": bucket,
            "prefix": prefix,
            "target": {**target, "table": f"analytics.{name}"},
            "thresholds": {"count": 4, "bytes": None, "age": 0.2},
        }
        for name, prefix in prefixes.items()
    ]
    return json.dumps({"revision": revision, "feeds": feeds})


REDSHIFT = {
    "kind": "redshift",
    "iam_role": f"arn:aws:iam::{ACCOUNT}:role/copy",
    "database": "dev",
    "workgroup_name": "wg",
    "secret_arn": SECRET_ARN,
}


def deployment(
    env: dict[str, str], store: Store, s3: Any, recorder: Recorder, warehouse: Warehouse
) -> S3Feeds:
    """The function's S3Feeds as ``from_env`` builds it, with recorded clients."""
    recorder.attach(store.client, "dynamodb")
    recorder.attach(s3, "s3")
    settings = feeds_settings(env, store=store, s3=s3)
    api = FakeDataApi(recorder, warehouse, WORKGROUP_ARN)
    return S3Feeds(**settings, redshift_client=api, min_load_time=0, retry_backoff=0)


@pytest.mark.race
@pytest.mark.parametrize("prefixes", [PLAIN, HOSTILE], ids=["plain", "hostile"])
def test_iam_grants_exactly_what_the_functions_send_at_the_feeds_locations(
    prefixes: dict[str, str],
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    dynamodb_local: DynamoDBLocal,
    local_s3: LocalS3,
) -> None:
    s3, bucket = s3_bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    at_orders, at_events = prefixes["orders"], prefixes["events"]
    resolved = Resolved(
        {
            "FeedBuckets": [bucket],
            "FeedLocations": [f"{bucket}/{at_orders}", f"{bucket}/{at_events}"],
            "FeedsDeclaration": declaration(bucket, REDSHIFT, prefixes=prefixes),
            "RedshiftWorkgroupArn": WORKGROUP_ARN,
            "RedshiftSecretArn": SECRET_ARN,
        },
        ddb_store.table_name,
    )
    env = resolved.environment()
    s3.create_bucket(Bucket=env["MANIFEST_BUCKET"])

    orders = [put_object(s3, bucket, f"{at_orders}{i}.json", b'{"x": 1}\n') for i in range(9)]
    events = [put_object(s3, bucket, f"{at_events}{i}.json", b'{"x": 1}\n') for i in range(5)]
    stray = put_object(s3, bucket, "elsewhere/0.json", b'{"x": 1}\n')
    # Rewritten before its batch loads: its notified version is staged, by version id.
    s3.put_object(Bucket=bucket, Key=f"{at_orders}0.json", Body=b'{"x": 2}\n')
    # Deleted before its batch loads (the version itself): HeadObject answers 404.
    s3.delete_object(
        Bucket=bucket, Key=f"{at_events}4.json", VersionId=events[4]["s3"]["object"]["versionId"]
    )
    notices = [sqs(*orders[i : i + 3]) for i in range(0, 9, 3)] + [sqs(*events, stray)]

    warehouse = Warehouse(local_s3.client())
    handler_calls = Recorder()
    handler = deployment(env, ddb_store, s3, handler_calls, warehouse)
    with FaultInjector(ddb_store.client, seed=5) as faults:
        faults.add("ambiguous", rate=0.4, operations=["TransactWriteItems"])
        for event in notices:
            handler.handle(event)
        assert faults.injected["ambiguous"] > 0
    handler.handle(notices[0])  # a duplicate
    assert [u.key for u in handler.unrouted()] == ["elsewhere/0.json"]

    time.sleep(0.3)  # the open batches age
    # A deployment raised the declaration's revision, and the sweeper is the first to run.
    sweeper_env = {**env, "FEEDS": declaration(bucket, REDSHIFT, 2, prefixes)}
    sweeper_calls = Recorder()
    sweeper_store = Store(ddb_store.table_name, client=dynamodb_local.client())
    sweeper = deployment(sweeper_env, sweeper_store, local_s3.client(), sweeper_calls, warehouse)
    sweeper.sweep()
    for name in ("orders", "events"):  # as the deployed sweeper does
        publish_health(sweeper.pipeline(name).batcher, namespace="S3Feeds", rollup=True)
    assert {
        str(b.state) for n in ("orders", "events") for b in sweeper.pipeline(n).batcher.batches()
    } == {"loaded"}
    # Each live version once (the rewritten one as staged, the deleted one not at all).
    assert warehouse.rows == {'"analytics"."orders"': 9, '"analytics"."events"': 4}

    platform = {"SweeperFunction": {("sqs:SendMessage", DLQ_ARN)}}
    for function, recorder in (
        ("LoaderFunction", handler_calls),
        ("SweeperFunction", sweeper_calls),
    ):
        granted = resolved.granted(function)
        sent = recorder.calls | platform.get(function, set())
        refused = sorted(
            c for c in sent if not any(a == c[0] and allows(r, c[1]) for a, r in granted)
        )
        assert not refused, f"{function} sends what it is not granted: {refused}"
        unused = sorted({a for a, _ in granted} - {a for a, _ in sent})
        assert not unused, f"{function} is granted actions it never sends: {unused}"
        idle = sorted({r for _, r in granted if not any(allows(r, c[1]) for c in sent)})
        assert not idle, f"{function} is granted resources it never touches: {idle}"
        assert not any("elsewhere/" in resource for _, resource in sent), "unrouted: never read"
    # The grants name exactly the configured locations and buckets, nothing wider.
    reads = {r for a, r in resolved.granted("LoaderFunction") if a == "s3:GetObjectVersion"}
    assert reads == {f"arn:aws:s3:::{bucket}/{at_orders}*", f"arn:aws:s3:::{bucket}/{at_events}*"}
    lists = {r for a, r in resolved.granted("LoaderFunction") if a == "s3:ListBucket"}
    assert lists == {f"arn:aws:s3:::{bucket}"}


def test_the_queue_takes_notifications_from_the_feed_buckets_only() -> None:
    resolved = Resolved({"FeedBuckets": ["feeds-a", "feeds-b"]}, "state")
    policy = resolved(load()["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        "arn:aws:s3:::feeds-a",
        "arn:aws:s3:::feeds-b",
    ]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT


def test_the_default_locations_lie_in_the_default_buckets() -> None:
    """The defaults agree with each other: every location is in a listed bucket."""
    resolved = Resolved({}, "state")
    buckets = set(resolved.values["FeedBuckets"])
    assert {loc.split("/", 1)[0] for loc in resolved.values["FeedLocations"]} == buckets


@pytest.mark.race
def test_the_alarms_read_metrics_the_sweeper_publishes(
    dynamodb_local: DynamoDBLocal,
    ddb_store: Store,
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The example's handler module, imported as Lambda imports it with the template's
    environment: its handler's and sweeper's documents carry every metric the template's
    own-namespace alarms read, under exactly the dimensions they name; one feed's waiting
    batch shows in the table's rolled-up series, and an unrouted arrival is counted."""
    s3, bucket = s3_bucket
    local = {"kind": "local", "path": str(tmp_path / "warehouse.db")}
    resolved = Resolved(
        {
            "FeedBuckets": [bucket],
            "FeedLocations": [f"{bucket}/orders/", f"{bucket}/events/"],
            "FeedsDeclaration": declaration(bucket, local),
        },
        ddb_store.table_name,
    )
    env = resolved.environment()
    s3.create_bucket(Bucket=env["MANIFEST_BUCKET"])
    lambda_env(
        monkeypatch,
        {
            **env,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
            "AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url,
        },
    )
    sys.modules.pop("examples.s3_feeds.handler", None)
    module = importlib.import_module("examples.s3_feeds.handler")
    records = [put_object(s3, bucket, f"orders/{i}.json", b'{"id": 1}\n') for i in range(4)]
    no_time = FakeLambdaContext(0)  # nothing loads: the sealed batch waits
    stray = s3_record(bucket, "elsewhere/x.json", 10)
    capsys.readouterr()
    assert module.handler(direct(*records, stray), no_time)["sealed"]
    time.sleep(1.1)
    assert module.sweeper({}, no_time)["skipped_for_time"] == 1
    published = published_metrics(capsys.readouterr().out.splitlines())
    alarms = [
        resolved(r["Properties"])
        for r in load()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and not r["Properties"]["Namespace"].startswith("AWS/")
    ]
    assert {a["MetricName"] for a in alarms} == {"OldestWaitingBatchAge", "FailedBatches", "Calls"}
    for alarm in alarms:
        dims = frozenset((d["Name"], d["Value"]) for d in alarm["Dimensions"])
        key = (alarm["Namespace"], alarm["MetricName"], dims)
        assert key in published, (key, sorted(published))
    table = frozenset({("Table", ddb_store.table_name)})
    assert 1 <= published[("S3Feeds", "OldestWaitingBatchAge", table)] < 60
    assert published[("S3Feeds", "WaitingBatches", table)] == 1
    assert published[("S3Feeds", "FailedBatches", table)] == 0
    assert published[("S3Feeds", "Calls", frozenset({("Operation", "feeds.unrouted")}))] == 1
