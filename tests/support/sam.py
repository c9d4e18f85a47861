"""What the SAM template tests share: the environment a function gets, a recorder of the
(action, resource ARN) pairs a function's clients send as IAM authorises them, a stand-in for
the Redshift Data API that answers as the real one does, and the metrics a function's EMF lines
publish."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tools.lambda_artifact import ROOT

REGION, ACCOUNT = "us-east-1", "123456789012"
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def lambda_env(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """The environment a function gets: the template's variables, Lambda's region and
    credentials (here the local services' endpoints too, by boto3's conventions)."""
    region = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    credentials = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    for name, value in {**region, **credentials, **variables}.items():
        monkeypatch.setenv(name, value)


class Recorder:
    """The (action, resource ARN) pairs a function's clients send, as IAM authorises them, and
    the keys its copies were written to."""

    def __init__(self, region: str = REGION, account: str = ACCOUNT) -> None:
        self.region, self.account = region, account
        self.calls: set[tuple[str, str]] = set()
        self.copied_to: list[str] = []

    @property
    def actions(self) -> set[str]:
        return {action for action, _ in self.calls}

    def attach(self, client: Any, service: str) -> None:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            if service == "dynamodb":
                self._dynamodb(model.name, params)
            else:
                self._s3(model.name, params)

        client.meta.events.register("before-parameter-build.*.*", record)

    def _dynamodb(self, operation: str, params: dict[str, Any]) -> None:
        def table(name: str, index: str | None = None) -> str:
            arn = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
            return arn if index is None else f"{arn}/index/{index}"

        if operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                ((kind, action),) = item.items()
                self.calls.add((f"dynamodb:{TRANSACT_ACTIONS[kind]}", table(action["TableName"])))
        else:
            arn = table(params["TableName"], params.get("IndexName"))
            self.calls.add((f"dynamodb:{operation}", arn))

    def _s3(self, operation: str, params: dict[str, Any]) -> None:
        def obj(bucket: str, key: str) -> str:
            return f"arn:aws:s3:::{bucket}/{key}"

        def read(bucket: str, key: str, version: Any) -> None:
            action = "s3:GetObjectVersion" if version else "s3:GetObject"
            self.calls.add((action, obj(bucket, key)))

        if operation == "HeadObject":
            # Authorised as a read of the object; only with s3:ListBucket does S3 answer 404
            # for a missing key (403 without), which the pins must tell apart.
            read(params["Bucket"], params["Key"], params.get("VersionId"))
            self.calls.add(("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}"))
        elif operation == "GetObject":
            read(params["Bucket"], params["Key"], params.get("VersionId"))
        elif operation == "CopyObject":  # a read of the source, a write of the copy
            source = params["CopySource"]
            read(source["Bucket"], source["Key"], source.get("VersionId"))
            self.calls.add(("s3:PutObject", obj(params["Bucket"], params["Key"])))
            self.copied_to.append(params["Key"])
        elif operation == "PutObject":
            self.calls.add(("s3:PutObject", obj(params["Bucket"], params["Key"])))
        else:
            self.calls.add((f"s3:{operation}", f"arn:aws:s3:::{params.get('Bucket', '*')}"))


_LITERAL = r"'((?:[^']|'')*)'"
_STATEMENTS = {
    "lock": re.compile(r"LOCK (\S+)"),
    "create": re.compile(r"CREATE TEMP TABLE (\S+) \(LIKE \S+\)"),
    "empty": re.compile(r"DELETE FROM (\S+)"),
    "copy": re.compile(rf"COPY (\S+) FROM {_LITERAL} IAM_ROLE {_LITERAL} MANIFEST .*"),
    "insert": re.compile(
        rf"INSERT INTO (\S+) SELECT \* FROM (\S+) WHERE NOT EXISTS "
        rf"\(SELECT 1 FROM (\S+) WHERE batch_id = {_LITERAL}\)"
    ),
    "ledger": re.compile(
        rf"INSERT INTO (\S+) \(batch_id, fence, loaded_at, status\) "
        rf"SELECT {_LITERAL}, \d+, GETDATE\(\), {_LITERAL} WHERE NOT EXISTS \(.*\)"
    ),
    "probe": re.compile(
        rf"UPDATE (\S+) SET status = status WHERE batch_id = {_LITERAL} AND status = {_LITERAL}"
    ),
}


class Warehouse:
    """What the Data API's statements did to a warehouse the tests can look at: each target
    table's rows and each ledger's rows. COPY reads as many rows as its manifest has entries
    (the tests' files hold one row each), from the local S3 as Redshift would read it: with the
    COPY role, not the function's, so through a client no recorder is attached to."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.rows: dict[str, int] = {}
        self.ledgers: dict[str, dict[str, str]] = {}

    def run(self, sql: str, stages: dict[str, int]) -> int:
        """One statement's ``ResultRows`` (-1 where the Data API has no count)."""
        kind, m = next((k, m) for k, p in _STATEMENTS.items() if (m := p.fullmatch(sql)))
        if kind == "lock":
            return -1
        if kind == "create":
            stages[m[1]] = 0
            return -1
        if kind == "empty":
            emptied, stages[m[1]] = stages[m[1]], 0
            return emptied
        if kind == "copy":
            bucket, key = m[2].removeprefix("s3://").split("/", 1)
            manifest = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            stages[m[1]] += len(manifest["entries"])
            return len(manifest["entries"])
        if kind == "insert":
            if m[4] in self.ledgers.get(m[3], {}):
                return 0
            self.rows[m[1]] = self.rows.get(m[1], 0) + stages[m[2]]
            return stages[m[2]]
        ledger = self.ledgers.setdefault(m[1], {})
        if kind == "ledger":
            if m[2] in ledger:
                return 0
            ledger[m[2]] = m[3]
            return 1
        return int(ledger.get(m[2]) == m[3])  # the probe's no-op update


class FakeDataApi:
    """The Data API calls the Redshift loader makes, answered as the Data API answers them:
    each ``batch_execute_statement`` runs its statements on ``warehouse`` at once, and
    ``describe_statement`` says ``FINISHED`` with every sub-statement's ``ResultRows`` (none has
    a result set), which is what the loader reads its outcome from. A call with
    ``SessionKeepAliveSeconds`` opens a session (its temporary tables live on); a call with
    ``SessionId`` runs in it and, as the Data API requires, names no connection.

    Records the calls against ``workgroup_arn``, and the secret a call names as read (the Data
    API reads it with the caller's permissions)."""

    def __init__(self, recorder: Recorder, warehouse: Warehouse, workgroup_arn: str) -> None:
        self.recorder, self.warehouse, self.workgroup_arn = recorder, warehouse, workgroup_arn
        self.sessions: dict[str, dict[str, int]] = {}
        self.statements: dict[str, dict[str, Any]] = {}

    def batch_execute_statement(
        self,
        *,
        Sqls: list[str],
        StatementName: str = "",
        SessionId: str | None = None,
        SessionKeepAliveSeconds: int | None = None,
        **connection: Any,
    ) -> dict[str, Any]:
        if SessionId is not None:
            assert not connection and SessionId in self.sessions, connection
            stages = self.sessions[SessionId]
        else:
            assert connection["WorkgroupName"] == self.workgroup_arn.rsplit("/", 1)[1]
            if "SecretArn" in connection:
                self.recorder.calls.add(("secretsmanager:GetSecretValue", connection["SecretArn"]))
            stages = {}
        self.recorder.calls.add(("redshift-data:BatchExecuteStatement", self.workgroup_arn))
        statement = str(uuid.uuid4())
        subs = [
            {"Id": f"{statement}:{i}", "Status": "FINISHED", "QueryString": sql}
            | {"HasResultSet": False, "ResultRows": self.warehouse.run(sql, stages)}
            for i, sql in enumerate(Sqls, start=1)
        ]
        self.statements[statement] = {
            "Id": statement,
            "Status": "FINISHED",
            "HasResultSet": False,
            "SubStatements": subs,
        }
        answer = {"Id": statement}
        if SessionKeepAliveSeconds is not None:
            session = str(uuid.uuid4())
            self.sessions[session] = stages
            answer["SessionId"] = session
        return answer

    def describe_statement(self, *, Id: str) -> dict[str, Any]:
        self.recorder.calls.add(("redshift-data:DescribeStatement", "*"))
        return self.statements[Id]


def published_metrics(
    lines: Iterable[str],
) -> dict[tuple[str, str, frozenset[tuple[str, str]]], float]:
    """The largest value each (namespace, metric, dimensions) has in EMF documents ``lines``."""
    published: dict[tuple[str, str, frozenset[tuple[str, str]]], float] = {}
    for line in lines:
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                dims = frozenset((d, doc[d]) for d in dimensions)
                for metric in directive["Metrics"]:
                    key = (directive["Namespace"], metric["Name"], dims)
                    published[key] = max(published.get(key, 0), doc[metric["Name"]])
    return published


def sam_build(
    example: Path, logical_id: str, scratch: Path, files: Mapping[str, str] | None = None
) -> Path:
    """What ``sam build`` does for one function built by a Makefile: the example copied (with
    ``files`` written into the copy, as a user adds them), then the copy's ``build-<id>``
    target; returns the function's build folder."""
    source = scratch / "source"
    shutil.copytree(
        example, source, ignore=shutil.ignore_patterns(".aws-sam", ".git", "__pycache__")
    )
    for name, text in (files or {}).items():
        (source / name).write_text(text)
    artifacts = scratch / "build" / logical_id
    proc = subprocess.run(
        # ROOT given: the copied Makefile would look for the repository above the copy.
        ["make", "--makefile", str(source / "Makefile"), f"build-{logical_id}", f"ROOT={ROOT}"],
        cwd=source,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return artifacts
