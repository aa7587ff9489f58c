"""Independent yaw readings of 68-point shapes, and their conversion to the AFLW2000-3D label scale.

Why: every landmark-only yaw estimator has its own scale (a weak-perspective fit turns a 2D asymmetry
into yaw through the depth of its 3D face), so "estimator X reads our 30° targets as 35°" means nothing
until X has read real faces with known yaw. This module gives (1) a second 3D model to read yaw with,
the BFM restricted to the 68 keypoints (3DDFA's, ``../shared/data/bfm68_pdm_3ddfa``), fitted with a
scaled-orthographic (affine) camera and its identity + expression coefficients; (2) the reading curve
of any estimator on labelled real faces (mean reading per |label|); (3) the inverse: a reading mapped
back to the label scale. Used by ``benchmarks/shape_model_bench.py`` ("yaw calibration").

Measured (issue 13 item 5; benchmark block ``yaw_calibration``): the BFM-68 fit reads AFLW2000-3D faces
labelled 15/30/45/60° as 17.5/34.6/50.1/64.0° and the shipped model's mean-shape targets at 15/30/45/60°
as 18.1/34.7/49.8/65.9°: on the label scale the targets are 15.5/30.1/44.7/62.5°.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shape_model.errors import ShapeModelError, check_shapes
from shape_model.ibug68 import INNER, N_POINTS
from shape_model.pose import rotation_to_euler, weak_perspective_rotations

__all__ = ["BFM68", "load_bfm68", "bfm68_pose", "reading_curve", "to_label_scale"]

_TO_CAMERA = np.array([1e-3, -1e-3, -1e-3])  # BFM (y up, z towards the viewer, µm-like) -> x right, y down, z away, mm


class BFM68:
    """3DDFA's BFM-68: mean (68, 3) and a basis (68, 3, 50) of 40 identity + 10 expression modes, per σ."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.basis = np.asarray(basis, np.float64)


def load_bfm68(folder: str | Path) -> BFM68:
    """Read ``bfm68_pdm_3ddfa`` (u_base, w_shp_base, w_exp_base, param_std) into the camera-like frame."""
    root = Path(folder)
    try:
        u = np.loadtxt(root / "u_base.txt").reshape(N_POINTS, 3)
        shp = np.loadtxt(root / "w_shp_base.txt").reshape(N_POINTS, 3, -1)
        exp = np.loadtxt(root / "w_exp_base.txt").reshape(N_POINTS, 3, -1)
        std = np.loadtxt(root / "param_std.txt")
    except (OSError, ValueError) as e:
        raise ShapeModelError(f"{root}: cannot read the BFM-68 files ({e})") from e
    basis = np.concatenate([shp * std[12:52], exp * std[52:62]], axis=2)  # one unit = one σ of 3DDFA's training set
    return BFM68(u * _TO_CAMERA, basis * _TO_CAMERA[None, :, None])


def bfm68_pose(
    points: np.ndarray, bfm: BFM68, indices: np.ndarray | None = None, n_outer: int = 5, ridge: float = 1.0
) -> np.ndarray:
    """Yaw, pitch, roll (degrees, ``shape_model.pose`` convention) of shapes from an affine-camera BFM-68 fit.

    Alternates a weak-perspective pose (``pose.weak_perspective_rotations``) with ridge least squares of the
    identity + expression coefficients (prior: ``ridge`` per σ²), vectorised over shapes.

    Args:
        points: (N, 68, 2) or (68, 2) image-like (x, y), y down.
        bfm: from ``load_bfm68``.
        indices: points to fit; default 17-67 (no jaw: the jaw convention differs between data sets).

    Returns:
        (N, 3) or (3,) [yaw, pitch, roll].
    """
    pts, single = check_shapes(points, N_POINTS)
    idx = INNER if indices is None else np.asarray(indices)
    x = pts[:, idx]
    xc = x - x.mean(axis=1, keepdims=True)  # (N, K, 2)
    base = bfm.mean[idx]
    basis = bfm.basis[idx] - bfm.basis[idx].mean(axis=0)  # (K, 3, M)
    m = basis.shape[2]
    coef = np.zeros((len(pts), m))
    for _ in range(n_outer):
        shape3d = base[None] + np.einsum("kcm,nm->nkc", bfm.basis[idx], coef)  # (N, K, 3)
        rot = np.stack([weak_perspective_rotations(x[i : i + 1], shape3d[i], 10)[0] for i in range(len(pts))])
        sc = shape3d - shape3d.mean(axis=1, keepdims=True)
        proj = np.einsum("nij,nkj->nki", rot[:, :2], sc)  # (N, K, 2)
        s = (proj * xc).sum(axis=(1, 2)) / (proj * proj).sum(axis=(1, 2))
        a = s[:, None, None] * np.einsum("nij,kjm->nkim", rot[:, :2], basis).reshape(len(pts), -1, m)  # (N, 2K, M)
        r = (xc - s[:, None, None] * proj).reshape(len(pts), -1) + np.einsum("nkm,nm->nk", a, coef)
        lhs = np.einsum("nkm,nkl->nml", a, a) + ridge * (s**2)[:, None, None] * np.eye(m)
        coef = np.linalg.solve(lhs, np.einsum("nkm,nk->nm", a, r)[..., None])[..., 0]
    shape3d = base[None] + np.einsum("kcm,nm->nkc", bfm.basis[idx], coef)
    rot = np.stack([weak_perspective_rotations(x[i : i + 1], shape3d[i], 10)[0] for i in range(len(pts))])
    angles = rotation_to_euler(rot)
    return angles[0] if single else angles


def reading_curve(
    reading: np.ndarray, label: np.ndarray, width: float = 5.0, top: float = 80.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean reading (folded by the label's sign) per |label| bin: (bin centres, mean readings), both (B,).

    E[reading | label] is the direction to invert: a shape read as r has, on the label scale, the yaw
    whose real faces are read as r on average.
    """
    a = np.abs(np.asarray(label, np.float64))
    v = np.asarray(reading, np.float64) * np.sign(label)
    centres = np.arange(width / 2, top, width)
    means = np.array([v[(a >= c - width / 2) & (a < c + width / 2)].mean() for c in centres])
    ok = np.isfinite(means)
    return centres[ok], means[ok]


def to_label_scale(reading: np.ndarray, curve: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Readings -> label-scale yaw through a monotone ``reading_curve`` (odd: the sign is kept)."""
    centres, means = curve
    r = np.asarray(reading, np.float64)
    means = np.concatenate([[0.0], np.maximum.accumulate(means)])  # a frontal face reads 0; guard noisy bins
    return np.sign(r) * np.interp(np.abs(r), means, np.concatenate([[0.0], centres]))
