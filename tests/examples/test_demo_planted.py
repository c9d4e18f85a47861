"""The demo's check catches what it claims to: a feed's format lost on the way (in the ``FEEDS``
setting's parsing, in the stored version) or ignored by the load, and an SQS message the
function never acknowledges (the local queue's redrive policy dead-letters it, as the
template's does, and the run fails naming it instead of never ending).

Each bug is planted in every process of the demo, the spawned workers too, by a
``sitecustomize`` module on ``PYTHONPATH``; each run is bounded, its whole process group
killed past its time."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from examples.s3_redshift_batcher import demo
from examples.s3_redshift_batcher.workload import FEEDS
from patterns.config import feeds_settings
from patterns.feeds import FeedsConfig, S3Feeds, feed_from_json
from patterns.loaders.sqlite import LocalWarehouseLoader
from stateless_state import Store

pytestmark = pytest.mark.race

ROOT = Path(__file__).parents[2]


def _planted_demo(tmp_path: Path, plant: str, *args: str, timeout: float) -> tuple[int, str]:
    """The demo's exit status and report, run with ``plant`` as every process's
    ``sitecustomize``; past ``timeout`` seconds it is killed (its workers and local services
    are its process group) and the test fails."""
    (tmp_path / "sitecustomize.py").write_text(plant)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "examples.s3_redshift_batcher.demo", *args, "--no-progress"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the demo did not end within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


# A batch that cannot load is reported after 10 s of sweeping, not the default minute.
SMALL = ("--workers", "2", "--count", "10", "--age", "1", "--drain", "10")


def test_each_feed_is_deployed_and_stored_with_its_files_format(
    tmp_path: Path, moto_store: Store
) -> None:
    """The ``FEEDS`` setting the demo deploys declares each feed's format (``orders`` gzipped
    CSV, the others JSON lines), and the configuration stored from it, read back through the
    library, keeps it and hands it to each feed's loader."""
    args = argparse.Namespace(count=10, bytes=8000, age=1, seed=0)
    _, targets = demo.warehouse("sqlite", tmp_path, FEEDS)
    env = demo.deployment_env(args, FEEDS, "demo-bucket", targets)
    declared = {f["name"]: f["target"] for f in json.loads(env["FEEDS"])["feeds"]}
    assert declared["orders"]["format"] == "csv" and declared["orders"]["gzip"] is True
    assert {declared[n]["format"] for n in ("events", "catalog")} == {"json"}
    settings = feeds_settings({**env, "MANIFEST_BUCKET": "demo-bucket"}, store=moto_store)
    S3Feeds(**settings).prepare()
    stored = FeedsConfig(moto_store).read()
    for place in FEEDS:
        target = stored.feed(place.name).target
        assert (target.format, target.gzip) == (place.format, place.gzip), place.name
        assert feed_from_json(stored.feed(place.name).to_json()).target == target
        loader = target.loader()
        assert isinstance(loader, LocalWarehouseLoader) and loader.file_format is not None
        assert (loader.file_format.kind, loader.file_format.gzip) == (place.format, place.gzip)


LOSE_FORMAT = """
import patterns.feeds.feed as _feed
_target_from_json = _feed.target_from_json
def target_from_json(data):
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("format", "gzip")}
    return _target_from_json(data)
_feed.target_from_json = target_from_json
"""


def test_a_format_lost_in_parsing_fails_the_demo(tmp_path: Path) -> None:
    """Targets parsed without their format (the ``FEEDS`` setting and every stored version
    go through it): the JSON feeds still load by their keys, but the check reads the stored
    configuration back and fails each feed, and no COPY is printed from anything else."""
    code, out = _planted_demo(tmp_path, LOSE_FORMAT, "--objects", "30", *SMALL, timeout=120)
    assert code != 0, out
    for name in ("orders", "events", "catalog"):
        assert (
            f"FAILED: {name}: its target in the latest version of the configuration declares "
            "no format" in out
        ), out
        assert f"FAILED: {name}: its target in version 1 (its batches')" in out, out
        assert f"  {name}: none: its target in version 1 has no format" in out, out
    assert "FORMAT AS CSV" not in out and "stored: no format" in out


IGNORE_FORMAT = """
import patterns.feeds.feed as _feed
from patterns.loaders.sqlite import LocalWarehouseLoader
def loader(self, *, s3=None, redshift_client=None):
    return LocalWarehouseLoader(self.path, s3, table=self.table)
_feed.LocalTarget.loader = loader
"""


def test_a_load_that_ignores_its_targets_format_fails_the_demo(tmp_path: Path) -> None:
    """The configuration keeps the format but the loader built from it drops it, reading each
    file by its key: the ``orders`` parts with no suffix are then read as JSON lines and their
    batches never load."""
    code, out = _planted_demo(tmp_path, IGNORE_FORMAT, "--objects", "30", *SMALL, timeout=120)
    assert code != 0, out
    assert re.search(r"FAILED: batches not loaded: .*orders/.*JSONDecodeError", out), out
    assert "FAILED: orders: " in out and "never loaded" in out, out
    assert "MANIFEST FORMAT AS CSV GZIP IGNOREHEADER 1" in out, "the stored format is shown"


NEVER_ACKNOWLEDGE_UNROUTED = """
import patterns.feeds.pipeline as _pipeline
_handle = _pipeline.S3Feeds.handle
def handle(self, event, context=None):
    out = _handle(self, event, context)
    failed = out.setdefault("batchItemFailures", [])
    for r in event.get("Records", []):
        if "messageId" in r and "/elsewhere/" in r.get("body", ""):
            failed.append({"itemIdentifier": r["messageId"]})
    return out
_pipeline.S3Feeds.handle = handle
"""


def test_the_demos_queue_receives_a_message_as_often_as_the_templates() -> None:
    template = (ROOT / "examples/s3_redshift_batcher/template.yaml").read_text()
    found = re.search(r"QueueMaxReceiveCount:\n\s+Type: Number\n\s+Default: (\d+)", template)
    assert found, "the template's QueueMaxReceiveCount parameter"
    assert demo.parse_args([]).max_receives == int(found.group(1))


def test_an_unrouted_message_never_acknowledged_is_dead_lettered_and_fails_the_demo(
    tmp_path: Path,
) -> None:
    """The handler records an unrouted arrival but reports its SQS message failed, every time:
    the local queue receives it 5 times, dead-letters it, and the run ends FAILED naming each
    such message and its object (without the cap it never ended)."""
    args = ("--objects", "60", *SMALL, "--unrouted", "0.1")
    code, out = _planted_demo(tmp_path, NEVER_ACKNOWLEDGE_UNROUTED, *args, timeout=120)
    assert code != 0, out
    failed = re.search(
        r"FAILED: (\d+) SQS messages dead-lettered after 5 receives, never acknowledged: (.*)",
        out,
    )
    assert failed, out
    dead, named = int(failed.group(1)), failed.group(2).split("; ")
    assert dead >= 1 and len(named) == min(dead, 5)
    assert all(re.fullmatch(r"[0-9a-f-]{36} \(demo-input/elsewhere/\d+\.jsonl\)", n) for n in named)
    (redelivered,) = re.findall(r"(\d+) messages redelivered after a partial batch response", out)
    assert int(redelivered) == 5 * dead, "each received 5 times, no more"
    assert f"dead-lettered              {dead} SQS messages" in out
    assert re.search(
        rf"unrouted \d+ object versions .*: \d+ recorded for the operator and "
        rf"{dead} of their SQS messages dead-lettered",
        out,
    ), out
