"""|yaw| bins: one table of edges that every per-yaw summary (NME, identity, reader, payoff) is cut from.

Why one table: a per-yaw number is only comparable with another cut at the same edges, and the
labels (``"0-15"``, ``"45+"``) are the keys reports, tables and recipes read back. Landmark accuracy
is reported with the last bin open from 45° (real test sets hold few faces beyond); measures of
generated samples, which go to ±60° and beyond, keep 45–60 apart and open the last bin at 60°.

Convention: yaw in degrees (``shape_model.pose`` sign convention); bins take ``|yaw|``, each
``[lo, hi)``, the last one open (``hi = inf``).
"""

from __future__ import annotations

import math
from typing import Callable, TypeVar

import numpy as np

from gannotate.plan import RELIABLE_YAW

__all__ = [
    "YAW_EDGES",
    "YawBins",
    "yaw_bins",
    "bin_label",
    "bin_labels",
    "bin_masks",
    "by_yaw",
    "LANDMARK_YAW_BINS",
    "SAMPLE_YAW_BINS",
    "yaw_of",
]

T = TypeVar("T")

#: Lower edges of the |yaw| bins, degrees; the last bin is open above the last edge.
YAW_EDGES: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0)

YawBins = tuple[tuple[float, float], ...]


def yaw_bins(open_from: float | None = None) -> YawBins:
    """``[(lo, hi), ...]`` cut at :data:`YAW_EDGES`; bins from ``open_from`` on are merged into one open bin.

    Example:
        >>> yaw_bins(45.0)
        ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, inf))
    """
    edges = [e for e in YAW_EDGES if open_from is None or e <= open_from]
    if open_from is not None and open_from not in YAW_EDGES:
        raise ValueError(f"open_from must be one of the edges {YAW_EDGES}, got {open_from}")
    return tuple(zip(edges, edges[1:] + [math.inf]))


def bin_label(lo: float, hi: float) -> str:
    """``"15-30"`` for a closed bin, ``"45+"`` for the open one."""
    return f"{lo:g}+" if math.isinf(hi) else f"{lo:g}-{hi:g}"


def bin_labels(bins: YawBins) -> list[str]:
    """The labels of ``bins``, in order."""
    return [bin_label(lo, hi) for lo, hi in bins]


def bin_masks(yaw: np.ndarray, bins: YawBins) -> dict[str, np.ndarray]:
    """``{label: (N,) bool}``: which of the (N,) yaws (degrees, either sign) fall in each bin."""
    a = np.abs(np.asarray(yaw, np.float64))
    return {bin_label(lo, hi): (a >= lo) & (a < hi) for lo, hi in bins}


def by_yaw(yaw: np.ndarray, bins: YawBins, cell: Callable[[np.ndarray], T]) -> dict[str, T]:
    """``{label: cell(mask)}``: one summary per bin, ``cell`` taking the bin's (N,) bool mask."""
    return {label: cell(mask) for label, mask in bin_masks(yaw, bins).items()}


#: Landmark accuracy (NME, FR, AUC by |yaw| of the truth) and the detector payoff: 0-15, 15-30, 30-45, 45+
#: (open from :data:`~gannotate.plan.RELIABLE_YAW`: real annotated faces run out beyond it).
LANDMARK_YAW_BINS: YawBins = yaw_bins(RELIABLE_YAW)
#: Measures of generated samples (identity, the independent reader): 0-15, 15-30, 30-45, 45-60, 60+.
SAMPLE_YAW_BINS: YawBins = yaw_bins()


def yaw_of(points: np.ndarray) -> np.ndarray | None:
    """|yaw| source: the shape model's pose estimate of (N, K, 2) points → (N,) degrees (None if K≠68).

    Why the truth's estimate: yaw read from the ground truth keeps a detector's errors from moving a
    face between bins.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-2] != 68 or not len(pts):
        return None
    from shape_model.pose import estimate_pose

    return np.asarray(estimate_pose(pts), dtype=np.float64).reshape(-1, 3)[:, 0]
