"""The operator CLI run as the real console script, for the tests that drive it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from stateless_state import Store

SCRIPT = shutil.which("stateless-state") or str(
    Path(__file__).parents[2] / ".venv" / "bin" / "stateless-state"
)


def cli(
    store: Store | None, *args: str, env: dict[str, str] | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``stateless-state *args`` against ``store``'s table (none: no AWS settings at all),
    with ``env`` added and the CLI's cache under ``tmp``; its completed process. One
    subprocess, up to 60 s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if store is not None:
        base.update(
            AWS_ENDPOINT_URL_DYNAMODB=store.client.meta.endpoint_url,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_REGION="us-east-1",
            STATELESS_STATE_TABLE=store.table_name,
        )
    if tmp is not None:
        base["XDG_CACHE_HOME"] = str(tmp)
    base.update(env or {})
    return subprocess.run(
        [SCRIPT, *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
