"""A local or PostgreSQL target's file format (``format``, ``gzip``): kept through the stored
configuration, handed to its loader, and every file read as it says, a file that is not so
failing its batch's load (nothing committed) as a Redshift COPY of one format would."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, get_args

import pytest

from patterns.batcher import Thresholds
from patterns.batcher.batches import Batch, BatchState
from patterns.batcher.manifest import Manifest, ManifestEntry
from patterns.feeds import Feed, FeedsConfig, LocalTarget, PostgresTarget, feed_from_json
from patterns.feeds.feed import FILE_FORMATS
from patterns.loaders.base import FileFormat, FileKind
from patterns.loaders.postgres import PostgresLoader
from patterns.loaders.sqlite import LocalWarehouseLoader
from patterns.testing import put_object
from stateless_state import InvalidArgument, StatelessStateError, Store

CSV = b'id,v,note\n1,1,a\n2,1,"b, c"\n'
JSON = b'{"id": 1, "v": 1}\n\n{"id": 2, "v": 1}\n'


class Ticket:
    batch = Batch("s", 0, 0, BatchState.LOADING, 1, 9, 0.0)
    fence = 1

    def record_statement(self, statement_id: str) -> None:
        raise AssertionError("the local warehouse records no statement")


def manifest_of(s3: Any, bucket: str, key: str, body: bytes) -> Manifest:
    pinned = put_object(s3, bucket, key, body)["s3"]["object"]
    entry = ManifestEntry(
        f"s3://{bucket}/{key}", len(body), version_id=pinned.get("versionId"), etag=pinned["eTag"]
    )
    return Manifest("s/0/000000000000", bucket, "m/", (entry,))


def test_the_targets_formats_are_the_loaders_file_kinds() -> None:
    assert set(FILE_FORMATS) == set(get_args(FileKind))


@pytest.mark.parametrize(
    "make",
    [
        lambda **f: LocalTarget("/tmp/w.db", "t", **f),
        lambda **f: PostgresTarget("host=db", "s.t", **f),
    ],
    ids=["local", "postgres"],
)
def test_a_targets_format_is_stored_and_read_back_and_reaches_its_loader(
    moto_store: Store, make: Any
) -> None:
    target = make(format="csv", gzip=True)
    feed = Feed(
        name="orders",
        bucket="landing",
        prefix="orders/",
        target=target,
        thresholds=Thresholds(count=2, bytes=None, age=None),
    )
    stored = feed.to_json()["target"]
    assert stored["format"] == "csv" and stored["gzip"] is True
    assert feed_from_json(feed.to_json()) == feed
    config = FeedsConfig(moto_store)
    config.add(feed, who="op", why="t")
    assert config.read().feed("orders").target == target, "as the stored version says"
    loader = target.loader()
    assert isinstance(loader, LocalWarehouseLoader | PostgresLoader)
    assert loader.file_format == FileFormat("csv", gzip=True)
    plain = make()
    assert "format" not in Feed(name="f", bucket="landing", target=plain).to_json()["target"]
    assert plain.loader().file_format is None, "no format: each file read by its content"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"format": "parquet"}, "format 'parquet' is not one of csv, json"),
        ({"format": "csv", "gzip": "yes"}, "gzip must be true or false"),
        ({"gzip": True}, "gzip needs a format"),
    ],
)
def test_a_format_the_loaders_cannot_read_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        LocalTarget("/tmp/w.db", **fields)
    with pytest.raises(InvalidArgument, match=problem):
        PostgresTarget("host=db", "t", **fields)


@pytest.mark.parametrize(
    ("key", "body", "declared"),
    [
        # A key's suffix says nothing once the format is declared (exporters name files freely).
        ("orders/0001", gzip.compress(CSV), FileFormat("csv", gzip=True)),
        ("orders/0001.jsonl", CSV, FileFormat("csv")),
        ("events/0001.csv", JSON, FileFormat("json")),
        ("events/0001", gzip.compress(JSON), FileFormat("json", gzip=True)),
    ],
    ids=["csv-gzip-no-suffix", "csv-named-jsonl", "json-named-csv", "json-gzip-no-suffix"],
)
def test_every_file_is_read_as_its_target_says(
    s3_bucket: tuple[Any, str], tmp_path: Path, key: str, body: bytes, declared: FileFormat
) -> None:
    s3, bucket = s3_bucket
    loader = LocalWarehouseLoader(tmp_path / "w.db", s3, file_format=declared)
    assert loader.load(Ticket(), manifest_of(s3, bucket, key, body)).rows == 2
    assert loader.counts_by("id", "v") == {("1", "1"): 1, ("2", "1"): 1}


@pytest.mark.parametrize(
    ("body", "declared", "problem"),
    [
        (CSV, FileFormat("csv", gzip=True), "is not csv, gzipped"),
        (gzip.compress(CSV), FileFormat("csv"), "is not csv, not gzipped"),
        (gzip.compress(CSV), FileFormat("json", gzip=True), "line 1 is not a JSON object"),
        (b"[1, 2]\n", FileFormat("json"), "line 1 is not a JSON object"),
        (b"id,v\n1,1\n2\n", FileFormat("csv"), "line 3 has another number of fields"),
        (b"id,v\n1,1,9\n", FileFormat("csv"), "line 2 has another number of fields"),
        (b"\xff\xfe", FileFormat("json"), "not UTF-8"),
    ],
    ids=[
        "not-gzipped",
        "gzipped",
        "csv-as-json",
        "json-not-object",
        "short-row",
        "long-row",
        "not-utf8",
    ],
)
def test_a_file_that_is_not_as_its_target_says_fails_the_load_and_commits_nothing(
    s3_bucket: tuple[Any, str], tmp_path: Path, body: bytes, declared: FileFormat, problem: str
) -> None:
    s3, bucket = s3_bucket
    loader = LocalWarehouseLoader(tmp_path / "w.db", s3, file_format=declared)
    manifest = manifest_of(s3, bucket, "landing/f", body)
    with pytest.raises(StatelessStateError, match=problem):
        loader.load(Ticket(), manifest)
    assert loader.ledger() == {} and loader.counts_by("id") == {}
    assert loader.recorded(Ticket()) is None, "the next attempt loads it afresh"


def test_a_file_format_of_another_kind_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="file format 'xml' is not one of csv, json"):
        FileFormat("xml")  # type: ignore[arg-type]
