"""Where ``gannotate augment`` runs besides this process: one module per backend, imported lazily.

* :mod:`~gannotate.backends.ray_backend` — ``--backend ray``: one Ray task per shard, merged by the
  driver (``run_ray``, ``RayOptions``); needs the optional ``ray`` extra.

The package itself imports nothing heavy: ``import gannotate.backends`` works without Ray.
"""

__all__ = ["ray_backend"]
