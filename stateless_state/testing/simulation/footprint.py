"""What a step touches, so that exhaustive search can tell steps that commute.

A step's *footprint* is the set of resources it reads or writes: a DynamoDB partition (table and
partition key value), an S3 object (bucket and key), a whole table or bucket (a ``Scan``, a
``ListObjectsV2``), and whatever the scenario marks with
:meth:`~stateless_state.testing.simulation.World.touch` (state the invocations share outside AWS,
such as a local warehouse). Two steps of different invocations are *independent* when no
resource is written by one and read or written by the other: run in either order they leave the
same state and give the same answers. ``None`` is the footprint of a step whose effects are not
known or not local (a sleep, which moves virtual time; a crash, whose redelivery adds an
invocation; a table's creation; a request to any service but DynamoDB and S3, since SQS, SNS or
a table's stream see their effects): dependent on everything.

Over-approximations are safe (they only make fewer steps independent): a partition stands for
every item in it, a ``Query`` on an index for the whole table, a ``ConditionCheck`` for a write.
What commuting two independent steps does change is virtual time: each request takes
:data:`~stateless_state.testing.simulation.LATENCY`, so the two see times that differ by that much
in the other order; and moto hands out its random ids (S3 version ids, request ids) in request
order. Neither is a state the code can tell apart by anything but the value of an opaque id or
a millisecond.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["ANY", "Footprint", "Resource", "dependent", "request_footprint"]

ANY = "*"
"""The key of a resource that stands for every key of its container (a table, a bucket)."""

Resource = tuple[str, str, str]
"""(service, container, key): a DynamoDB partition, an S3 object, or ``(kind, name, "")``."""

Footprint = frozenset[tuple[Resource, bool]]
"""Each resource a step touches, with ``True`` where it may write it."""

_DDB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_DDB_META = {"DescribeTable", "DescribeTimeToLive", "ListTables", "DescribeContinuousBackups"}
_S3_OBJECT_READS = {"GetObject", "HeadObject", "GetObjectTagging", "GetObjectAttributes"}
_S3_OBJECT_WRITES = {"PutObject", "DeleteObject", "PutObjectTagging", "CopyObject"}
_S3_BUCKET_READS = {
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "HeadBucket",
    "GetBucketVersioning",
}
_S3_BUCKET_WRITES = {"DeleteObjects"}
_KEY_CONDITION = re.compile(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)")


def _overlap(a: Resource, b: Resource) -> bool:
    return a[0] == b[0] and a[1] == b[1] and (a[2] == b[2] or ANY in (a[2], b[2]))


def dependent(a: Footprint | None, b: Footprint | None) -> bool:
    """Whether two steps (of different invocations) may not commute: either is unknown, or one
    writes a resource the other touches."""
    if a is None or b is None:
        return True
    return any((wa or wb) and _overlap(ra, rb) for ra, wa in a for rb, wb in b)


def request_footprint(
    service: str,
    operation: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    hash_key: Callable[[str], str | None],
) -> Footprint | None:
    """The footprint of one AWS request; ``hash_key(table)`` names a table's partition key
    attribute (``None`` when the table is not known: the whole table stands in). Only DynamoDB
    and S3 requests are told apart; any other service's is dependent on everything."""
    if service == "dynamodb":
        return _dynamodb(operation, body, hash_key)
    if service == "s3":
        return _s3(operation, url, headers)
    # Other services see the effects of these two (an S3 notification on a queue, a table's
    # stream), and one another's (SNS to SQS): each of their requests is ordered against all.
    return None


def _value(attribute: Any) -> str:
    """One key value, as DynamoDB compares them: a number by its value (``1`` is ``1.0``)."""
    if isinstance(attribute, dict) and set(attribute) == {"N"}:
        try:
            number = Decimal(str(attribute["N"]))
        except ArithmeticError:
            return json.dumps(attribute, sort_keys=True)
        return json.dumps({"N": str(number.normalize()) if number else "0"})
    return json.dumps(attribute, sort_keys=True)


def _table(name: str) -> str:
    """A table's name, also where a request names it by its ARN (``arn:…:table/NAME``)."""
    if name.startswith("arn:") and ":table/" in name:
        return name.split(":table/", 1)[1].split("/", 1)[0]
    return name


