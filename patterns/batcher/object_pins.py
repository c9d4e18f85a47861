"""Object pins: a manifest names only content equal to each member (its S3 object version).

COPY reads an object's *current* content and a manifest cannot name a version, while an S3 key
can be rewritten between its arrival and its batch's load. So before a manifest is built, each
member is pinned to a URL whose content is the member's own, with one ``HeadObject`` per member:

* a member with a version id (a versioned bucket): if the key's current version is the member's,
  the key itself; otherwise its version is **staged**, copied by version id (``CopyObject``) to
  an immutable key under the stage prefix, and the manifest names the copy. A version that no
  longer exists makes the member *superseded*;
* a member with only an ETag (an unversioned bucket, or content written while versioning was
  off or suspended, which S3 keeps as the version ``"null"``): the key itself if its current
  ETag is the member's; otherwise, when the bucket is versioned now, its ``"null"`` version may
  still hold the member's content: it is staged from there (``CopySourceIfMatch`` on the ETag);
  else the content this member saw is gone from S3 and the member is *superseded*: recorded on
  the batch, shown by ``batches show``, never loaded in another version's place (the newer
  content is its own arrival, loaded in its own batch). A member with neither (a notification
  without an ETag) cannot be pinned and is named as is.

A pin holds when it is checked; a rewrite after the check and before COPY reads the key would
load the newer content in the member's place. A loader whose reader cannot pin a version (COPY)
therefore checks the members again once COPY has read them and before it commits
(:class:`PinRecheck`, which the pipeline hands it as the manifest's ``recheck``, and
:class:`~patterns.loaders.redshift.RedshiftDataApiLoader` calls): a key whose content is the same
before the read (the pin) and after it held that content throughout (version ids never repeat),
so COPY read the member's own content; what changed is staged (:func:`restage`) and read again.
``always_stage=True`` stages every member up front instead: one ``CopyObject`` per file, and
the copies' storage until a lifecycle rule on the stage prefix removes them.

Permissions: S3 answers 403, not 404, for a missing key unless the caller may ``s3:ListBucket``;
a 403 is therefore never read as "gone" but raised as :class:`AccessDenied` naming the missing
permission.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stateless_state import InvalidArgument
from stateless_state.errors import AccessDenied

from .arrivals import Member
from .members import digest

if TYPE_CHECKING:
    from .manifest import Manifest, ManifestEntry

__all__ = [
    "S3_KEY_LIMIT",
    "PinRecheck",
    "Pinned",
    "changed_entries",
    "pin_members",
    "restage",
    "stage_key",
]

S3_KEY_LIMIT = 1024
"""S3's limit on an object key, in UTF-8 bytes."""

_NULL = "null"


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
    # S3 notifications carry the ETag bare; HTTP headers and responses quote it.
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


def _denied(error: Exception, what: str, needs: str) -> AccessDenied | None:
    if _status(error) != 403:
        return None
    return AccessDenied(
        f"S3 refused {what} (403 Forbidden): the function's role needs {needs}. Without "
        "s3:ListBucket S3 answers 403 instead of 404 for a missing key, so the member cannot be "
        "told gone from forbidden; the batch is retried, not marked superseded"
    )


def _held(head: dict[str, Any], etag: str | None) -> bool:
    """Whether the key's current content (``head``) is an ETag-only member's own: the same ETag
    **and** no version id of its own. A member known by its ETag alone was written while the
    bucket was unversioned (S3 keeps it as the version ``"null"``); a current version with an
    id of its own is another object, even with the same bytes, and arrives as its own member."""
    return _quoted(head.get("ETag")) == etag and head.get("VersionId") in (None, _NULL)


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The key's current ``HeadObject`` answer; None when it has no current version (deleted,
    or a delete marker in a versioned bucket: earlier versions may still exist)."""
    from botocore.exceptions import ClientError

    try:
        head: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if denied := _denied(
            e,
            f"HeadObject on s3://{bucket}/{key}",
            f"s3:GetObject on arn:aws:s3:::{bucket}/{key} (granted on the location it arrives "
            f"at, such as a feed's arn:aws:s3:::{bucket}/<prefix>*), s3:ListBucket on "
            f"arn:aws:s3:::{bucket}, and kms:Decrypt on the object's KMS key if it is SSE-KMS",
        ):
            raise denied from e
        if _status(e) != 404:
            raise
        return None
    return head


def _copy(s3: Any, source: dict[str, str], stage_bucket: str, key: str, **extra: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return s3.copy_object(Bucket=stage_bucket, Key=key, CopySource=source, **extra)
    except ClientError as e:
        src = f"s3://{source['Bucket']}/{source['Key']}"
        needs = (
            f"s3:GetObject{'Version' if 'VersionId' in source else ''} on {src} and "
            f"s3:PutObject on arn:aws:s3:::{stage_bucket}/*"
        )
        if denied := _denied(e, f"CopyObject from {src}", needs):
            raise denied from e
        raise


def _utf8_tail(text: str, limit: int) -> str:
    """The longest suffix of ``text`` whose UTF-8 encoding fits ``limit`` bytes."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[len(encoded) - limit :].decode(errors="ignore")


