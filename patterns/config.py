"""Configuration of the S3 → Redshift pipeline from environment variables: the same code in
Lambda, in the local demo and against real AWS (``S3ToRedshift.from_env()``).

=============================  ================================================================
``STATELESS_STATE_TABLE``      the DynamoDB table (required)
``STREAM``                     the batch stream name (default ``events``)
``MANIFEST_BUCKET``            where manifests are written (required)
``MANIFEST_PREFIX``            default ``manifests/``
``THRESHOLD_COUNT``            files per batch (default 1000; empty to disable)
``THRESHOLD_BYTES``            bytes per batch (default 512 MiB; empty to disable)
``THRESHOLD_AGE``              seconds a batch may stay open (default 300; empty to disable)
``LANES``                      independent batch sequences (default 1)
``LOAD_LEASE``                 seconds a loader holds a batch (default 300)
``REDSHIFT_TABLE``             target ``schema.table``; set it to load into Redshift
``REDSHIFT_IAM_ROLE``          the role COPY assumes to read S3
``REDSHIFT_DATABASE``          the database
``REDSHIFT_WORKGROUP``         a Redshift Serverless workgroup, or
``REDSHIFT_CLUSTER``           a provisioned cluster identifier
``REDSHIFT_SECRET_ARN``        Secrets Manager auth, or ``REDSHIFT_DB_USER`` for IAM auth
``REDSHIFT_GZIP``              ``1`` when the files are gzipped
``LOCAL_WAREHOUSE``            a SQLite path: load locally instead (the demo)
``POSTGRES_DSN``               a PostgreSQL connection string: load into PostgreSQL instead
``POSTGRES_TABLE``             its target ``schema.table`` (``POSTGRES_LEDGER_TABLE``: ledger)
=============================  ================================================================

DynamoDB and S3 endpoints follow boto3's conventions (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_S3``), which is how the local demo points the same code at its local services.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from stateless_state import InvalidArgument, Store

from .batches import Thresholds
from .redshift import Loader, RedshiftDataApiLoader
from .warehouse import LocalWarehouseLoader

__all__ = ["build_loader", "pipeline_settings"]


def _optional_int(env: Mapping[str, str], name: str, default: int) -> int | None:
    raw = env.get(name, str(default))
    if raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not an integer") from None


def _optional_seconds(env: Mapping[str, str], name: str, default: float) -> float | None:
    raw = env.get(name, str(default))
    if raw.strip() == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number of seconds") from None


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise InvalidArgument(f"environment variable {name} is not set")
    return value


def build_loader(env: Mapping[str, str], s3: Any) -> Loader:
    """The local warehouse when ``LOCAL_WAREHOUSE`` is set, PostgreSQL when ``POSTGRES_DSN``
    is (``POSTGRES_TABLE``, ``POSTGRES_LEDGER_TABLE``), else the Redshift Data API loader."""
    if env.get("LOCAL_WAREHOUSE"):
        return LocalWarehouseLoader(env["LOCAL_WAREHOUSE"], s3)
    if env.get("POSTGRES_DSN"):
        from .postgres import PostgresLoader

        return PostgresLoader(
            env["POSTGRES_DSN"],
            _require(env, "POSTGRES_TABLE"),
            s3,
            ledger_table=env.get("POSTGRES_LEDGER_TABLE") or "stateless_state_ledger",
        )
    return RedshiftDataApiLoader(
        table=_require(env, "REDSHIFT_TABLE"),
        iam_role=_require(env, "REDSHIFT_IAM_ROLE"),
        database=_require(env, "REDSHIFT_DATABASE"),
        workgroup_name=env.get("REDSHIFT_WORKGROUP") or None,
        cluster_identifier=env.get("REDSHIFT_CLUSTER") or None,
        secret_arn=env.get("REDSHIFT_SECRET_ARN") or None,
        db_user=env.get("REDSHIFT_DB_USER") or None,
        gzip=env.get("REDSHIFT_GZIP") == "1",
    )


def pipeline_settings(
    env: Mapping[str, str] | None = None, *, store: Store | None = None, s3: Any = None
) -> dict[str, Any]:
    """The arguments of :class:`~patterns.pipeline.S3ToRedshift` as configured by ``env``
    (default: ``os.environ``); ``S3ToRedshift.from_env()`` builds the pipeline from them."""
    env = os.environ if env is None else env
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    return {
        "store": store or Store(_require(env, "STATELESS_STATE_TABLE")),
        "stream": env.get("STREAM", "events"),
        "loader": build_loader(env, s3),
        "manifest_bucket": _require(env, "MANIFEST_BUCKET"),
        "manifest_prefix": env.get("MANIFEST_PREFIX", "manifests/"),
        "thresholds": Thresholds(
            count=_optional_int(env, "THRESHOLD_COUNT", 1000),
            bytes=_optional_int(env, "THRESHOLD_BYTES", 512 * 2**20),
            age=_optional_seconds(env, "THRESHOLD_AGE", 300),
        ),
        "lanes": _optional_int(env, "LANES", 1) or 1,
        "load_lease": _optional_seconds(env, "LOAD_LEASE", 300) or 300,
        "s3_client": s3,
    }
