"""The two Lambda functions of the S3 → Redshift batcher (configuration: patterns/config.py)."""

from __future__ import annotations

from typing import Any

from patterns import S3ToRedshift

pipeline = S3ToRedshift.from_env()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.handle(event, context)


def sweeper(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return pipeline.sweep(context)
