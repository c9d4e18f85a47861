"""Redshift COPY manifests: one deterministic manifest per batch and revision.

The manifest of a sealed batch is a pure function of its frozen member set as pinned to their
content (:mod:`patterns.batcher.object_pins`), written to a key derived from the batch id and the
fence of the load that writes it: pins can change between a crashed loader and its successor (a key
rewritten between them), so each load reads only its own manifests, and a zombie's late write
never changes what another load's COPY reads. A load that finds keys rewritten while COPY read
them writes the next revision (``.r1``, ``.r2``...) at a key of its own instead of changing one
a running COPY may be reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stateless_state import InvalidArgument

from ..s3 import check_bucket
from .arrivals import Member
from .manifest_keys import check_prefix, manifest_key

__all__ = [
    "Manifest",
    "ManifestEntry",
    "Recheck",
    "build_manifest",
    "member_url",
    "write_manifest",
]


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One object of a manifest. ``version_id`` and ``etag`` (not part of Redshift's manifest
    JSON) name the content it must be, for a loader that can read by version: the local
    warehouse does; COPY cannot, which is what staging is for
    (:mod:`patterns.batcher.object_pins`)."""

    url: str
    content_length: int
    version_id: str | None = None
    etag: str | None = None


class Recheck(Protocol):
    """What a loader whose reader reads each key's *current* content (Redshift's COPY) calls
    once the reader has read the manifest's keys and before its load commits.

    It returns None when every entry still names its key's current content (so the reader read
    exactly the members' content), else the batch's next manifest revision, already written to
    S3: the changed entries' members staged as immutable copies (or, their content gone,
    recorded as superseded), the others as they were. With ``everything`` it stages every entry
    that still names a mutable key, so the manifest it returns needs no further check."""

    def __call__(self, manifest: Manifest, *, everything: bool = False) -> Manifest | None: ...


@dataclass(frozen=True, slots=True)
class Manifest:
    """A batch's manifest: ``url`` where it lives, ``entries`` sorted by URL, ``revision`` 0
    unless it was re-pinned after a read (:class:`Recheck`). ``recheck``, when the pipeline
    gives one, is how a loader that reads current content closes the window between the pin
    and its read (see :mod:`patterns.batcher.object_pins`)."""

    batch_id: str
    bucket: str
    key: str
    entries: tuple[ManifestEntry, ...]
    revision: int = 0
    fence: int = 0
    recheck: Recheck | None = field(default=None, compare=False, repr=False)

    @property
    def mutable_entries(self) -> tuple[ManifestEntry, ...]:
        """The entries that name a key whose content can change after the pin (they carry a
        version id or an ETag; a staged copy carries neither, as nothing rewrites it)."""
        return tuple(e for e in self.entries if e.version_id or e.etag)

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


def member_url(m: Member) -> str:
    """The ``s3://bucket/key`` a member's data names; :class:`InvalidArgument` without one."""
    try:
        return f"s3://{m.data['bucket']}/{m.data['key']}"
    except KeyError as e:
        raise InvalidArgument(f"member {m.id!r} has no {e} in its data") from None


def build_manifest(
    batch_id: str,
    members: Iterable[Member],
    *,
    bucket: str,
    prefix: str = "manifests/",
    fence: int = 0,
    revision: int = 0,
) -> Manifest:
    """The manifest for ``batch_id``: one mandatory entry per distinct object URL.

    Give it members pinned to their own content (:func:`patterns.batcher.object_pins.pin_members`,
    as the pipeline does): two members at one URL then name the same content, and one entry loads it
    once. Unpinned, two versions of one key would both read the key's current content.
    """
    check_bucket(bucket)
    check_prefix(prefix, batch_id)
    urls: dict[str, ManifestEntry] = {}
    for m in members:
        url = member_url(m)
        size = max(urls[url].content_length, m.size) if url in urls else m.size
        urls[url] = ManifestEntry(url, size, m.data.get("version_id"), m.data.get("etag"))
    entries = tuple(e for _, e in sorted(urls.items()))
    key = manifest_key(prefix, batch_id, fence, revision)
    return Manifest(batch_id, bucket, key, entries, revision, fence)


def write_manifest(s3: Any, manifest: Manifest) -> None:
    """Put the manifest at its deterministic key (idempotent: same key, same bytes)."""
    s3.put_object(
        Bucket=manifest.bucket,
        Key=manifest.key,
        Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
