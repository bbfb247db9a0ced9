"""A tiny name -> object registry shared by every extension point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from iaprune.errors import IAPruneError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; unknown names raise an error that lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise a one-line error."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise IAPruneError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs in the order they were registered."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items
