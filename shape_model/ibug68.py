"""The few facts about the iBUG 68-point markup that ``shape_model`` needs (it cannot import gannotate).

Indices are 0-based, in the standard 300W order: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes,
48-67 mouth. ``FLIP`` is the mirror permutation: after ``x' = (W - 1) - x`` the mirrored shape is
``mirrored[i] = points[FLIP[i]]`` (same table as ``gannotate.landmarks.IBUG68.flip_index``,
checked by a test there-side and here-side).
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_POINTS", "FLIP", "JAW", "BROWS", "NOSE", "EYES", "MOUTH", "INNER", "OUTER_EYE_CORNERS", "mirror"]

N_POINTS = 68
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
INNER = np.arange(17, 68)  # every point but the jaw contour (rigid-ish, visible at large yaw)
OUTER_EYE_CORNERS = (36, 45)

FLIP = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + list(range(54, 47, -1))
    + list(range(59, 54, -1))
    + [64, 63, 62, 61, 60, 67, 66, 65],
    dtype=np.int64,
)


def mirror(points: np.ndarray, width: float = 0.0) -> np.ndarray:
    """Mirror (..., 68, 2) shapes left-right: ``x' = (width - 1) - x`` and re-order by ``FLIP``.

    With the default ``width=0`` the mirror axis is x = -1/2; any axis gives the same pose and
    shape up to translation, which is all the shape model looks at.
    """
    p = np.array(points, dtype=np.float64, copy=True)
    p[..., 0] = (width - 1.0) - p[..., 0]
    return p[..., FLIP, :]
