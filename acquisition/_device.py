"""What every device shares: opened and closed explicitly, or as a context manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["Device"]


class Device(ABC):
    """``with Device(...) as d:`` opens it and always closes it (safe state first)."""

    @abstractmethod
    def open(self) -> None:
        """Connect; raise DeviceError if the device is missing."""

    @abstractmethod
    def close(self) -> None:
        """Put the device in its safe state and release it."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
