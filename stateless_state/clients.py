"""The boto3 clients the library builds when it is given none: one place, one set of defaults.

Every primitive and pattern takes a client (or a session) by injection; only when none is given
does it build one here. Two things are decided here and nowhere else:

* **The region**: ``region_name`` if given, else the session's (``AWS_DEFAULT_REGION``, the
  profile), else ``AWS_REGION``, which Lambda sets and botocore itself does not read. Without
  any, :class:`~stateless_state.errors.InvalidArgument` names the settings to give, instead of
  botocore's ``NoRegionError`` deep in a traceback.
* **The retries**: ``config`` as given, else botocore's as configured (the DynamoDB store passes
  standard mode, :mod:`stateless_state.store`).

Building a client makes no request.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import InvalidArgument

__all__ = ["aws_client"]


def aws_client(
    service: str,
    *,
    session: Any = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    config: Any = None,
) -> Any:
    """A boto3 client of ``service`` from ``session`` (default: boto3's default session, which
    the caller must not build clients of from several threads at once), in the region chosen as
    the module docstring says. Raises :class:`InvalidArgument` when no region is configured."""
    import boto3
    from botocore.exceptions import NoRegionError

    region = region_name or (session.region_name if session is not None else None)
    region = region or os.environ.get("AWS_REGION") or None
    make = boto3.client if session is None else session.client
    try:
        return make(service, endpoint_url=endpoint_url, region_name=region, config=config)
    except NoRegionError:
        raise InvalidArgument(
            f"no AWS region for the {service} client: set AWS_REGION (Lambda sets it) or "
            "AWS_DEFAULT_REGION, give the profile a region, or pass region_name (or a client "
            "or session of your own)"
        ) from None
