"""Where a batch's manifest and staged copies go in S3, and the check that a ``manifest_prefix``
keeps every such key valid (a module of its own: the pipeline checks its setting when it is
built, on every cold start, without importing the manifest code)."""

from __future__ import annotations

import re
from urllib.parse import quote

from stateless_state import InvalidArgument

__all__ = ["MAX_FENCE", "MAX_REVISION", "check_prefix", "is_own_key", "manifest_key"]

_PREFIX = re.compile(r"[A-Za-z0-9_.=/\-]*", re.ASCII)
_MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# What follows the prefix in the keys the pipeline writes: a manifest
# (``<batch id, percent-encoded>.<fence>[.r<n>].manifest``) and a staged copy
# (``staged/<batch id or its sha256>/<sha256 of the member id>/<file name>``).
# A lane is 0..255 (patterns.batcher.MAX_LANES), a seq 12 digits, a fence at most 19 digits
# (checked against MAX_FENCE); a manifest's stream is percent-encoded (quote's output only), a
# staged copy's is raw (any characters).
_LANE_SEQ = r"/(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])/[0-9]{12}"
_QUOTED = r"(?:[A-Za-z0-9_.~:/-]|%[0-9A-F]{2})+"
_OWN_MANIFEST = re.compile(
    _QUOTED + _LANE_SEQ + r"\.(0|[1-9][0-9]{0,18})(?:\.r[1-9])?\.manifest", re.ASCII
)
_OWN_STAGED = re.compile(r"staged/(?:.+" + _LANE_SEQ + r"|[0-9a-f]{64})/[0-9a-f]{64}/[^/]+", re.S)
# A staged copy's key past its prefix and batch id: "/<sha256 hex>/" and at least one byte.
_STAGED_SUFFIX = 1 + 64 + 1 + 1

MAX_REVISION = 9
"""The highest manifest revision: a load that re-pins its batch after COPY read it (see
:class:`patterns.batcher.manifest.Recheck`) writes revisions 1, 2, ... of the manifest, up to
this."""


MAX_FENCE = 2**63 - 1
"""The highest load fence a manifest key is made for (a fence counts a batch's claims)."""


def manifest_key(prefix: str, batch_id: str, fence: int = 0, revision: int = 0) -> str:
    """The S3 key of ``batch_id``'s manifest under ``prefix``, for the load that holds
    ``fence``: ``<prefix><batch id>.<fence>.manifest``, revision ``n`` > 0 (re-pinned after
    COPY read the first) at ``<...>.<fence>.r<n>.manifest``. The fence makes each load's
    manifests its own: pins can differ between a zombie and its successor (a key rewritten
    between their pins), and a zombie's late write must never change what the successor's COPY
    reads."""
    if not 0 <= revision <= MAX_REVISION:
        raise InvalidArgument(f"manifest revision must be 0..{MAX_REVISION}, got {revision}")
    if isinstance(fence, bool) or not isinstance(fence, int) or not 0 <= fence <= MAX_FENCE:
        raise InvalidArgument(f"manifest fence must be an int 0..2**63-1, got {fence!r}")
    # Stream names are opaque: percent-encode all but the separators of the batch id, so a
    # stream with '#', '?' or spaces still gives a plain S3 key.
    suffix = f".r{revision}" if revision else ""
    return f"{prefix}{quote(batch_id, safe='/:')}.{fence}{suffix}.manifest"


def is_own_key(prefix: str, key: str) -> bool:
    """Whether ``key`` (in the manifest bucket) is one the pipeline writes under ``prefix``: a
    manifest (:func:`manifest_key`) or a staged copy
    (:func:`patterns.batcher.object_pins.stage_key`), by their exact shapes, so that a
    producer's file that happens to sit under the prefix is not taken for one of them."""
    if not key.startswith(prefix):
        return False
    rest = key[len(prefix) :]
    manifest = _OWN_MANIFEST.fullmatch(rest)
    if manifest is not None:
        return int(manifest.group(1)) <= MAX_FENCE
    return _OWN_STAGED.fullmatch(rest) is not None


def check_prefix(prefix: object, longest_batch_id: str) -> str:
    """``prefix`` if every manifest and staged-copy key under it fits S3's 1,024-byte key limit
    for batch ids up to ``longest_batch_id``; raises :class:`InvalidArgument` naming the
    ``manifest_prefix`` setting otherwise. The pipeline calls it when it is built."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidArgument(
            f"manifest_prefix {prefix!r} may use only A-Z a-z 0-9 _ . = / - "
            "(e.g. 'manifests/'): change the setting"
        )
    longest = max(
        len(manifest_key(prefix, longest_batch_id, MAX_FENCE, MAX_REVISION).encode()),
        len(f"{prefix}staged/{longest_batch_id}".encode()) + _STAGED_SUFFIX,
    )
    if longest > _MAX_KEY_BYTES:
        raise InvalidArgument(
            f"manifest_prefix {prefix[:40]!r}... makes keys of up to {longest} bytes; S3 allows "
            f"{_MAX_KEY_BYTES}: use a shorter prefix (or a shorter stream name)"
        )
    return prefix
