"""The backend protocol: where ``gannotate augment`` executes, found by name in one registry.

A backend runs the job an :class:`~gannotate.augment.AugmentConfig` describes and returns the same
:class:`~gannotate.augment.AugmentResult`, so the CLI, recipes and tests do not care where it ran. A new
backend is one module with a :class:`Backend` subclass decorated with :func:`register_backend`, plus its
import in ``gannotate/backends/__init__.py``; ``augment --backend`` offers every registered name.

Example:
    >>> @register_backend
    ... class Inline(Backend):
    ...     name, help = "inline", "this process, no threads"
    ...     def run(self, cfg, progress=None, **options):
    ...         return run_augment(replace(cfg, workers=1), progress)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from gannotate.registry import Registry

if TYPE_CHECKING:
    from gannotate.augment import AugmentConfig, AugmentResult
    from gannotate.run.progress import Progress

__all__ = ["Backend", "register_backend", "get_backend", "list_backends", "unknown_options"]


class Backend(ABC):
    """Where a run executes.

    Attributes:
        name: the ``--backend`` name.
        help: a few words for ``--help``.
        options: keyword options :meth:`run` takes besides the job (e.g. ``address``, ``shards``).
        in_process: renders in this process (so a ``--device`` is checked here, not on remote workers).
    """

    name: ClassVar[str]
    help: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    in_process: ClassVar[bool] = False

    def check(self, cfg: AugmentConfig) -> None:
        """Refuse, before any work, what this backend cannot run here (a usage error: exit 2).

        Raises:
            GannotateError: saying what to change.
        """

    @abstractmethod
    def run(self, cfg: AugmentConfig, progress: Progress | None = None, **options: Any) -> AugmentResult:
        """Run ``cfg`` with this backend's ``options``; the result counts what this run did."""


_BACKENDS: Registry[Any] = Registry("backend")


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: register ``cls`` under ``cls.name`` (a second one of a name is a ``ValueError``)."""
    return _BACKENDS.register(cls.name)(cls)


def list_backends() -> list[str]:
    """The registered backend names, in registration order (``local`` first)."""
    return _BACKENDS.names()


def get_backend(name: str) -> Backend:
    """A backend by name.

    Raises:
        GannotateError: unknown name (the message lists the registered ones).
    """
    return _BACKENDS.get(name)()


def unknown_options(backend: Backend, given: dict[str, Any]) -> list[str]:
    """The options in ``given`` (None values ignored) that ``backend`` does not take."""
    return [k for k, v in given.items() if v is not None and k not in backend.options]
