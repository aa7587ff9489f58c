"""The metric registry: ``@register_metric("name")`` functions of an :class:`EvalInput`.

A metric returns a number or a dict of numbers, so a new metric is one decorated function and the
CLI, recipes and reports pick it up by name (:func:`list_metrics`); an unknown name fails with the
list of valid ones.

Convention: points float32 (N, K, 2), (x, y), 0-based pixel centres; NME values are percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from gannotate.registry import Registry

__all__ = ["EvalInput", "register_metric", "list_metrics", "compute_metrics"]


@dataclass(frozen=True)
class EvalInput:
    """What a metric sees.

    Attributes:
        pred, truth: (N, K, 2) float32 points (same scheme).
        nme: (N,) NME in percent per face.
        yaw: (N,) yaw of the truth in degrees, or None when it cannot be estimated (not 68 points).
    """

    pred: np.ndarray
    truth: np.ndarray
    nme: np.ndarray
    yaw: np.ndarray | None


_METRICS: Registry[Callable[[EvalInput], float | dict]] = Registry("metric")


def register_metric(name: str) -> Callable:
    """Decorator: add ``fn(EvalInput) -> float | dict[str, float]`` to the registry under ``name``."""
    return _METRICS.register(name)


def list_metrics() -> list[str]:
    """Names of the registered metrics, in registration order."""
    return _METRICS.names()


def compute_metrics(e: EvalInput, names: Sequence[str] | None = None) -> dict:
    """Run registered metrics (all by default) → ``{name: value}``; dict-valued metrics are flattened as ``name/key``."""
    out: dict = {"n_faces": int(len(e.nme))}
    for name in names or list_metrics():
        v = _METRICS.get(name)(e)
        if isinstance(v, dict):
            out.update({f"{name}/{k}": x for k, x in v.items()})
        else:
            out[name] = v
    return out
