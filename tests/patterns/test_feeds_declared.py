"""Declared feeds (``FEEDS``, ``FEEDS_FILE``, ``declared=``) checked when the deployment is
built, every problem at once, as the version that applies them will be checked: found by the
adversary of the third wave, each a case that built and then failed every container, or that
reported one problem of several."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patterns.config import SettingsRefused, feeds_settings
from patterns.feeds import Feed, FeedsConfig, LocalTarget, S3Feeds
from patterns.feeds.config import _LATEST_AT, MAX_CONFIG_BYTES, Change, FeedSet
from stateless_state import InvalidArgument, Store, clock
from stateless_state.codec import to_json
from tests.patterns.test_feeds_pipeline import deployment, local_feed
from tests.support.clocks import ManualClock

REVISION = 10**12 - 1  # the highest revision a declaration may have
BASE = {"STATELESS_STATE_TABLE": "state", "MANIFEST_BUCKET": "my-manifests"}


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def local(
    name: str, prefix: str, stream: str | None = None, bucket: str = "feeds-b"
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "bucket": bucket,
        "prefix": prefix,
        "target": {"kind": "local", "path": f"/tmp/{name}.db"},
    }
    if stream:
        out["stream"] = stream
    return out


def build_size(feeds: list[Feed]) -> int:
    """The size the build measured before the fix (revision 0, no time, a short why)."""
    named = {f.name: f for f in feeds}
    change = Change("declare", tuple(sorted(named)), "declared", "declared revision", 0.0)
    value = FeedSet(1, named, declared_revision=0, declared_digest="0" * 64).to_json(change)
    return len(to_json(value, "x").encode())


def declaration(tmp_path: Path, pad: int) -> list[Feed]:
    out = []
    for i in range(200):
        take = min(pad, 1000)
        pad -= take
        prefix = f"p{i:03d}/" + "x" * take
        target = LocalTarget(str(tmp_path / "w.db"))
        out.append(Feed(f"f{i:03d}", "feeds-b", target, prefix=prefix, suffix="y" * 1000))
    return out


def test_a_declaration_the_build_accepts_is_never_refused_for_its_size_when_applied(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """At exactly the limit by the old measure, it was 39 bytes over when applied (the real
    revision, the time, the why): the build now measures the version as it will be written,
    so what builds applies, on an empty table."""
    s3, bucket = s3_bucket
    base = build_size(declaration(tmp_path, 0))
    for pad in (MAX_CONFIG_BYTES - base, MAX_CONFIG_BYTES - base - 200):
        feeds = declaration(tmp_path, pad)
        try:
            built = S3Feeds(
                ddb_store,
                manifest_bucket=bucket,
                s3_client=s3,
                declared=feeds,
                declared_revision=REVISION,
                config_name=f"size{pad}",
            )
        except InvalidArgument as e:
            assert "one version holds" in str(e)
            continue
        built.prepare()
        assert built.declaration_refused is None, built.declaration_refused
        assert len(built.prepare().feeds) == 200


def test_a_configuration_at_exactly_the_limit_is_written(ddb_store: Store, tmp_path: Path) -> None:
    """The largest configuration check_size accepts is storable (no ItemTooLarge). One time
    for both declarations: a change records it, and its digits count."""
    with clock.using(ManualClock(1_796_000_000.25)):
        _at_the_limit(ddb_store, tmp_path)


def _at_the_limit(ddb_store: Store, tmp_path: Path) -> None:
    config = FeedsConfig(ddb_store)
    base = build_size(declaration(tmp_path, 0))
    hi = MAX_CONFIG_BYTES - base + 10
    with pytest.raises(InvalidArgument, match="would be") as refused:
        config.declare(declaration(tmp_path, hi), revision=1)
    found = re.search(r"would be ([0-9,]+) bytes", str(refused.value))
    assert found is not None
    pad = hi - (int(found.group(1).replace(",", "")) - MAX_CONFIG_BYTES)
    assert config.declare(declaration(tmp_path, pad), revision=1) is not None
    assert len(config.read().feeds) == 200


def test_a_declared_removed_at_hides_no_location_clash_from_the_build(
    ddb_store: Store, s3_bucket: tuple[Any, str], tmp_path: Path
) -> None:
    """FEEDS takes a feed as ``feeds show --json`` prints it, a removed one (``removed_at``)
    included; declaring it makes it live, so it is checked as live: two declared feeds at one
    location are refused by the build, not by every container."""
    s3, bucket = s3_bucket
    one = local_feed("one", "in/", bucket, tmp_path / "o.db")
    two = replace(local_feed("two", "in/", bucket, tmp_path / "t.db"), removed_at=1.0)
    with pytest.raises(InvalidArgument, match="has the location of feed 'one'"):
        deployment(ddb_store, s3, bucket, declared=[one, two], declared_revision=1)


@pytest.mark.usefixtures("region")
def test_an_empty_manifest_prefix_is_unset() -> None:
    """An empty variable is unset (a template passes every parameter)."""
    assert feeds_settings({**BASE, "MANIFEST_PREFIX": ""}, s3=object())["manifest_prefix"] == (
        "manifests/"
    )


@pytest.mark.usefixtures("region")
def test_the_declared_sets_problems_are_reported_with_the_other_settings() -> None:
    feeds = {"revision": 1, "feeds": [local("a", "a/", "x"), local("b", "b/", "x")]}
    env = {**BASE, "FEEDS": json.dumps(feeds), "LOAD_LEASE": "0"}
    with pytest.raises(SettingsRefused) as refused:
        S3Feeds.from_env(env, s3=object())
    assert any("LOAD_LEASE" in p for p in refused.value.problems)
    assert any("FEEDS: feed 'b' batches stream 'x'" in p for p in refused.value.problems)


@pytest.mark.usefixtures("region")
def test_a_feed_inside_the_manifests_and_one_outside_the_locations_are_both_reported() -> None:
    manifests = local("a", "manifests/in/", bucket="my-manifests")
    feeds = {"revision": 1, "feeds": [manifests, local("b", "elsewhere/")]}
    env = {**BASE, "FEEDS": json.dumps(feeds), "FEED_LOCATIONS": "feeds-b/in/,my-manifests/"}
    with pytest.raises(SettingsRefused) as refused:
        S3Feeds.from_env(env, s3=object())
    found = refused.value.problems
    assert any("feed 'a'" in p and "manifest location" in p for p in found), found
    assert any("feed 'b'" in p and "FEED_LOCATIONS" in p for p in found), found


@pytest.mark.usefixtures("region")
def test_every_bad_feed_location_entry_is_reported_at_once() -> None:
    env = {**BASE, "FEED_LOCATIONS": "nobucketslash,Bad_Bucket/x", "LOAD_LEASE": "0"}
    with pytest.raises(SettingsRefused) as refused:
        feeds_settings(env, s3=object())
    located = [p for p in refused.value.problems if "FEED_LOCATIONS" in p]
    assert len(located) == 2, located


@given(st.floats(min_value=1e9, max_value=1e10 - 1, allow_nan=False))
def test_no_time_a_change_records_is_written_longer_than_the_measured_one(at: float) -> None:
    assert len(json.dumps(at)) <= len(json.dumps(_LATEST_AT))