def stage_key(stage_prefix: str, batch_id: str, member_id: str, key: str) -> str:
    """The staged copy's key: ``<stage prefix><batch id>/<sha256 of the member id>/<name>``,
    deterministic (a loader that takes over stages to the same key) and never over S3's 1,024
    bytes: the object's file name is cut from the front, keeping its end (``.csv.gz``, which a
    reader may go by), and a batch id too long to fit is replaced by its sha256. Raises
    :class:`InvalidArgument` when the stage prefix alone leaves no room."""
    name = key.rsplit("/", 1)[-1]
    member = digest(member_id)
    for batch in (batch_id, digest(batch_id)):
        fixed = f"{stage_prefix}{batch}/{member}/"
        room = S3_KEY_LIMIT - len(fixed.encode())
        if room >= 1:
            return fixed + (_utf8_tail(name, room) or "_")
    raise InvalidArgument(
        f"stage prefix {stage_prefix[:80]!r}... is {len(stage_prefix.encode())} bytes: staged "
        f"keys must fit S3's {S3_KEY_LIMIT}-byte key limit; use a shorter manifest prefix"
    )


def _stage(m: Member, stage_bucket: str, stage_key_: str) -> Member:
    # The copy is immutable and only this member's: nothing to pin any more.
    copy = {**m.data, "bucket": stage_bucket, "key": stage_key_}
    copy.pop("version_id", None)
    copy.pop("etag", None)
    return replace(m, data=copy)


def _stage_null_version(
    s3: Any, m: Member, etag: str, stage_bucket: str, key: str
) -> Member | None:
    """Stage the member's content from the key's ``"null"`` version (written while versioning
    was off or suspended), if that version still holds it; None when it does not."""
    from botocore.exceptions import ClientError

    source = {"Bucket": m.data["bucket"], "Key": m.data["key"], "VersionId": _NULL}
    try:
        r = _copy(s3, source, stage_bucket, key, CopySourceIfMatch=etag)
    except ClientError as e:
        # 400: a bucket that was never versioned may refuse the version id outright.
        if _gone(e) or _status(e) == 400:
            return None
        raise
    if not _same_content(etag, r.get("CopyObjectResult", {}).get("ETag")):
        return None
    return _stage(m, stage_bucket, key)


def pin_members(
    s3: Any,
    batch_id: str,
    members: Iterable[Member],
    *,
    stage_bucket: str,
    stage_prefix: str,
    always_stage: bool = False,
) -> Pinned:
    """Pin each member to content equal to its own; see the module docstring.

    Cost: one ``HeadObject`` per member (none with ``always_stage``), plus one ``CopyObject``
    per staged member (every member with ``always_stage``) and one per ETag-only member whose
    key changed or is gone (the ``"null"`` version's chance). The pin holds at the time of the
    request only: see the module docstring for the window it leaves. Staged keys: see
    :func:`stage_key`. Raises :class:`AccessDenied` on a 403."""
    from botocore.exceptions import ClientError

    pinned: list[Member] = []
    superseded: list[Member] = []
    staged = 0
    for m in members:
        bucket, key = m.data["bucket"], m.data["key"]
        version, etag = m.data.get("version_id"), _quoted(m.data.get("etag"))
        target = stage_key(stage_prefix, batch_id, m.id, key)
        if version:
            if not always_stage:
                head = _head(s3, bucket, key)
                if head is not None and head.get("VersionId") == version:
                    pinned.append(m)
                    continue
            source = {"Bucket": bucket, "Key": key, "VersionId": version}
            try:
                _copy(s3, source, stage_bucket, target)
            except ClientError as e:
                if not _gone(e):
                    raise
                superseded.append(m)
                continue
            staged += 1
            pinned.append(_stage(m, stage_bucket, target))
            continue
        if etag is None:
            pinned.append(m)
            continue
        pin = _pin_by_etag(s3, m, etag, stage_bucket, target, always_stage=always_stage)
        if pin is None:
            superseded.append(m)
            continue
        if pin is not m:
            staged += 1
        pinned.append(pin)
    return Pinned(tuple(pinned), tuple(superseded), staged)


def _pin_by_etag(
    s3: Any, m: Member, etag: str, stage_bucket: str, target: str, *, always_stage: bool
) -> Member | None:
    """An ETag-only member's pin: ``m`` itself when its key still holds its content (unless
    ``always_stage``), else its content staged at ``target`` (from the key, or from its
    ``"null"`` version), else None: the content is gone (superseded). One ``HeadObject`` or one
    ``CopyObject``, plus one ``CopyObject`` for the ``"null"`` version's chance."""
    from botocore.exceptions import ClientError

    bucket, key = m.data["bucket"], m.data["key"]
    head = None if always_stage else _head(s3, bucket, key)
    if head is not None and _held(head, etag):
        return m
    current_null = head is not None and head.get("VersionId") in (None, _NULL)
    if always_stage:
        try:
            r = _copy(
                s3, {"Bucket": bucket, "Key": key}, stage_bucket, target, CopySourceIfMatch=etag
            )
        except ClientError as e:
            if not _gone(e):
                raise
        else:
            if _same_content(etag, r.get("CopyObjectResult", {}).get("ETag")):
                return _stage(m, stage_bucket, target)
    if current_null:
        return None
    # The current content is not the member's, and the "null" version is not the current
    # one: it may still hold the content written before versioning was on.
    return _stage_null_version(s3, m, etag, stage_bucket, target)


