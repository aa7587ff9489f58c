"""``--backend local`` (the default): the job in this process (:func:`gannotate.augment.run_augment`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gannotate.backends.base import Backend, register_backend

if TYPE_CHECKING:
    from gannotate.augment import AugmentConfig, AugmentResult
    from gannotate.run.progress import Progress

__all__ = ["LocalBackend"]


@register_backend
class LocalBackend(Backend):
    """This process: ``--workers`` threads prepare faces, a CPU renderer renders in as many processes."""

    name = "local"
    help = "this process"
    in_process = True

    def run(self, cfg: AugmentConfig, progress: Progress | None = None, **options: Any) -> AugmentResult:
        from gannotate.augment import run_augment

        return run_augment(cfg, progress)
