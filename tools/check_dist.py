"""The distribution as a user gets it: build, check, install in a clean virtual env, and use.

    python -m tools.check_dist            # what .ci/run runs (make check-dist)
    python -m tools.check_dist --keep     # and leave the scratch directory for a look

1. ``python -m build``: the sdist, then the wheel built from it (so the sdist is complete), each
   in an isolated env with the build requirements of ``pyproject.toml``.
2. ``twine check --strict`` of both, and their contents: the two packages and their
   ``py.typed``, LICENSE, the version of ``stateless_state.__version__``; the sdist with
   CHANGELOG.md and the versioning policy, without the tests.
3. A clean virtual env (no pip of its own: this env's pip installs into it) with the wheel and
   its ``testing`` extra, resolved from the index like a user's ``pip install``.
4. From a scratch directory outside the source tree, with nothing of it on ``sys.path``: the
   shipped handler (``examples/s3_redshift_batcher/handler.py``, copied) imported as Lambda
   does and invoked on moto until a batch is loaded into the local warehouse; a user's test file
   run by the env's pytest with the plugin's fixtures (``moto_store``, ``ddb_store`` and
   ``fault_injector`` on DynamoDB Local, ``simulation``); ``stateless-state --version``.

Prints each step's time; exits 1, naming the step, at the first failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLER = ROOT / "examples" / "s3_redshift_batcher" / "handler.py"

# What a user's own code does with the installed package: the shipped handler on moto.
INVOKE_HANDLER = r"""
import importlib, os, sqlite3, sys
from pathlib import Path

here = Path.cwd()
assert not any(Path(p or ".").resolve() == Path(ROOT) for p in sys.path), sys.path

import boto3
from moto import mock_aws

import patterns, stateless_state
for module in (patterns, stateless_state):
    assert "site-packages" in module.__file__ and not module.__file__.startswith(ROOT), module

from patterns.testing import direct, put_object
from stateless_state import Store
from stateless_state.testing import FakeLambdaContext

os.environ.update(
    AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
    STATELESS_STATE_TABLE="dist-check", MANIFEST_BUCKET="dist-check",
    LOCAL_WAREHOUSE=str(here / "warehouse.db"), THRESHOLD_COUNT="2",
)
with mock_aws():
    Store("dist-check").create_table()  # in infrastructure: not the handler's job
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="dist-check")
    handler = importlib.import_module("handler")
    records = [put_object(s3, "dist-check", f"in/{n}.json", b'{"id": 1}\n') for n in "ab"]
    summary = handler.handler(direct(*records), FakeLambdaContext(300_000))
    assert summary["arrivals"] == 2 and list(summary["loads"].values()) == ["loaded"], summary
    handler.sweeper({}, FakeLambdaContext(60_000))
[(rows,)] = sqlite3.connect(here / "warehouse.db").execute(
    "SELECT count(*) FROM rows"
).fetchall()
assert rows == 2, rows
print("handler: 2 arrivals, one batch loaded, 2 rows in the warehouse")
"""

# A user's test file: the fixtures come from the installed plugin, no conftest.
USER_TESTS = r"""
import stateless_state.testing.pytest_plugin as plugin
from stateless_state.testing import FAULT_KINDS, Simulation


def test_the_plugin_is_the_installed_one():
    assert "site-packages" in plugin.__file__


def test_moto_store(moto_store):
    assert moto_store.counter("files").add(2, token="t").value == 2
    assert moto_store.counter("files").add(2, token="t").applied is False


def test_ddb_store_and_faults(ddb_store, fault_injector):
    fault_injector.add("throttle", 0.3, ["UpdateItem"])
    for _ in range(10):
        ddb_store.counter("files").add(1)
    assert ddb_store.counter("files").get() == 10  # botocore retried every throttle
    assert fault_injector.injected["throttle"] >= 1


def test_simulation(simulation):
    assert isinstance(simulation, Simulation) and "throttle" in FAULT_KINDS
"""


class CheckFailed(Exception):
    """One step of the check failed; the message says which and why."""


def run(*argv: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run ``argv``; its stdout. A failure raises :class:`CheckFailed` with its output."""
    r = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise CheckFailed(
            f"{' '.join(map(str, argv))} exited {r.returncode}:\n{r.stdout}{r.stderr}"
        )
    return r.stdout


@contextmanager
def step(name: str, times: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    except CheckFailed as e:
        raise CheckFailed(f"{name}: {e}") from None
    except AssertionError as e:
        raise CheckFailed(f"{name}: {e}") from None
    times[name] = time.monotonic() - start
    print(f"  {name}: {times[name]:.1f} s", flush=True)


def version() -> str:
    init = (ROOT / "stateless_state" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)
    assert found, "stateless_state/__init__.py sets __version__"
    return found.group(1)


def check_contents(wheel: Path, sdist: Path, expected: str) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"stateless_state-{expected}.dist-info"
    for name in ("stateless_state/py.typed", "patterns/py.typed", f"{info}/licenses/LICENSE"):
        assert name in names, f"the wheel has no {name}"
    assert not any(n.startswith(("tests/", "examples/", "tools/")) for n in names), "only ours"
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    for line in (
        f"Version: {expected}",
        "License-Expression: Apache-2.0",
        "Provides-Extra: testing",
    ):
        assert line in metadata.splitlines(), f"the wheel's METADATA lacks {line!r}"
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for name in ("LICENSE", "CHANGELOG.md", "docs/versioning.md", "pyproject.toml"):
        assert name in members, f"the sdist has no {name}"
    assert not any(m.startswith("tests/") for m in members), "the sdist leaves the tests out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="stateless-state-dist-"))
    times: dict[str, float] = {}
    print(f"dist check in {scratch}")
    try:
        checks(scratch, times)
    except CheckFailed as e:
        print(f"dist check FAILED at {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"dist check passed in {sum(times.values()):.1f} s")
    return 0


def checks(scratch: Path, times: dict[str, float]) -> None:
    dist, venv, work = scratch / "dist", scratch / "venv", scratch / "work"
    expected = version()
    with step("build sdist and wheel", times):
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
        [wheel] = dist.glob("*.whl")
        [sdist] = dist.glob("*.tar.gz")
    with step("twine check --strict and contents", times):
        run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
        check_contents(wheel, sdist, expected)
    with step("clean venv with the wheel and its testing extra", times):
        run(sys.executable, "-m", "venv", "--without-pip", venv)
        python = venv / "bin" / "python"
        # --no-compile: botocore's thousand modules compiled at install cost more than the few
        # a run imports, which compile as they load.
        run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
            "--no-compile", f"{wheel}[testing]")  # fmt: skip
    # The user's environment: nothing of the source tree or of this env.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work.mkdir()
    shutil.copy(HANDLER, work / "handler.py")
    with step("the shipped handler, from the wheel", times):
        script = f"ROOT = {str(ROOT)!r}\n{INVOKE_HANDLER}"
        # The last line is the script's own; those before it, the handler's EMF metrics.
        print("   ", run(python, "-c", script, cwd=work, env=env).strip().splitlines()[-1])
    with step("the pytest plugin, from the wheel", times):
        (work / "test_user.py").write_text(USER_TESTS)
        out = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=work, env=env)
        assert re.search(r"\b4 passed\b", out), out
        print("   ", out.strip().splitlines()[-1])
    with step("stateless-state --version", times):
        shown = run(venv / "bin" / "stateless-state", "--version", cwd=work, env=env).strip()
        assert shown == f"stateless-state {expected}", shown


if __name__ == "__main__":
    sys.exit(main())
