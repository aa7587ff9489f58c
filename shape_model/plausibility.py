"""Vectorised plausibility checks of 68-point shapes (used to reject implausible samples).

A shape is plausible when
- every eye point lies inside the face outline (jaw 0-16, then the brows 26..17 back to the start),
- the jaw polyline does not cross itself,
- the lower jaw (points 3-13, below the ears) runs left to right in x when the face is near
  frontal (|yaw| <= ``frontal_yaw``; real faces often have non-monotone x at the vertical top of
  the contour, so points 0-2 and 14-16 are not checked).
Everything is a broadcast over (N, points, edges); no loop over shapes.
"""

from __future__ import annotations

import numpy as np

from shape_model.ibug68 import BROWS, EYES, JAW

__all__ = ["points_in_polygon", "polyline_self_intersects", "eyes_inside_outline", "is_plausible"]

_OUTLINE = np.concatenate([JAW, BROWS[::-1]])
_LOWER_JAW = np.arange(3, 14)
_CHUNK = 2048  # shapes per block in ``is_plausible``


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: (N, P, 2) points, (N, V, 2) closed polygons -> (N, P) bool."""
    a = polygon[:, None, :, :]  # (N, 1, V, 2)
    b = np.roll(polygon, -1, axis=1)[:, None, :, :]
    p = points[:, :, None, :]  # (N, P, 1, 2)
    straddles = (a[..., 1] > p[..., 1]) != (b[..., 1] > p[..., 1])  # (N, P, V)
    dy = b[..., 1] - a[..., 1]
    x_cross = a[..., 0] + (p[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) / np.where(dy == 0, 1.0, dy)
    return (np.count_nonzero(straddles & (p[..., 0] < x_cross), axis=-1) % 2) == 1


def polyline_self_intersects(lines: np.ndarray) -> np.ndarray:
    """(N, V, 2) open polylines -> (N,) bool, True where two non-adjacent segments cross."""
    a = lines[:, :-1]  # (N, S, 2) segment starts
    d = lines[:, 1:] - a  # (N, S, 2) segment directions
    rel = lines[:, None, :, :] - a[:, :, None, :]  # (N, S, V, 2): every vertex seen from every segment start
    side = np.sign(d[:, :, None, 0] * rel[..., 1] - d[:, :, None, 1] * rel[..., 0]).astype(np.int8)  # (N, S, V)
    i, j = np.triu_indices(d.shape[1], k=2)  # non-adjacent segment pairs only
    # segments i and j cross when each one's ends lie strictly on both sides of the other
    return ((side[:, i, j] * side[:, i, j + 1] < 0) & (side[:, j, i] * side[:, j, i + 1] < 0)).any(axis=-1)


def eyes_inside_outline(shapes: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(N, 68, 2) -> (N,) bool: all twelve eye points inside the jaw + brow outline.

    ``margin`` > 0 makes the test stricter: the eye points are first pushed away from the shape's
    centroid by ``margin`` times its RMS radius (keeps borderline shapes out after float32 rounding).
    """
    eyes = shapes[:, EYES]
    if margin > 0:
        # centroid and RMS radius as one small matrix product and a row dot: reductions over the
        # middle axis of (N, 68, 2) are strided and cost ~8x more (this is sample()'s hot path)
        n, k, _ = shapes.shape
        flat = shapes.reshape(n, 2 * k)
        average = np.zeros((2 * k, 2), shapes.dtype)
        average[0::2, 0] = average[1::2, 1] = 1.0 / k
        centre = flat @ average  # (N, 2)
        mean_sq = np.einsum("ij,ij->i", flat, flat) / k - np.einsum("ij,ij->i", centre, centre)
        radius = np.sqrt(np.maximum(mean_sq, 0.0))  # (N,)
        away = eyes - centre[:, None, :]  # (N, 12, 2)
        dist = np.sqrt(np.einsum("npk,npk->np", away, away))[..., None]  # (N, 12, 1)
        eyes = eyes + (margin * radius)[:, None, None] * away / np.maximum(dist, 1e-12)
    return points_in_polygon(eyes, shapes[:, _OUTLINE]).all(axis=-1)


def is_plausible(
    shapes: np.ndarray, yaw: np.ndarray | None = None, frontal_yaw: float = 15.0, margin: float = 0.0
) -> np.ndarray:
    """(N, 68, 2) shapes (and optional (N,) yaw in degrees) -> (N,) bool (rules in the module doc).

    Works in float32 blocks of ``_CHUNK`` shapes so the (N, points, edges) temporaries stay in cache.
    """
    s = np.asarray(shapes, dtype=np.float32)
    ok = np.empty(len(s), dtype=bool)
    for start in range(0, len(s), _CHUNK):
        b = s[start : start + _CHUNK]
        ok[start : start + _CHUNK] = eyes_inside_outline(b, margin) & ~polyline_self_intersects(b[:, JAW])
    if yaw is not None:
        near = np.abs(np.asarray(yaw)) <= frontal_yaw
        monotone = (np.diff(s[:, _LOWER_JAW, 0], axis=1) > 0).all(axis=1)
        ok &= ~near | monotone
    return ok
