"""What a handler's import loads: only what it uses (a structural check; the time is measured by
``make bench``, not asserted here). The shipped handlers are imported as Lambda imports them:
from their built artifact, on the runtime's path, configured by the template's environment,
with every AWS request recorded (a cold start makes none: the table is the template's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.lambda_runtime import run_as_lambda, runtime_packages
from tools.lambda_artifact import ROOT, function

NEVER_FOR_THE_PIPELINE = [
    "sqlite3",
    "patterns.cli",
    "patterns.config",
    "patterns.loaders.sqlite",
    "patterns.testing",
    "stateless_state.counter",
    "stateless_state.idempotency",
    "stateless_state.sessions",
    "stateless_state.tumbling",
    "stateless_state.window_rules",
    "stateless_state.window_store",
    "stateless_state.versioned",
    "stateless_state.testing",
    "hypothesis",
    # Only a load or a retry needs these: the invocation that loads imports them then.
    "tenacity",
    "stateless_state.lease",
    "patterns.batcher.load_ticket",
    "patterns.batcher.manifest",
    "patterns.batcher.object_pins",
    "patterns.batcher.abandon",
    "patterns.loaders.postgres",
    "psycopg",
    # The extras: only code that names them pays for them.
    "pynamodb",
    "aws_lambda_powertools",
    "stateless_state.pynamodb",
    "stateless_state.cloudwatch",
]
EXTRAS = {"pynamodb", "aws_lambda_powertools", "stateless_state.pynamodb"}


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


def test_the_pipeline_handler_loads_only_what_it_uses() -> None:
    loaded = loaded_after("from patterns import S3ToRedshift")
    assert "patterns.pipeline" in loaded and "patterns.batcher" in loaded
    assert not loaded & set(NEVER_FOR_THE_PIPELINE)


def test_the_feeds_handler_loads_only_what_it_uses() -> None:
    """One handler for every feed: the pipeline's modules and the feeds' own, no loader (a
    target's loader module loads with its first load), no unrouted-arrival record (with the
    first one); the versioned object loads with the first read of the configuration."""
    loaded = loaded_after("from patterns.feeds import S3Feeds")
    assert {"patterns.feeds.pipeline", "patterns.feeds.config", "patterns.pipeline"} <= loaded
    later = {"patterns.feeds.unrouted", "patterns.loaders.redshift", "patterns.loaders.base"}
    assert not loaded & (set(NEVER_FOR_THE_PIPELINE) | later)


def test_an_add_that_needs_no_retry_never_imports_tenacity() -> None:
    loaded = loaded_after(
        "from stateless_state.retry import run_with_retries; "
        "run_with_retries(lambda: 1, retry_on=(KeyError,), what='x')"
    )
    assert "tenacity" not in loaded
    loaded = loaded_after(
        "from stateless_state.retry import run_with_retries; tries = []; "
        "run_with_retries(lambda: tries.append(1) or (len(tries) > 1 or {}[0]), "
        "retry_on=(KeyError,), what='x')"
    )
    assert "tenacity" in loaded


def test_importing_the_packages_loads_no_primitive() -> None:
    loaded = loaded_after("import patterns, stateless_state")
    assert not {m for m in loaded if m.startswith("patterns.")}
    assert "stateless_state.counter" not in loaded and "tenacity" not in loaded


def test_an_idempotent_handler_with_a_jmespath_key_loads_no_extra() -> None:
    loaded = loaded_after(
        "import boto3; from stateless_state import Store, idempotent; "
        "store = Store('table', client=boto3.client('dynamodb', region_name='us-east-1')); "
        "idempotent(store, key='powertools_json(body).id')(lambda e, c: None)"
    )
    assert "stateless_state.idempotency" in loaded and "jmespath" in loaded
    assert not loaded & EXTRAS
    assert "stateless_state.cloudwatch" not in loaded


def test_every_public_name_resolves() -> None:
    import patterns
    import stateless_state

    for package in (patterns, stateless_state):
        for name in package.__all__:
            assert getattr(package, name) is not None, name


# The template's environment for the batcher's functions (Redshift Serverless, a secret).
REDSHIFT_ENV = {
    "STATELESS_STATE_TABLE": "stack-StateTable-1A2B3C",
    "STREAM": "events",
    "MANIFEST_BUCKET": "stack-123456789012-data",
    "MANIFEST_PREFIX": "manifests/",
    "THRESHOLD_COUNT": "1000",
    "THRESHOLD_BYTES": "536870912",
    "THRESHOLD_AGE": "300",
    "REDSHIFT_WORKGROUP": "analytics",
    "REDSHIFT_DATABASE": "dev",
    "REDSHIFT_TABLE": "analytics.events",
    "REDSHIFT_IAM_ROLE": "arn:aws:iam::123456789012:role/copy",
    "REDSHIFT_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
}
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "example",
    "AWS_SESSION_TOKEN": "example",
    "AWS_LAMBDA_FUNCTION_NAME": "LoaderFunction",
}
# Every request a client would send is recorded and refused (no network is reached).
COLD_START = """
import json, sys
import botocore.client

