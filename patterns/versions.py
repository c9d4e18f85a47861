"""Object versions: a manifest names only content equal to each member.

COPY reads an object's *current* content and a manifest cannot name a version, while an S3 key
can be rewritten between its arrival and its batch's load. So before a manifest is built, each
member is pinned to a URL whose content is the member's own, with one ``HeadObject`` per member:

* a member with a version id (a versioned bucket): if the key's current version is the member's,
  the key itself; otherwise its version is **staged**, copied by version id (``CopyObject``) to
  an immutable key under the stage prefix, and the manifest names the copy. A version that no
  longer exists makes the member *superseded*;
* a member with only an ETag (an unversioned bucket): the key itself if its current ETag is the
  member's (``If-Match``); otherwise the content this member saw is gone from S3 and the member is
  *superseded*: recorded on the batch, shown by ``batches show``, never loaded in another
  version's place (the newer content is its own arrival, loaded in its own batch). A member with
  neither (a notification without an ETag) cannot be pinned and is named as is.

The window that remains: a rewrite of a key after its ``HeadObject`` and before COPY reads it
loads the newer content in the member's place (and, that newer content being its own arrival,
again in its own batch). ``always_stage=True`` closes it: every member is copied (by version id,
or with ``CopySourceIfMatch`` on its ETag, which S3 checks atomically with the copy, and the
copy's ETag compared with the member's), so the manifest names only immutable copies. It costs
one ``CopyObject`` per file, and the copies' storage until a lifecycle rule on the stage prefix
removes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .batches import Member
from .membership import digest

__all__ = ["Pinned", "pin_members"]


@dataclass(frozen=True)
class Pinned:
    """Members pointed at content equal to their own (``data`` bucket and key replaced by the
    staged copy's where one was made), and the members whose content no longer exists."""

    members: tuple[Member, ...]
    superseded: tuple[Member, ...]
    staged: int


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _quoted(etag: Any) -> str | None:
    # S3 notifications carry the ETag bare; an If-Match header wants it as HTTP quotes it.
    if not etag:
        return None
    text = str(etag)
    return text if text.startswith('"') else f'"{text}"'


def _same_content(etag: str | None, copied: str | None) -> bool:
    """Whether a copy made under ``CopySourceIfMatch`` holds the member's content. S3 refuses
    the copy (412) when the source changed; this checks the copy's ETag as well, where it is an
    MD5 of the content (a single-part object's: a multipart ETag has a ``-`` and a copy gets a
    new one), so the guarantee does not rest on the condition alone."""
    if etag is None or copied is None or "-" in etag:
        return True
    return _quoted(copied) == etag


def _gone(error: Exception) -> bool:
    """The version or the ETag the member names is no longer in S3 (404, 412)."""
    return _status(error) in {404, 412}


def _current_version(s3: Any, bucket: str, key: str) -> str | None:
    """The key's current version id; None when its current version is a delete marker (the
    member's own version may still exist: it is staged then)."""
    from botocore.exceptions import ClientError

    try:
        version: str | None = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    except ClientError as e:
        if _status(e) != 404:
            raise
        return None
    return version


def pin_members(
    s3: Any,
    batch_id: str,
    members: Iterable[Member],
    *,
    stage_bucket: str,
    stage_prefix: str,
    always_stage: bool = False,
) -> Pinned:
    """Pin each member to content equal to its own; see the module docstring. Cost: one
    ``HeadObject`` per member, plus one ``CopyObject`` per staged member (every member with
    ``always_stage``). Deterministic staged keys (``<stage prefix><batch id>/<sha256 of the
    member id>/<file name>``), so a loader that takes over stages to the same keys."""
    from botocore.exceptions import ClientError

    pinned: list[Member] = []
    superseded: list[Member] = []
    staged = 0
    for m in members:
        bucket, key = m.data["bucket"], m.data["key"]
        version, etag = m.data.get("version_id"), _quoted(m.data.get("etag"))
        # The object's own file name last: a reader that goes by the name's suffix (".csv",
        # ".gz") reads the copy as it would the original.
        stage_key = f"{stage_prefix}{batch_id}/{digest(m.id)}/{key.rsplit('/', 1)[-1]}"
        try:
            if version:
                if not always_stage and _current_version(s3, bucket, key) == version:
                    pinned.append(m)
                    continue
                source = {"Bucket": bucket, "Key": key, "VersionId": version}
                s3.copy_object(Bucket=stage_bucket, Key=stage_key, CopySource=source)
            elif always_stage and etag:
                r = s3.copy_object(
                    Bucket=stage_bucket,
                    Key=stage_key,
                    CopySource={"Bucket": bucket, "Key": key},
                    CopySourceIfMatch=etag,
                )
                if not _same_content(etag, r.get("CopyObjectResult", {}).get("ETag")):
                    superseded.append(m)
                    continue
            else:
                if etag:
                    s3.head_object(Bucket=bucket, Key=key, IfMatch=etag)
                pinned.append(m)
                continue
        except ClientError as e:
            if not _gone(e):
                raise
            superseded.append(m)
            continue
        staged += 1
        # The copy is immutable and only this member's: nothing to pin any more.
        copy = {**m.data, "bucket": stage_bucket, "key": stage_key}
        copy.pop("version_id", None)
        copy.pop("etag", None)
        pinned.append(replace(m, data=copy))
    return Pinned(tuple(pinned), tuple(superseded), staged)
