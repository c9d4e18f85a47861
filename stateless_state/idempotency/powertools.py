"""The Powertools adapter: the :func:`~stateless_state.idempotency.idempotent` options that mean
what an AWS Lambda Powertools ``IdempotencyConfig`` means. Imports nothing of Powertools: it reads
the config's attributes."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from .decorator import IdempotentOptions
from .request_keys import selector

__all__ = ["from_powertools"]


def from_powertools(config: Any) -> IdempotentOptions:
    """The :func:`idempotent` options that mean what a Powertools ``IdempotencyConfig`` means:
    ``@idempotent(store, **from_powertools(config))``.

    ``event_key_jmespath`` becomes ``key`` and ``payload_validation_jmespath`` ``validate`` (the
    same JMESPath, Powertools' ``powertools_json`` and friends included; empty means the whole
    event and no validation, as there), ``raise_on_no_idempotency_key`` becomes
    ``raise_on_missing_key`` (Powertools' default, False, kept), ``expires_after_seconds``
    ``expires_after``, and ``use_local_cache``/``local_cache_max_items`` ``cache_size``.
    ``hash_function`` is not needed (keys and payloads are hashed with SHA-256). A config with
    ``jmespath_options`` or a ``response_hook`` raises :class:`InvalidArgument`: neither has a
    counterpart; use a key function, or wrap the decorated function.
    """
    if getattr(config, "jmespath_options", None):
        raise InvalidArgument(
            "IdempotencyConfig.jmespath_options has no counterpart here; pass key= a function "
            "of the event that does what your custom JMESPath functions do"
        )
    if getattr(config, "response_hook", None) is not None:
        raise InvalidArgument(
            "IdempotencyConfig.response_hook has no counterpart here; wrap the decorated "
            "function to see (or change) what a replay returns"
        )
    try:
        key = config.event_key_jmespath or None
        validate = config.payload_validation_jmespath or None
        options = IdempotentOptions(
            key=key,
            validate=validate,
            raise_on_missing_key=bool(config.raise_on_no_idempotency_key),
            expires_after=float(config.expires_after_seconds),
            cache_size=int(config.local_cache_max_items) if config.use_local_cache else 0,
        )
    except AttributeError as e:
        raise InvalidArgument(
            f"from_powertools() takes a Powertools IdempotencyConfig; {e}"
        ) from None
    for expression in (key, validate):
        if expression is not None:
            selector(expression, "event_key_jmespath")
    return options
