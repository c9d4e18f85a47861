"""What every local service the tests start shares: ``start``/``stop`` and the ``with`` form."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["LocalService"]


class LocalService:
    """A service on this machine that a test starts and stops: ``with Service() as s: ...``
    starts it on entry and stops it on exit, whatever happened inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
