"""A smooth fill for the parts of a crop that lie beyond its photo.

Why: a face near the photo's edge gets a crop that extends past it, and ``cv2.warpAffine``'s border
modes fill that part badly for training data: ``BORDER_REPLICATE`` smears the edge pixels into streaks
(which a renderer then bends and turns with the background), a constant colour draws a hard edge
across the face. A push-pull fill continues the photo's colours into the gap, blurrier with the
distance, like an out-of-focus background: no structure a detector could learn from, no streaks.

Push-pull: the coverage-weighted image and the coverage are halved down a Gaussian pyramid until one
level covers everything; going back up, each level keeps its own colour where it is covered and takes
the coarser level's estimate where it is not. The photo's own pixels are never changed.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

__all__ = ["fill_uncovered", "fill_past_photo", "stack_coverage"]

_EPS = 1e-6


def fill_uncovered(image: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) uint8 with its uncovered pixels filled; ``coverage`` (H, W) in [0, 1], 1 = the photo's own.

    A pixel covered partly (the one-pixel ramp at the photo's edge) blends its colour with the fill.
    """
    cov = np.clip(np.asarray(coverage, np.float32), 0.0, 1.0)
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    weighted, weights = [img * cov[..., None]], [cov]
    while min(weights[-1].shape) > 1 and weights[-1].min() < 0.5:
        weighted.append(_reshape(cv2.pyrDown(weighted[-1]), weighted[-1]))
        weights.append(cv2.pyrDown(weights[-1]))
    est = _normalised(weighted[-1], weights[-1])
    if not np.isfinite(est).all() or (weights[-1] <= _EPS).any():  # nothing covered nearby even at the top
        est = np.broadcast_to((weighted[0].sum((0, 1)) / max(float(weights[0].sum()), _EPS)), est.shape).copy()
    for level in range(len(weights) - 2, -1, -1):
        h, w = weights[level].shape
        up = _reshape(cv2.pyrUp(est, dstsize=(w, h)), weighted[level])
        alpha = np.clip(weights[level], 0.0, 1.0)[..., None] if level == 0 else \
            np.clip(2.0 * weights[level], 0.0, 1.0)[..., None]  # a coarse level trusts its own mean once half covered
        own = weighted[0] if level == 0 else _normalised(weighted[level], weights[level])
        est = own + (1.0 - alpha) * up if level == 0 else alpha * own + (1.0 - alpha) * up
    out = np.clip(np.rint(est), 0, 255).astype(np.uint8)
    out = out.reshape(np.shape(image))
    keep = cov >= 1.0
    out[keep] = np.asarray(image)[keep]  # the photo's own pixels, exactly
    return out


def fill_past_photo(warped: np.ndarray, transform: Any, photo_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """``warped`` (``transform.warp`` of a photo of ``photo_shape``) with what lies past the photo filled, and its
    coverage (:meth:`gannotate.geometry.Affine.coverage`); unchanged with None when it lies inside the photo."""
    coverage = transform.coverage(photo_shape, (warped.shape[1], warped.shape[0]))
    if coverage is None:
        return warped, None
    return fill_uncovered(warped, coverage), coverage


def stack_coverage(coverages: Sequence[np.ndarray | None], shape: Sequence[int]) -> np.ndarray | None:
    """(B, *shape) coverages of a batch, full (1.0, or 255 for uint8) where an item has None, or None when no item
    has any (a batch whose crops all lie inside their photos: most batches)."""
    given = [c for c in coverages if c is not None]
    if not given:
        return None
    dtype = given[0].dtype
    full = np.full(tuple(shape), 255 if dtype == np.uint8 else 1.0, dtype)
    return np.stack([full if c is None else c for c in coverages])


def _normalised(weighted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weighted / np.maximum(weights, _EPS)[..., None]


def _reshape(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of 1: put it back."""
    return a.reshape(a.shape[:2] + like.shape[2:])