def _partition(
    table: str, item: Mapping[str, Any] | None, hash_key: Callable[[str], str | None]
) -> Resource:
    table = _table(table)
    name = hash_key(table)
    if name is None or item is None or name not in item:
        return ("dynamodb", table, ANY)
    return ("dynamodb", table, _value(item[name]))


def _dynamodb(
    operation: str, body: bytes, hash_key: Callable[[str], str | None]
) -> Footprint | None:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    touched: set[tuple[Resource, bool]] = set()
    if operation in ("GetItem", "UpdateItem", "DeleteItem"):
        touched.add(
            (_partition(request["TableName"], request.get("Key"), hash_key), operation != "GetItem")
        )
    elif operation == "PutItem":
        touched.add((_partition(request["TableName"], request.get("Item"), hash_key), True))
    elif operation == "Query":
        touched.add((_query(request, hash_key), False))
    elif operation == "Scan":
        touched.add((("dynamodb", _table(request["TableName"]), ANY), False))
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        write = operation == "BatchWriteItem"
        for table, spec in request.get("RequestItems", {}).items():
            for item in _batch_keys(spec, write):
                touched.add((_partition(table, item, hash_key), write))
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        write = operation == "TransactWriteItems"
        token = request.get("ClientRequestToken")
        if write and token is not None:
            # the token is remembered across items: who uses it first decides the other's answer
            touched.add((("dynamodb", "#token", str(token)), True))
        for action in request.get("TransactItems", []):
            for spec in action.values():
                item = spec.get("Key", spec.get("Item"))
                touched.add((_partition(spec["TableName"], item, hash_key), write))
    elif operation in _DDB_META and "TableName" in request:
        # DescribeTable's ItemCount and size move with every write (in moto at once)
        touched.add((("dynamodb", _table(request["TableName"]), ANY), False))
    elif operation in _DDB_META:
        touched.add((("dynamodb", "#tables", ""), False))
    else:
        return None  # a table's creation, update or deletion: a step to order against all
    return frozenset(touched)


def _batch_keys(spec: Any, write: bool) -> Iterable[Mapping[str, Any] | None]:
    if not write:
        return list(spec.get("Keys", []))
    found: list[Mapping[str, Any] | None] = []
    for request in spec:
        if "PutRequest" in request:
            found.append(request["PutRequest"].get("Item"))
        else:
            found.append(request.get("DeleteRequest", {}).get("Key"))
    return found


def _query(request: Mapping[str, Any], hash_key: Callable[[str], str | None]) -> Resource:
    table = _table(request["TableName"])
    name = hash_key(table)
    if name is None or "IndexName" in request:
        return ("dynamodb", table, ANY)
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    for left, right in _KEY_CONDITION.findall(request.get("KeyConditionExpression", "")):
        if names.get(left, left) == name and right in values:
            return ("dynamodb", table, _value(values[right]))
    return ("dynamodb", table, ANY)


def _s3(operation: str, url: str, headers: Mapping[str, str]) -> Footprint | None:
    bucket, key = _bucket_and_key(url)
    if bucket is None:
        return None
    if operation in _S3_OBJECT_READS | _S3_OBJECT_WRITES and key:
        touched = {(("s3", bucket, key), operation in _S3_OBJECT_WRITES)}
        source = headers.get("x-amz-copy-source")
        if operation == "CopyObject" and source is not None:
            src_bucket, _, src_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
            touched.add((("s3", src_bucket, src_key), False))
        return frozenset(touched)
    if operation in _S3_BUCKET_READS:
        return frozenset({(("s3", bucket, ANY), False)})
    if operation in _S3_BUCKET_WRITES:
        return frozenset({(("s3", bucket, ANY), True)})
    return None  # a bucket's creation or configuration, multipart uploads: order against all


_VIRTUAL_HOST = re.compile(r"^(.+)\.s3[.-]")
"""``<bucket>.s3.<region>.amazonaws.com`` and the like; the last ``.s3`` ends the bucket's name
(which may hold dots, and begin with ``s3-``)."""


def _bucket_and_key(url: str) -> tuple[str | None, str]:
    parts = urlsplit(url)
    path = unquote(parts.path)
    virtual = _VIRTUAL_HOST.match(parts.hostname or "")
    if virtual is None:  # path style: s3.amazonaws.com/<bucket>/<key>
        bucket, _, key = path.lstrip("/").partition("/")
        return (bucket or None), key
    return virtual.group(1), path[1:]
