"""The Store: one DynamoDB table, and the face that builds every primitive on it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Unpack

from .clients import aws_client
from .errors import InvalidArgument, TableNotFound
from .metrics import Metrics
from .table import INDEX_NAME, INDEX_PK, INDEX_SK, Table

if TYPE_CHECKING:
    from .counter import Counter, CounterOptions, ShardedCounter
    from .idempotency import Idempotency, IdempotencyOptions
    from .lease import Lease, LeaseOptions
    from .sessions import SessionOptions, SessionWindows
    from .tumbling import TumblingWindows, WindowOptions
    from .versioned import Versioned, VersionedOptions

__all__ = [
    "INDEX_NAME",
    "INDEX_PK",
    "INDEX_SK",
    "TABLE_ENV",
    "TTL_ATTRIBUTE",
    "Store",
    "table_schema",
]

TABLE_ENV = "STATELESS_STATE_TABLE"
"""The environment variable that names the table for :meth:`Store.from_env` (and the CLI)."""
TTL_ATTRIBUTE = "ttl"
"""The attribute DynamoDB's TTL reads: epoch seconds after which an item may be deleted."""


def table_schema() -> dict[str, Any]:
    """The table every primitive shares, as ``CreateTable`` arguments (less the name): string
    ``pk`` and ``sk``, on-demand billing, and one sparse global secondary index. TTL is on
    :data:`TTL_ATTRIBUTE`. The one definition: ``Store.create_table``, the CLI's CloudFormation
    and (checked by a test) the SAM template all use it."""
    return {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", INDEX_PK, INDEX_SK)
        ],
        # One sparse index: only items that are waiting for something (a batch to load, a
        # session to close) carry its keys, so it stays small and hot-path writes never touch it.
        "GlobalSecondaryIndexes": [
            {
                "IndexName": INDEX_NAME,
                "KeySchema": [
                    {"AttributeName": INDEX_PK, "KeyType": "HASH"},
                    {"AttributeName": INDEX_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _default_client(session: Any, endpoint_url: str | None, region_name: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # Standard mode: botocore owns throttling and 5xx retries; the library never adds a second
    # layer on top of them (attempts would multiply). A session of its own: boto3's default one
    # is not safe to build clients of from several threads.
    return aws_client(
        "dynamodb",
        session=session or boto3.session.Session(),
        endpoint_url=endpoint_url,
        region_name=region_name,
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )


class Store:
    """One DynamoDB table that holds the items of every primitive (single-table design).

    Args:
        table_name: the table (3 to 255 characters of ``a-z A-Z 0-9 _ - .``).
        client: a boto3 DynamoDB client to use as is (its retry config is left alone).
        session: a boto3 Session to build the client from, when no client is given.
        endpoint_url: passed to the client; when omitted boto3's own convention applies
            (``AWS_ENDPOINT_URL_DYNAMODB``).
        region_name: passed to the client; when omitted boto3's own conventions apply
            (``AWS_REGION``, the profile).

    The table has a string partition key ``pk``, a string sort key ``sk``, TTL on ``ttl``, and one
    sparse global secondary index ``gsi1`` (``gsi1pk``, ``gsi1sk``).
    ``store.metrics`` counts requests and consumed capacity of every call this store makes.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        session: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        _check_table_name(table_name)
        if client is not None and (session is not None or endpoint_url or region_name):
            raise InvalidArgument(
                "pass either client, or session/endpoint_url/region_name to build one, not both"
            )
        self.table_name = table_name
        self.client = client or _default_client(session, endpoint_url, region_name)
        self.metrics = Metrics()
        self._table = Table(self.client, table_name, self.metrics)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Store:
        """A Store on the table named by ``STATELESS_STATE_TABLE``."""
        name = os.environ.get(TABLE_ENV)
        if not name:
            raise InvalidArgument(
                f"{TABLE_ENV} is not set; set it to the DynamoDB table name (the SAM template "
                "passes it to the functions) or call Store(table_name)"
            )
        return cls(name, **kwargs)

    def create_table(self, *, wait: bool = True) -> bool:
        """Create the table (on-demand billing, TTL on ``ttl``) unless it exists.

        Idempotent: returns True when it created the table, False when it was already there. TTL
        is (re-)enabled either way.
        """
        created = True
        try:
            self.client.create_table(TableName=self.table_name, **table_schema())
        except self.client.exceptions.ResourceInUseException:
            created = False
        if wait or not created:
            self.client.get_waiter("table_exists").wait(
                TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        ttl = self.client.describe_time_to_live(TableName=self.table_name)
        if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") not in {
            "ENABLED",
            "ENABLING",
        }:
            self.client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        return created

    @property
    def table(self) -> Table:
        """The table layer the primitives use (for patterns built on the store)."""
        return self._table

    def check_table(self) -> None:
        """Raise :class:`TableNotFound` (with what to do) unless the table exists."""
        try:
            self.client.describe_table(TableName=self.table_name)
        except self.client.exceptions.ResourceNotFoundException as e:
            raise TableNotFound(self.table_name, self.client.meta.endpoint_url) from e

    def delete_table(self) -> None:
        """Delete the table and everything in it. Meant for tests and demos."""
        self.client.delete_table(TableName=self.table_name)

    # Each factory imports its primitive when first used: a handler pays at import time only
    # for the primitives it builds.

    def counter(self, name: str, **options: Unpack[CounterOptions]) -> Counter:
        """An exact counter; see :class:`~stateless_state.counter.Counter`."""
        from .counter import Counter

        return Counter(self._table, name, **options)

    def sharded_counter(
        self, name: str, shards: int = 10, **options: Unpack[CounterOptions]
    ) -> ShardedCounter:
        """A counter spread over ``shards`` items; see :class:`ShardedCounter`."""
        from .counter import ShardedCounter

        return ShardedCounter(self._table, name, shards, **options)

    def lease(self, name: str, **options: Unpack[LeaseOptions]) -> Lease:
        """A lease with fencing tokens; see :class:`~stateless_state.lease.Lease` for the options
        (:class:`~stateless_state.lease.LeaseOptions`; their defaults and rules:
        :class:`~stateless_state.lease.LeaseSettings`)."""
        from .lease import Lease

        return Lease(self._table, name, **options)

    def idempotency(
        self, namespace: str = "default", **options: Unpack[IdempotencyOptions]
    ) -> Idempotency:
        """Idempotency keys in ``namespace`` (the lower-level API under :func:`idempotent`); see
        :class:`~stateless_state.idempotency.Idempotency` for the options
        (:class:`~stateless_state.idempotency.IdempotencyOptions`; their defaults and rules:
        :class:`~stateless_state.idempotency.IdempotencySettings`)."""
        from .idempotency import Idempotency

        return Idempotency(self._table, namespace, **options)

    def versioned(self, name: str, **options: Unpack[VersionedOptions]) -> Versioned:
        """A copy-on-write versioned object; see :class:`~stateless_state.versioned.Versioned`
        for the options (:class:`~stateless_state.versioned.VersionedOptions`)."""
        from .versioned import Versioned

        return Versioned(self._table, name, **options)

    def sessions(self, name: str, **options: Unpack[SessionOptions]) -> SessionWindows:
        """Session windows; see :class:`~stateless_state.sessions.SessionWindows` for the
        options (``gap`` and ``max_duration`` required)."""
        from .sessions import SessionWindows

        return SessionWindows(self._table, name, **options)

    def windows(self, name: str, **options: Unpack[WindowOptions]) -> TumblingWindows:
        """Tumbling windows; see :class:`~stateless_state.tumbling.TumblingWindows` for the
        options (``size`` required)."""
        from .tumbling import TumblingWindows

        return TumblingWindows(self._table, name, **options)

    def __repr__(self) -> str:
        return f"Store({self.table_name!r})"


def _check_table_name(name: object) -> None:
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{3,255}", name):
        raise InvalidArgument(
            f"invalid DynamoDB table name {name!r}: use 3 to 255 characters of "
            "a-z, A-Z, 0-9, '_', '-' and '.'"
        )
