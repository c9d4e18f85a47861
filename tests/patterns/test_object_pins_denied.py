"""A 403 from S3 is an error naming the missing permission, never "gone" (superseded).

Without ``s3:ListBucket`` S3 answers ``HeadObject`` on a missing key with 403 instead of 404,
so a 403 cannot tell a deleted object from a forbidden one; reading it as gone would drop the
member's rows for good. Each S3 call the pins make is answered by a stubbed client (botocore's
Stubber: the real client, its parameters validated against the model, no network): the pin's
``HeadObject``, the staging ``CopyObject``, and the recheck after COPY. A 404 still is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from patterns.batcher.arrivals import Member
from patterns.batcher.manifest import ManifestEntry
from patterns.batcher.object_pins import changed_entries, pin_members
from stateless_state.errors import AccessDenied

BUCKET = "data-bucket"
STAGE = "manifests/staged/"


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def member(key: str, **data: str) -> Member:
    return Member(f"s3://{BUCKET}/{key}", 10, 0.0, {"bucket": BUCKET, "key": key, **data})


def refuse(stubber: Stubber, operation: str, status: int) -> None:
    code = {403: "403", 404: "404"}[status]
    stubber.add_client_error(operation, service_error_code=code, http_status_code=status)


def pin(client: Any, *members: Member) -> Any:
    return pin_members(client, "s/0/000000000001", members, stage_bucket=BUCKET, stage_prefix=STAGE)


def test_a_forbidden_head_object_names_list_bucket_and_get_object(s3: Any) -> None:
    client, stubber = s3
    refuse(stubber, "head_object", 403)
    with pytest.raises(AccessDenied) as denied:
        pin(client, member("in/a.json", etag="abc"))
    message = str(denied.value)
    assert f"s3:ListBucket on arn:aws:s3:::{BUCKET}" in message
    assert f"s3:GetObject on arn:aws:s3:::{BUCKET}/in/a.json" in message
    assert f"arn:aws:s3:::{BUCKET}/<prefix>*" in message and "kms:Decrypt" in message
    assert "in/a.json" in message and "superseded" in message  # "not marked superseded"


def test_a_missing_key_with_list_bucket_is_gone(s3: Any) -> None:
    """The same member, answered 404 (what S3 says when the role may list the bucket) and
    then 404 for its ``"null"`` version: its content is gone, the member superseded."""
    client, stubber = s3
    refuse(stubber, "head_object", 404)
    refuse(stubber, "copy_object", 404)
    pinned = pin(client, member("in/a.json", etag="abc"))
    assert [m.data["key"] for m in pinned.superseded] == ["in/a.json"] and pinned.members == ()


def test_a_forbidden_copy_of_an_earlier_version_names_get_object_version(s3: Any) -> None:
    """A versioned member whose key holds a newer version is staged by version id; a 403 on
    that copy names ``s3:GetObjectVersion`` on the source and ``s3:PutObject`` on the stage."""
    client, stubber = s3
    stubber.add_response("head_object", {"VersionId": "v2", "ETag": '"e2"'})
    refuse(stubber, "copy_object", 403)
    with pytest.raises(AccessDenied) as denied:
        pin(client, member("in/b.json", version_id="v1", etag="e1"))
    message = str(denied.value)
    assert f"s3:GetObjectVersion on s3://{BUCKET}/in/b.json" in message
    assert f"s3:PutObject on arn:aws:s3:::{BUCKET}/*" in message


def test_a_forbidden_recheck_after_copy_is_an_error_not_a_change(s3: Any) -> None:
    """After COPY read the keys, the recheck asks S3 again; a 403 there raises (the load is
    retried) rather than report the key changed, which would restage or supersede it."""
    client, stubber = s3
    refuse(stubber, "head_object", 403)
    entry = ManifestEntry(f"s3://{BUCKET}/in/c.json", 10, version_id="v1")
    with pytest.raises(AccessDenied, match="s3:ListBucket"):
        changed_entries(client, [entry])
