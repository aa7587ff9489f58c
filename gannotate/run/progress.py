"""Where a run's progress goes: the protocol every job reports to, and the one that discards it.

Why a protocol: the library never prints (the CLI passes a progress bar, the Ray backend a
forwarder to its board actor, tests a recorder), and a job given none reports to
:class:`NullProgress` instead of testing ``progress is not None`` at each step.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "NullProgress"]


class Progress(Protocol):
    """Receives ``start(total, done)`` once, then ``advance(n)`` per committed batch of ``n`` items."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, n: int) -> None: ...


class NullProgress:
    """A :class:`Progress` that discards everything (a run nobody watches)."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass
