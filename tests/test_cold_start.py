"""What a handler's import loads: only what it uses (a structural check; the time is measured by
``make bench``, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

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
