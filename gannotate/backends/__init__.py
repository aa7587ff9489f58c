"""Where ``gannotate augment`` runs: one :class:`Backend` per module, each in one registry.

* :mod:`~gannotate.backends.base` — the :class:`Backend` protocol, :func:`register_backend`,
  :func:`get_backend`, :func:`list_backends`;
* :mod:`~gannotate.backends.local` — ``--backend local``: this process (:func:`gannotate.augment.run_augment`);
* :mod:`~gannotate.backends.ray_backend` — ``--backend ray``: one Ray task per shard, merged by the
  driver (``run_ray``, ``RayOptions``); needs the optional ``ray`` extra.

Importing the package registers both and imports nothing heavy: ``import gannotate.backends`` works without Ray.
"""

from gannotate.backends.base import Backend, get_backend, list_backends, register_backend, unknown_options
from gannotate.backends.local import LocalBackend
from gannotate.backends.ray_backend import RayBackend

__all__ = ["Backend", "register_backend", "get_backend", "list_backends", "unknown_options", "LocalBackend",
           "RayBackend"]
