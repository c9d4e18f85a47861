"""Handlers the idempotency tests decorate: a body that counts its runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stateless_state import Store, idempotent


def counting_handler(
    store: Store, **options: Any
) -> tuple[Callable[[dict[str, Any], Any], int], list[Any]]:
    """An ``@idempotent(store, **options)`` handler whose body appends its event to the list
    returned with it and answers how many times a body has run (so a replay answers an old
    count). Builds the decorator only: no store call until the handler is invoked."""
    runs: list[Any] = []

    @idempotent(store, **options)
    def handler(event: dict[str, Any], context: Any) -> int:
        runs.append(event)
        return len(runs)

    return handler, runs
