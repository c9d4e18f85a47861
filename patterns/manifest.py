"""Redshift COPY manifests: one deterministic manifest per batch.

The manifest of a sealed batch is a pure function of its frozen member set, written to a key
derived from the batch id: a loader that crashed and is replaced writes the same bytes to the
same key, so there is never a second, different manifest for one batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stateless_state import InvalidArgument

from .batches import Member
from .manifest_keys import check_prefix, manifest_key
from .s3 import check_bucket

__all__ = ["Manifest", "ManifestEntry", "build_manifest", "write_manifest"]


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One object of a manifest. ``version_id`` and ``etag`` (not part of Redshift's manifest
    JSON) name the content it must be, for a loader that can read by version: the local
    warehouse does; COPY cannot, which is what staging is for (:mod:`patterns.versions`)."""

    url: str
    content_length: int
    version_id: str | None = None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A batch's manifest: ``url`` where it lives, ``entries`` sorted by URL."""

    batch_id: str
    bucket: str
    key: str
    entries: tuple[ManifestEntry, ...]

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_json(self) -> str:
        """Canonical JSON: the same batch always gives the same bytes."""
        return json.dumps(
            {
                "entries": [
                    {"url": e.url, "mandatory": True, "meta": {"content_length": e.content_length}}
                    for e in self.entries
                ]
            },
            sort_keys=True,
            separators=(",", ":"),
        )


def build_manifest(
    batch_id: str, members: Iterable[Member], *, bucket: str, prefix: str = "manifests/"
) -> Manifest:
    """The manifest for ``batch_id``: one mandatory entry per distinct object URL.

    Give it members pinned to their own content (:func:`patterns.versions.pin_members`, as the
    pipeline does): two members at one URL then name the same content, and one entry loads it
    once. Unpinned, two versions of one key would both read the key's current content.
    """
    check_bucket(bucket)
    check_prefix(prefix, batch_id)
    urls: dict[str, ManifestEntry] = {}
    for m in members:
        try:
            url = f"s3://{m.data['bucket']}/{m.data['key']}"
        except KeyError as e:
            raise InvalidArgument(f"member {m.id!r} has no {e} in its data") from None
        size = max(urls[url].content_length, m.size) if url in urls else m.size
        urls[url] = ManifestEntry(url, size, m.data.get("version_id"), m.data.get("etag"))
    entries = tuple(e for _, e in sorted(urls.items()))
    key = manifest_key(prefix, batch_id)
    return Manifest(batch_id, bucket, key, entries)


def write_manifest(s3: Any, manifest: Manifest) -> None:
    """Put the manifest at its deterministic key (idempotent: same key, same bytes)."""
    s3.put_object(
        Bucket=manifest.bucket,
        Key=manifest.key,
        Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
