"""A named registry of functions (export formats, metrics): one place for registering and lookup.

Unknown names fail with the list of valid ones, which is what a user mistyping ``--format`` needs.

Example:
    >>> METRICS = Registry("metric")
    >>> @METRICS.register("nme")
    ... def nme(e): ...
    >>> METRICS.get("nmee")   # GannotateError: unknown metric 'nmee'; choose one of ['nme']
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from gannotate.errors import GannotateError

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Functions by name; ``kind`` names what they are in error messages (e.g. "export format")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding ``fn`` under ``name``; a second registration of a name is a ``ValueError``."""

        def deco(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def get(self, name: str) -> F:
        """The function registered as ``name``.

        Raises:
            GannotateError: unknown name (the message lists the valid ones).
        """
        try:
            return self._items[name]
        except KeyError:
            raise GannotateError(f"unknown {self.kind} {name!r}; choose one of {self.names()}") from None
