"""``sam build`` of the examples, offline, and what it builds.

The build path is SAM's for ``BuildMethod: makefile`` (aws-lambda-builders' CustomMakeBuilder):
copy the function's ``CodeUri`` to a scratch folder, then run ``make --makefile
<CodeUri>/Makefile build-<LogicalId>`` there with ``ARTIFACTS_DIR`` set to the function's build
folder. (The SAM CLI itself would install from PyPI, but into its own environment: in this one
it would replace boto3 and bring type stubs mypy would then apply.) What it builds is the
function's code without boto3, under 250 KB zipped, complete (nothing it imports left out), and
it runs the pipeline from there as Lambda would.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

import stateless_state
from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import DynamoDBLocal, fresh_table_name
from tests.support.lambda_runtime import run_as_lambda, runtime_packages
from tests.support.sam import sam_build
from tools.house import imports, modules
from tools.lambda_artifact import (
    LAYER_ROOT,
    LEFT_OUT,
    PACKAGES,
    ROOT,
    RUNTIME,
    RUNTIME_PROVIDED,
    bundled_dependencies,
    function,
    layer,
    requirement_name,
)

EXAMPLES = ROOT / "examples"
HANDLER = EXAMPLES / "s3_redshift_batcher" / "handler.py"
THIS_PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"
OTHER_PYTHON = "python3.12" if THIS_PYTHON != "python3.12" else "python3.13"


def functions(example: Path) -> dict[str, dict[str, Any]]:
    template, problems = decode(str(example / "template.yaml"))
    assert not problems and template is not None
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("example", ["s3_redshift_batcher", "s3_feeds", "quickstart"])
def test_sam_build_builds_every_function_from_a_clone(example: str, tmp_path: Path) -> None:
    """Each function's build folder holds exactly the artifact: its handler module at the top,
    where ``Handler: handler.<function>`` finds it, beside the library and tenacity."""
    for logical_id, resource in functions(EXAMPLES / example).items():
        built = tree(sam_build(EXAMPLES / example, logical_id, tmp_path / logical_id))
        expected = function(EXAMPLES / example / "handler.py").files
        assert built == expected, sorted(set(built) ^ set(expected))
        handler = resource["Properties"].get("Handler", "")
        assert f"{handler.split('.')[0]}.py" in built


def top_levels(files: dict[str, bytes]) -> set[str]:
    return {name.split("/", 1)[0].removesuffix(".py") for name in files}


def test_the_artifact_leaves_out_what_the_runtime_provides_and_is_small() -> None:
    artifact = function(HANDLER, runtime=OTHER_PYTHON)
    provided = {
        entry.parts[0].removesuffix(".py")
        for name in RUNTIME_PROVIDED
        for entry in importlib.metadata.distribution(name).files or []
        if not entry.parts[0].endswith(".dist-info") and entry.parts[0] != ".."
    }
    assert {"boto3", "botocore", "jmespath", "dateutil", "urllib3"} <= provided
    tops = top_levels(artifact.files)
    assert not tops & provided, tops & provided
    assert {"handler", "stateless_state", "patterns", "tenacity"} <= tops
    assert not [n for n in artifact.files if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in artifact.files if any(n.startswith(x) for x in LEFT_OUT)]
    size = len(artifact.zip_bytes())
    assert 100_000 < size <= 250_000, size


def test_every_dependency_is_bundled_or_the_runtimes() -> None:
    """The project's dependencies are tenacity (bundled) and boto3 (the runtime's), and what
    boto3 needs is the runtime's too: nothing the function imports is missing in Lambda."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {requirement_name(r) for r in project["dependencies"]}
    assert bundled_dependencies() == ["tenacity"]
    assert names - {"tenacity"} <= RUNTIME_PROVIDED
    needed: set[str] = set()
    todo = ["boto3"]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                name = requirement_name(requirement)
                if name not in needed:
                    needed.add(name)
                    todo.append(name)
    assert needed <= RUNTIME_PROVIDED, needed - RUNTIME_PROVIDED


def test_no_module_the_artifact_carries_imports_one_it_leaves_out() -> None:
    """Every import in the shipped modules (also inside functions and under TYPE_CHECKING) of
    another module of the packages names one the artifact carries."""
    everything = modules(ROOT, PACKAGES)
    shipped = {
        name: path
        for name, path in everything.items()
        if path.relative_to(ROOT).as_posix() in function(HANDLER).files
    }
    assert "patterns.pipeline" in shipped and "stateless_state.testing" not in shipped
    assert "patterns.cli" not in shipped and "patterns.testing" not in shipped
    edges, _ = imports(everything)
    missing = {name: sorted(edges[name] - set(shipped)) for name in shipped}
    assert not {k: v for k, v in missing.items() if v}


