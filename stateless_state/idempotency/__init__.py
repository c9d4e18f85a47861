"""Idempotency keys: run a body once per key, replay its stored result to every duplicate.

The parts, in the order a call crosses them:

* :mod:`.decorator`: ``@idempotent`` and :func:`commit_with_completion`;
* :mod:`.request_keys`: what identifies a request (:func:`selector`, :func:`canonical_key`,
  :func:`payload_hash`) and the record key it maps to;
* :mod:`.records`: :class:`Idempotency`, the claims on one namespace's records (the item
  layout is described there) and their options;
* :mod:`.claim`: :class:`Claim`, one claim's replay, completion or release, through the
  record's :class:`~stateless_state.fencing.FencedClaim`;
* :mod:`.cache`: the optional in-process cache of completed results, loaded when asked for;
* :mod:`.powertools`: :func:`from_powertools`, loaded when first named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .claim import MAX_RESULT_BYTES, Claim
from .decorator import IdempotentOptions, commit_with_completion, idempotent
from .records import (
    DEFAULT_EXPIRES_AFTER,
    DEFAULT_IN_PROGRESS_TIMEOUT,
    Idempotency,
    IdempotencyOptions,
    IdempotencySettings,
)
from .request_keys import IdempotencyKey, canonical_key, payload_hash, selector

if TYPE_CHECKING:
    from .powertools import from_powertools

__getattr__ = lazy_attributes(__name__, {"from_powertools": "powertools"})

__all__ = [
    "DEFAULT_EXPIRES_AFTER",
    "DEFAULT_IN_PROGRESS_TIMEOUT",
    "MAX_RESULT_BYTES",
    "Claim",
    "Idempotency",
    "IdempotencyKey",
    "IdempotencyOptions",
    "IdempotencySettings",
    "IdempotentOptions",
    "canonical_key",
    "commit_with_completion",
    "from_powertools",
    "idempotent",
    "payload_hash",
    "selector",
]