calls = []

def refuse(client, operation, params):
    calls.append(f"{client.meta.service_model.service_name}:{operation}")
    raise RuntimeError(f"{operation} at cold start")

botocore.client.BaseClient._make_api_call = refuse
import handler
files = {name: getattr(m, "__file__", None) for name, m in list(sys.modules.items())}
print(json.dumps({"modules": files, "calls": calls, "loader": type(handler.%s).__name__}))
"""
NEVER_AT_COLD_START = sorted(
    {*NEVER_FOR_THE_PIPELINE, "_sqlite3", "moto", "boto3_stubs"}
    - {"patterns.config", "stateless_state.cloudwatch"}  # the handler's configuration and EMF
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runtime_packages(tmp_path_factory.mktemp("var") / "runtime")


def cold_start(
    example: str, attribute: str, env: dict[str, str], scratch: Path, runtime: Path
) -> tuple[dict[str, Any], set[str]]:
    """Build the example's artifact, import its handler as Lambda would, and return what the
    import printed (its modules, the requests it made, the type of ``handler.<attribute>``)
    and the names of the modules it loaded, after checking ours came from the artifact."""
    task = scratch / "task"
    function(ROOT / "examples" / example / "handler.py").write_tree(task)
    found = run_as_lambda(task, runtime, COLD_START % attribute, {**LAMBDA_ENV, **env})
    ours = {
        name: path
        for name, path in found["modules"].items()
        if name.split(".")[0] in {"stateless_state", "patterns", "handler", "tenacity"}
    }
    assert ours and all(path and path.startswith(f"{task}/") for path in ours.values()), ours
    return found, set(found["modules"])


def test_the_batcher_handler_cold_starts_with_no_request_and_nothing_it_does_not_use(
    tmp_path: Path, runtime: Path
) -> None:
    """The shipped handler's real cold start: its imports and ``S3ToRedshift.from_env()``,
    from the artifact ``sam build`` deploys, configured for Redshift: no AWS request (no
    ``CreateTable``, no ``DescribeTable``), no sqlite3, no CLI, no other loader."""
    found, loaded = cold_start(
        "s3_redshift_batcher", "pipeline.loader", REDSHIFT_ENV, tmp_path, runtime
    )
    assert found["calls"] == []
    assert found["loader"] == "RedshiftDataApiLoader"
    assert {"patterns.pipeline", "patterns.config", "patterns.loaders.redshift"} <= loaded
    assert {"patterns.health", "stateless_state.cloudwatch"} <= loaded
    assert not loaded & set(NEVER_AT_COLD_START), sorted(loaded & set(NEVER_AT_COLD_START))


def test_the_quick_start_handler_cold_starts_with_no_request(tmp_path: Path, runtime: Path) -> None:
    """The Quick start's handler: ``Store.from_env()`` at import, no request (its table is the
    template's), nothing of the patterns, no retry machinery."""
    env = {"STATELESS_STATE_TABLE": "stack-StateTable-1A2B3C"}
    found, loaded = cold_start("quickstart", "store", env, tmp_path, runtime)
    assert found["calls"] == [] and found["loader"] == "Store"
    assert "stateless_state.store" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"patterns", "tenacity", "sqlite3"}}


FEEDS_ENV = {
    "STATELESS_STATE_TABLE": "stack-StateTable-1A2B3C",
    "MANIFEST_BUCKET": "stack-123456789012-manifests",
    "MANIFEST_PREFIX": "manifests/",
    "FEEDS": json.dumps(
        {
            "revision": 1,
            "feeds": [
                {
                    "name": "orders",
                    "bucket": "my-feeds-bucket",
                    "prefix": "orders/",
                    "target": {
                        "kind": "redshift",
                        "table": "analytics.orders",
                        "iam_role": "arn:aws:iam::123456789012:role/copy",
                        "database": "dev",
                        "workgroup_name": "analytics",
                        "format": "csv",
                    },
                }
            ],
        }
    ),
}


def test_the_feeds_handler_cold_starts_with_no_request_and_no_loader(
    tmp_path: Path, runtime: Path
) -> None:
    """The many-feeds example's handler (``examples/s3_feeds``) from its artifact, with a
    declared Redshift feed: ``S3Feeds.from_env()`` makes no request (the declaration is
    applied by the first invocation), and no sqlite3, CLI or loader other than the declared
    feed's (imported to check the declaration at cold start, so a bad one fails the deploy)."""
    found, loaded = cold_start("s3_feeds", "feeds", FEEDS_ENV, tmp_path, runtime)
    assert found["calls"] == []
    assert found["loader"] == "S3Feeds"
    assert {"patterns.feeds.pipeline", "patterns.health", "stateless_state.cloudwatch"} <= loaded
    assert "patterns.loaders.redshift" in loaded
    never = set(NEVER_AT_COLD_START) | {"patterns.feeds.unrouted"}
    assert not loaded & never, sorted(loaded & never)
