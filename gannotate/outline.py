"""Keep a target's nose tip and mouth corners inside its own jaw-and-brow outline, as real annotations do.

Why: a 300W annotator draws the jaw contour along the cheek's silhouette, which up to ±45° of yaw lies
beyond the nose tip and the mouth corners: on 1,289 annotated 300W test and validation faces, 0–1.5% per
yaw bin up to 45° put one of the three outside (and those barely), the 5th percentile of the margin is 0.8–4.6%
of the outer-eye distance at 30–45° (``recipes/target_consistency.py --real``). The shape model's targets
break that 5–7% of the time at 30–45° and the mixed turn (the shape model's jaw laid on 3D-turned inner
points) 10–11% (69 held-out faces). The renderer then makes what the target says: the landmarks stay exact, so
the cheek beyond the jaw line becomes background, and the render shows the photo's background in a notch
beside the nose or through the corner of the mouth.

:func:`enclose` moves the near half of the jaw contour outward (along the eye line), most at the height of the
point that crosses it and not at all at the chin, until the three points are inside by
:data:`ENCLOSE_MARGIN`. Only up to :data:`~gannotate.plan.RELIABLE_YAW`: beyond it no annotated faces say
where the silhouette lies, and the 3D face itself puts the nose tip past it.

Convention: points (n, 68, 2) float (x, y), iBUG 68 order; yaw in degrees.
"""

from __future__ import annotations

import cv2
import numpy as np

from shape_model.ibug68 import BROWS, JAW, OUTER_EYE_CORNERS

__all__ = ["ENCLOSE_MARGIN", "ENCLOSED_POINTS", "outline_margin", "enclose"]

#: how far inside the outline the three points are put (÷ the outer-eye distance): about the 5th percentile of
#: real 300W faces at 35–45° of yaw (0.8–1.6%) and below it at 30–35° (4.6%)
ENCLOSE_MARGIN = 0.02
#: the points kept inside: the nose tip and the two mouth corners (the ones that reach the far cheek first)
ENCLOSED_POINTS = (30, 48, 54)
_OUTLINE = np.concatenate([JAW, BROWS[::-1]])
_CHIN = 8
_PASSES = 8


def _iod(p: np.ndarray) -> float:
    return max(float(np.linalg.norm(p[OUTER_EYE_CORNERS[0]] - p[OUTER_EYE_CORNERS[1]])), 1e-6)


def outline_margin(points: np.ndarray) -> np.ndarray:
    """(n,) the least signed distance of :data:`ENCLOSED_POINTS` inside the jaw-and-brow outline of (n, 68, 2)
    points, ÷ the outer-eye distance (negative: outside)."""
    pts = np.asarray(points, np.float64).reshape(-1, 68, 2)
    return np.array([_margins(p).min() for p in pts])


def _margins(p: np.ndarray) -> np.ndarray:
    poly = p[_OUTLINE].astype(np.float32)
    iod = _iod(p)
    return np.array([cv2.pointPolygonTest(poly, (float(p[k, 0]), float(p[k, 1])), True) / iod for k in ENCLOSED_POINTS])


def enclose(points: np.ndarray, yaw: np.ndarray, max_yaw: float, margin: float = ENCLOSE_MARGIN) -> np.ndarray:
    """``points`` (n, 68, 2) with, for each target of ``|yaw| <= max_yaw``, the jaw contour moved out until
    :data:`ENCLOSED_POINTS` lie ``margin`` (÷ outer-eye distance) inside the jaw-and-brow outline.

    Only jaw points move: each point of the crossed half (the half nearer the crossing point; the chin stays)
    moves outward along the eye line by the shortfall, weighted by how near its height is to the crossing
    point's (1 there, 0 at the chin's height and as far above). A few passes settle it. Targets already
    inside, and those beyond ``max_yaw``, come back unchanged (bit for bit).
    """
    out = np.array(points, dtype=np.float64, copy=True).reshape(-1, 68, 2)
    yaw = np.broadcast_to(np.abs(np.asarray(yaw, np.float64)), (len(out),))
    for i in np.flatnonzero(yaw <= max_yaw):
        p = out[i]
        for _ in range(_PASSES):
            m = _margins(p)
            worst = int(np.argmin(m))
            if m[worst] >= margin:
                break
            _push_jaw(p, ENCLOSED_POINTS[worst], (margin - m[worst]) * _iod(p))
    return out.astype(np.asarray(points).dtype, copy=False).reshape(np.shape(points))


def _push_jaw(p: np.ndarray, k: int, need: float) -> None:
    """Move the jaw half nearer point ``k`` outward by ``need`` pixels at ``k``'s height (in place)."""
    ex = p[OUTER_EYE_CORNERS[1]] - p[OUTER_EYE_CORNERS[0]]
    ex /= max(float(np.linalg.norm(ex)), 1e-12)
    ey = np.array([-ex[1], ex[0]])  # image y down: the face's downward direction
    q = p[k]
    nearest = int(np.argmin(np.linalg.norm(p[JAW] - q, axis=1)))
    if nearest == _CHIN:
        nearest = _CHIN - 1 if (q - p[_CHIN]) @ ex < 0 else _CHIN + 1
    half = np.arange(0, _CHIN) if nearest < _CHIN else np.arange(_CHIN + 1, 17)
    outward = -ex if nearest < _CHIN else ex
    reach = max(abs(float((p[_CHIN] - q) @ ey)), 1e-6)
    w = np.clip(1.0 - np.abs((p[half] - q) @ ey) / reach, 0.0, 1.0)
    p[half] += need * w[:, None] * outward