def changed_entries(s3: Any, entries: Sequence[ManifestEntry]) -> list[ManifestEntry]:
    """The entries whose key no longer holds the content they name: current version id (or,
    with only an ETag, current ETag) different, or no current version. One ``HeadObject`` per
    entry that names a version or an ETag; staged copies name neither (they are immutable) and
    cost nothing. Called after COPY read the keys and before its transaction commits, an entry
    found unchanged was the key's content both before (the pin) and after COPY's read, so COPY
    read it; what this cannot see is an ETag-only key rewritten and then rewritten back to the
    same bytes within that window (a versioned bucket's version ids do not repeat). Raises
    :class:`AccessDenied` on a 403."""
    changed: list[ManifestEntry] = []
    for e in entries:
        if not e.version_id and not e.etag:
            continue
        bucket, _, key = e.url.removeprefix("s3://").partition("/")
        head = _head(s3, bucket, key)
        if head is None:
            same = False
        elif e.version_id:
            same = head.get("VersionId") == e.version_id
        else:
            same = _held(head, _quoted(e.etag))
        if not same:
            changed.append(e)
    return changed


def restage(
    s3: Any,
    batch_id: str,
    members: Iterable[Member],
    *,
    stage_bucket: str,
    stage_prefix: str,
) -> Pinned:
    """Stage ``members`` (those whose key changed after their pin): :func:`pin_members` with
    ``always_stage``, so each is an immutable copy or superseded. One ``CopyObject`` each (two
    for an ETag-only member whose key changed: the ``"null"`` version's chance)."""
    return pin_members(
        s3,
        batch_id,
        members,
        stage_bucket=stage_bucket,
        stage_prefix=stage_prefix,
        always_stage=True,
    )


@dataclass
class PinRecheck:
    """The :class:`~patterns.batcher.manifest.Recheck` of one load: after COPY read the manifest's
    keys and before the load commits, it asks S3 whether each key still holds the member's content
    and, for those that do not, stages the member's own version or records it superseded, then
    writes the manifest's next revision.

    ``members`` are the batch's members as pinned (:func:`pin_members`); ``superseded`` the ids
    found gone so far (at the pin, then by each recheck); ``record_superseded`` writes the whole
    list on the batch (the load ticket's fenced write) whenever a recheck adds to it, before the
    load commits. Cost per call: one ``HeadObject`` per entry that
    names a version or an ETag (staged copies cost nothing), and when something changed, one
    ``CopyObject`` per changed member and one ``PutObject`` of the new revision; with
    ``everything``, one ``CopyObject`` per remaining mutable member and no ``HeadObject``.
    Not thread-safe: one load calls it, from one thread."""

    s3: Any
    batch_id: str
    members: list[Member]
    stage_bucket: str
    stage_prefix: str
    manifest_bucket: str
    manifest_prefix: str
    record_superseded: Callable[[list[str]], None]
    superseded: list[str] = field(default_factory=list)

    def __call__(self, manifest: Manifest, *, everything: bool = False) -> Manifest | None:
        from .manifest import build_manifest, member_url, write_manifest
        from .manifest_keys import MAX_REVISION

        if everything:
            changed = {e.url for e in manifest.mutable_entries}
        else:
            changed = {e.url for e in changed_entries(self.s3, manifest.mutable_entries)}
        if not changed:
            return None
        if manifest.revision >= MAX_REVISION:
            raise InvalidArgument(
                f"batch {self.batch_id}: manifest revision {manifest.revision} is the last; "
                "call with everything=True before it (the loader bounds its rechecks)"
            )
        moving = [m for m in self.members if member_url(m) in changed]
        kept = [m for m in self.members if member_url(m) not in changed]
        staged = restage(
            self.s3,
            self.batch_id,
            moving,
            stage_bucket=self.stage_bucket,
            stage_prefix=self.stage_prefix,
        )
        if staged.superseded:
            self.superseded = [*self.superseded, *sorted(m.id for m in staged.superseded)]
            self.record_superseded(self.superseded)
        self.members = [*kept, *staged.members]
        revised = build_manifest(
            self.batch_id,
            self.members,
            bucket=self.manifest_bucket,
            prefix=self.manifest_prefix,
            fence=manifest.fence,
            revision=manifest.revision + 1,
        )
        if revised.entries:
            write_manifest(self.s3, revised)
        return replace(revised, recheck=self)