def test_the_metadata_says_which_version_is_deployed(tmp_path: Path) -> None:
    """Read from the artifact alone (no site-packages), as the function would: the versions
    of the library and of tenacity. The installers' RECORDs are left out (nothing reads
    them in a function)."""
    files = function(HANDLER).files
    version = stateless_state.__version__  # what pyproject.toml's dynamic version reads
    dist_info = f"stateless_state-{version}.dist-info"
    metadata = files[f"{dist_info}/METADATA"].decode()
    assert "Name: stateless-state\n" in metadata and f"Version: {version}\n" in metadata
    assert not [n for n in files if n.endswith(("/RECORD", "/INSTALLER"))]
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    read = (
        "import sys; sys.path.insert(0, sys.argv[1]); import importlib.metadata as m; "
        "print(m.version('stateless-state'), m.version('tenacity'))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", read, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ours, theirs = proc.stdout.split()
    assert ours == version and theirs == importlib.metadata.version("tenacity")


def test_the_layer_is_the_library_under_python_and_builds_the_same_bytes() -> None:
    built = layer()
    assert all(name.startswith(LAYER_ROOT) for name in built.files)
    library = {n.removeprefix(LAYER_ROOT) for n in built.files}
    assert library == set(function(HANDLER).files) - {"handler.py"}
    assert built.zip_bytes() == layer().zip_bytes()
    assert function(HANDLER).zip_bytes() == function(HANDLER).zip_bytes()


def test_bytecode_is_built_for_the_runtimes_own_python_only(tmp_path: Path) -> None:
    """With the building Python the runtime's version, each module has an unchecked-hash
    ``.pyc``, which the interpreter uses as is (here: although its source was changed after
    the build); with another version, source only."""
    assert not [n for n in function(HANDLER, runtime=OTHER_PYTHON).files if n.endswith(".pyc")]
    compiled = function(HANDLER, runtime=THIS_PYTHON)
    tag = sys.implementation.cache_tag
    assert f"stateless_state/__pycache__/__init__.{tag}.pyc" in compiled.files
    assert f"__pycache__/handler.{tag}.pyc" in compiled.files
    pyc = compiled.files[f"patterns/__pycache__/pipeline.{tag}.pyc"]
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    task = tmp_path / "task"
    compiled.write_tree(task)
    with (task / "stateless_state" / "store.py").open("a") as source:
        source.write("\nraise RuntimeError('the source, not the bytecode')\n")
    runtime = runtime_packages(tmp_path / "runtime")
    code = "import json, stateless_state.store as s; print(json.dumps(s.__cached__))"
    assert run_as_lambda(task, runtime, code, {}).endswith(f"store.{tag}.pyc")


def test_the_shipped_runtime_is_the_templates() -> None:
    for example in ("s3_redshift_batcher", "s3_feeds", "quickstart"):
        text = (EXAMPLES / example / "template.yaml").read_text()
        runtimes = re.findall(r"Runtime: (\S+)", text)
        assert runtimes and set(runtimes) == {RUNTIME}, example


def test_the_artifact_runs_the_pipeline_as_lambda_runs_it(
    dynamodb_local: DynamoDBLocal, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """From the artifact alone (no site-packages: only the runtime's boto3): the handler adds
    and seals, the load runs (pins, manifest, lease, the local warehouse), the sweeper reports,
    and every public name of both packages resolves."""
    s3, bucket = s3_bucket
    table = fresh_table_name()
    Store(table, client=dynamodb_local.client()).create_table()  # the template's part
    records = [put_object(s3, bucket, f"in/{n}", b'{"id": 1}\n') for n in ("a.json", "b.json")]
    task = tmp_path / "task"
    function(HANDLER).write_tree(task)
    warehouse = tmp_path / "warehouse.db"
    env = {
        "STATELESS_STATE_TABLE": table,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local.endpoint_url,
        "AWS_ENDPOINT_URL_S3": s3.meta.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "MANIFEST_BUCKET": bucket,
        "LOCAL_WAREHOUSE": str(warehouse),
        "THRESHOLD_COUNT": "2",
    }
    code = """
import json, sys
import handler, patterns, stateless_state

class Context:
    def get_remaining_time_in_millis(self):
        return 300_000

event = json.loads(sys.stdin.read())
handled = handler.handler(event, Context())
swept = handler.sweeper({}, Context())
missing = [n for p in (patterns, stateless_state) for n in p.__all__ if getattr(p, n) is None]
print(json.dumps({"handled": handled, "swept": swept, "missing": missing}))
"""
    found = run_as_lambda(
        task, runtime_packages(tmp_path / "runtime"), code, env, json.dumps(direct(*records))
    )
    assert found["handled"]["arrivals"] == 2
    assert list(found["handled"]["loads"].values()) == ["loaded"]
    assert found["swept"]["loads"] == {} and found["missing"] == []
    with sqlite3.connect(warehouse) as db:
        assert db.execute("SELECT count(*) FROM rows").fetchone() == (2,)
