"""Functions run in worker processes by the race tests (importable by the spawn start method)."""

from __future__ import annotations

from typing import Any

from stateless_state import LimitExceeded, Store


def _store(endpoint: str, table: str) -> Store:
    import boto3

    client = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return Store(table, client=client)


def token_adds(endpoint: str, table: str, name: str, tokens: list[str]) -> list[tuple[Any, ...]]:
    """Add 1 per token, each token submitted as given (duplicates included)."""
    c = _store(endpoint, table).counter(name)
    out = []
    for t in tokens:
        r = c.add(1, token=t)
        out.append((t, r.value, r.previous, r.applied))
    return out


def limited_adds(endpoint: str, table: str, name: str, amounts: list[int], limit: int) -> list[Any]:
    c = _store(endpoint, table).counter(name)
    out: list[Any] = []
    for a in amounts:
        try:
            r = c.add(a, limit=limit)
            out.append((a, r.value, r.previous))
        except LimitExceeded:
            out.append((a, None, None))
    return out
