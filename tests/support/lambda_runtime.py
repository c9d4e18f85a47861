"""Run code the way a Python Lambda runtime runs a function: in a fresh interpreter whose path
is the function's code (``/var/task``), then the runtime's own packages (``/var/runtime``:
boto3 and what it needs), then the standard library, and nothing else. No site-packages, so a
module missing from the artifact fails to import here as it would in Lambda, instead of being
found in the test environment (where the project is installed in editable mode)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.lambda_artifact import RUNTIME_PROVIDED


def runtime_packages(into: Path) -> Path:
    """``into`` holding links to this environment's copies of the packages Lambda's runtime
    provides (its ``/var/runtime``)."""
    into.mkdir(parents=True, exist_ok=True)
    for name in sorted(RUNTIME_PROVIDED):
        for entry in importlib.metadata.distribution(name).files or []:
            top = entry.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
                continue
            link = into / top
            if not link.exists():
                link.symlink_to(Path(str(entry.locate())).parents[len(entry.parts) - 1] / top)
    return into


# Lambda puts the task's code first; the working directory is the task's too.
_PRELUDE = """
import sys
sys.path[:0] = [{task!r}]
sys.path.append({runtime!r})
"""


def run_as_lambda(
    task: Path, runtime: Path, code: str, env: dict[str, str], stdin: str = ""
) -> Any:
    """Run ``code`` as a function in ``task`` would run; the JSON it prints last, parsed.
    ``env`` is the whole environment (the function's variables; no PYTHONPATH, no profile)."""
    home = task.parent / "home"
    home.mkdir(exist_ok=True)
    environment = {
        "HOME": str(home),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LAMBDA_TASK_ROOT": str(task),
        **env,
    }
    script = _PRELUDE.format(task=str(task), runtime=str(runtime)) + code
    proc = subprocess.run(
        # -I: no PYTHONPATH, no user site, no script directory; -S: no site-packages at all;
        # -B: no bytecode written (a function's file system is read-only).
        [sys.executable, "-I", "-S", "-B", "-c", script],
        cwd=task,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
