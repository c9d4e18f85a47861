"""A stand-in for the Lambda context object, whose remaining time counts down for real."""

from __future__ import annotations

import uuid

from .. import clock

__all__ = ["FakeLambdaContext"]


class FakeLambdaContext:
    """Reports ``remaining_ms`` at creation, then less as wall time passes (never below 0).

    ``FakeLambdaContext(0)`` is an invocation with no time left: a real value, not "unset".
    """

    def __init__(self, remaining_ms: int = 30_000, *, function_name: str = "test") -> None:
        self._deadline = clock.monotonic() + remaining_ms / 1000.0
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - clock.monotonic()) * 1000))
