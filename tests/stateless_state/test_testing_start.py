"""``python -m stateless_state.testing start``: DynamoDB Local for a user's own development, run
as a user runs it (a subprocess, stopped with Ctrl-C), its table created, kept across restarts
with ``--data``, and reachable with any credentials."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.race  # it starts DynamoDB Local, as the race tests do


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Started:
    """``start`` running in a subprocess, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stateless_state.testing", "start", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def until_ready(self, timeout: float = 120) -> list[str]:
        """Its lines up to "Ctrl-C stops it."."""
        seen: list[str] = []
        while not seen or seen[-1].strip() != "Ctrl-C stops it.":
            try:
                seen.append(self.lines.get(timeout=timeout))
            except queue.Empty:
                self.proc.kill()
                pytest.fail(f"not ready after {timeout}s: {seen}, {self.proc.stderr}")
        return seen

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_start_runs_dynamodb_local_for_development(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "tables"
    started = Started("--port", str(port), "--data", str(data), "--table", "dev-state")
    try:
        out = "".join(started.until_ready())
        assert "table dev-state created" in out
        assert f"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{port}" in out
        assert "STATELESS_STATE_TABLE=dev-state" in out
        # Any credentials and region see the same tables (-sharedDb), as a developer expects.
        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-west-1",
            aws_access_key_id="someone",
            aws_secret_access_key="else",
        )
        assert client.list_tables()["TableNames"] == ["dev-state"]
        client.put_item(TableName="dev-state", Item={"pk": {"S": "kept"}, "sk": {"S": "x"}})
    finally:
        code = started.interrupt()
    assert code == 0
    assert started.lines.get(timeout=10).strip() == "stopped."
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass  # the engine is gone: nothing listens on its port

    again = Started("--port", str(port), "--data", str(data), "--table", "dev-state")
    try:
        assert "table dev-state already exists" in "".join(again.until_ready())
        item = client.get_item(TableName="dev-state", Key={"pk": {"S": "kept"}, "sk": {"S": "x"}})
        assert "Item" in item, "--data keeps the tables across restarts"
    finally:
        assert again.interrupt() == 0


def test_start_on_a_port_in_use_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "stateless_state.testing", "start", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 1
    assert re.fullmatch(rf"error: port {port} is in use .*\n", r.stderr), r.stderr
