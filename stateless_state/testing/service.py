"""What every local service the tests start shares: ``start``/``stop`` and the ``with`` form."""

from __future__ import annotations

from typing import Any, Self

__all__ = ["LocalService", "local_client"]


def local_client(service: str, endpoint_url: str, **config: Any) -> Any:
    """A boto3 client for ``service`` at a local ``endpoint_url``, with dummy credentials (local
    engines accept any) and the given botocore ``Config`` options."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(**config),
    )


class LocalService:
    """A service on this machine that a test starts and stops: ``with Service() as s: ...``
    starts it on entry and stops it on exit, whatever happened inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
