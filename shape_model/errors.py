"""The one error family of ``shape_model`` and the input checks that raise it.

``shape_model`` must not import ``gannotate``, so it has its own error; ``ShapeModelError`` is a
``ValueError`` so plain callers can catch it without knowing the package, and the gannotate layer
maps it onto its own family.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ShapeModelError", "check_shapes"]


class ShapeModelError(ValueError):
    """Bad input to the shape model: wrong point count, NaN, a degenerate shape, a bad model file."""


def check_shapes(points: np.ndarray, n_points: int | None = None, name: str = "points") -> tuple[np.ndarray, bool]:
    """Return ``points`` as float64 (N, K, 2) and whether a batch axis was added.

    Args:
        points: (K, 2) or (N, K, 2), (x, y), any units.
        n_points: the expected K, or None to accept any K >= 3.
        name: how the argument is named in error messages.

    Raises:
        ShapeModelError: wrong rank or last axis, wrong K, NaN/inf, or a degenerate shape
            (all points equal, or all points on one line), naming the first offending shape.
    """
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ShapeModelError(f"{name}: expected shape (K, 2) or (N, K, 2), got {np.shape(points)}")
    if n_points is not None and pts.shape[1] != n_points:
        raise ShapeModelError(f"{name}: expected {n_points} points per shape, got {pts.shape[1]}")
    if pts.shape[1] < 3:
        raise ShapeModelError(f"{name}: need at least 3 points per shape, got {pts.shape[1]}")
    finite = np.isfinite(pts).all(axis=(1, 2))
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        n_bad = int((~finite).sum())
        raise ShapeModelError(f"{name}: shape {i} contains NaN or infinite coordinates ({n_bad} such shapes)")
    # Degenerate: the smaller singular value of the centred cloud is ~0 (a point or a line).
    centred = pts - pts.mean(axis=1, keepdims=True)
    sxx = np.einsum("nk,nk->n", centred[..., 0], centred[..., 0])
    syy = np.einsum("nk,nk->n", centred[..., 1], centred[..., 1])
    sxy = np.einsum("nk,nk->n", centred[..., 0], centred[..., 1])
    half_tr = 0.5 * (sxx + syy)
    disc = np.sqrt(np.maximum(half_tr**2 - (sxx * syy - sxy**2), 0.0))
    size, small = half_tr + disc, half_tr - disc  # eigenvalues of the 2x2 scatter matrix
    bad_point = size <= 1e-12 * max(1.0, float(np.abs(pts).max()) ** 2)
    bad_line = small <= 1e-8 * np.maximum(size, 1e-300)
    if bad_point.any():
        i = int(np.flatnonzero(bad_point)[0])
        raise ShapeModelError(f"{name}: shape {i} is degenerate (all points are equal)")
    if bad_line.any():
        i = int(np.flatnonzero(bad_line)[0])
        raise ShapeModelError(f"{name}: shape {i} is degenerate (all points lie on one line)")
    return pts, single
