"""Head pose (yaw, pitch, roll in degrees) of 68-point 2D shapes from a generic 3D face.

Method: a scaled-orthographic (weak-perspective) camera fitted to the non-jaw points (17-67;
the jaw contour of a turned face follows the silhouette, which a rigid 3D face does not have):
an affine least-squares start, projected onto the nearest scaled rotation, then a few
Gauss-Newton steps on (rotation, scale). It is vectorised over N (no loop per shape), needs no
camera intrinsics (model instances have no image), and ``cv2.solvePnP`` is kept only as a
cross-check (``method="pnp"``).

Sign convention (image coordinates, x right, y down), the same everywhere in ``shape_model``:
    yaw   > 0: the face turns to its own left, i.e. the nose moves towards the image right.
    pitch > 0: the face looks up (the nose moves towards the image top).
    roll  > 0: the face is turned clockwise on screen (the direction of ``theta`` in the PDM).
A mirrored shape (``ibug68.mirror``) has the same pitch and the opposite yaw and roll.

The generic 3D face (``data/mean_face_3d_68.txt``) is in a camera-like frame: x to the image
right, y down, z away from the viewer (nose tip has negative z); units are roughly millimetres.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from shape_model.errors import ShapeModelError, check_shapes
from shape_model.ibug68 import FLIP, INNER, N_POINTS

__all__ = [
    "MEAN_FACE_3D_PATH",
    "load_mean_face_3d",
    "symmetrise_face_3d",
    "fit_depth_scale",
    "write_mean_face_3d",
    "estimate_pose",
    "rotation_to_euler",
    "weak_perspective_rotations",
]

MEAN_FACE_3D_PATH = Path(__file__).resolve().parent / "data" / "mean_face_3d_68.txt"


def load_mean_face_3d(path: str | Path | None = None) -> np.ndarray:
    """The shipped generic 3D face: (68, 3) float64, x right, y down, z away from the viewer."""
    p = Path(path) if path is not None else MEAN_FACE_3D_PATH
    stat = p.stat() if p.exists() else None
    return _load_face_cached(str(p), None if stat is None else stat.st_mtime_ns).copy()


@functools.lru_cache(maxsize=4)
def _load_face_cached(path: str, mtime_ns: int | None) -> np.ndarray:
    """Read a 3D face file once per (path, modification time)."""
    p = Path(path)
    try:
        face = np.loadtxt(p, comments="#", delimiter=",", dtype=np.float64)
    except OSError as e:
        raise ShapeModelError(f"{p}: cannot read the generic 3D face ({e})") from e
    if face.shape != (N_POINTS, 3) or not np.isfinite(face).all():
        raise ShapeModelError(f"{p}: expected 68 finite rows 'x,y,z', got shape {face.shape}")
    return face


def symmetrise_face_3d(face: np.ndarray) -> np.ndarray:
    """Average a (68, 3) face with its mirror image (x -> -x, points re-ordered), centred.

    A symmetric generic face makes ``estimate_pose`` exactly antisymmetric in yaw and roll, so a
    mirrored shape gets the negated yaw (tested).
    """
    f = np.asarray(face, dtype=np.float64)
    f = f - f.mean(axis=0)
    m = f[FLIP] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (f + m)


def fit_depth_scale(
    face: np.ndarray, shapes: np.ndarray, yaw: np.ndarray, grid: np.ndarray | None = None, max_abs_yaw: float = 60.0
) -> tuple[float, float]:
    """The depth (z) stretch of ``face`` that best predicts known yaw labels.

    A generic face's nose/cheek depth sets how far a given 2D asymmetry turns into yaw: too shallow
    a face over-estimates |yaw|. This picks, on a grid, the z factor with the lowest mean absolute
    yaw error over ``|yaw| <= max_abs_yaw``.

    Args:
        face: (68, 3) generic face (module frame).
        shapes: (N, 68, 2) shapes with labels.
        yaw: (N,) yaw labels in degrees (module sign convention).
        grid: z factors to try; default 1.0 to 2.0 in steps of 0.05.

    Returns:
        (best factor, its mean absolute yaw error in degrees).
    """
    grid = np.arange(1.0, 2.0001, 0.05) if grid is None else np.asarray(grid, dtype=np.float64)
    sel = np.abs(yaw) <= max_abs_yaw
    errors = [
        float(np.mean(np.abs(estimate_pose(shapes[sel], face * np.array([1.0, 1.0, k]))[:, 0] - yaw[sel])))
        for k in grid
    ]
    best = int(np.argmin(errors))
    return float(grid[best]), errors[best]


def write_mean_face_3d(path: str | Path, face: np.ndarray, header: str) -> Path:
    """Write a (68, 3) face as the text file ``load_mean_face_3d`` reads (comment header first)."""
    p = Path(path)
    np.savetxt(p, np.asarray(face, dtype=np.float64), fmt="%.4f", delimiter=",", header=header)
    return p


def _skew_rows_xy(p: np.ndarray) -> np.ndarray:
    """d(p_xy)/d(omega) for p -> exp([omega]x) p at omega = 0: (..., 2, 3) from (..., 3)."""
    z = np.zeros_like(p[..., 0])
    row0 = np.stack([z, p[..., 2], -p[..., 1]], axis=-1)
    row1 = np.stack([-p[..., 2], z, p[..., 0]], axis=-1)
    return np.stack([row0, row1], axis=-2)


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors -> (N, 3, 3) rotation matrices."""
    theta = np.linalg.norm(omega, axis=-1)[:, None, None]
    k = np.zeros(omega.shape[:-1] + (3, 3))
    k[:, 0, 1], k[:, 0, 2] = -omega[:, 2], omega[:, 1]
    k[:, 1, 0], k[:, 1, 2] = omega[:, 2], -omega[:, 0]
    k[:, 2, 0], k[:, 2, 1] = -omega[:, 1], omega[:, 0]
    small = theta < 1e-12
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def rotation_to_euler(rot: np.ndarray) -> np.ndarray:
    """(N, 3, 3) model->camera rotations -> (N, 3) yaw, pitch, roll in degrees (module convention).

    yaw/pitch are the heading/elevation of the face's forward direction ``d = -R[:, 2]`` (the
    model's -z, out of the face); roll is the on-screen angle of the model's x axis ``R[:, 0]``.
    """
    d = -rot[:, :, 2]
    yaw = np.degrees(np.arctan2(d[:, 0], -d[:, 2]))
    pitch = np.degrees(np.arctan2(-d[:, 1], np.hypot(d[:, 0], d[:, 2])))
    e = rot[:, :, 0]
    roll = np.degrees(np.arctan2(e[:, 1], e[:, 0]))
    return np.stack([yaw, pitch, roll], axis=-1)


def weak_perspective_rotations(x: np.ndarray, face: np.ndarray, n_iter: int) -> np.ndarray:
    """Fit x ≈ s P R X (centred) for every shape; returns (N, 3, 3) rotations."""
    xc = x - x.mean(axis=1, keepdims=True)  # (N, K', 2)
    fc = face - face.mean(axis=0)  # (K', 3)
    m_t = np.linalg.pinv(fc) @ xc  # (N, 3, 2): affine camera, transposed
    u, sv, vt = np.linalg.svd(np.swapaxes(m_t, 1, 2), full_matrices=False)  # (N,2,2) (N,2) (N,2,3)
    r2 = u @ vt  # (N, 2, 3) nearest orthonormal rows
    scale = sv.mean(axis=1)
    rot = np.concatenate([r2, np.cross(r2[:, 0], r2[:, 1])[:, None]], axis=1)  # (N, 3, 3)
    for _ in range(n_iter):
        p = np.einsum("nij,kj->nki", rot, fc)  # (N, K', 3) rotated face
        proj = p[..., :2]
        res = xc - scale[:, None, None] * proj  # (N, K', 2)
        j_w = scale[:, None, None, None] * _skew_rows_xy(p)  # (N, K', 2, 3)
        jac = np.concatenate([j_w, proj[..., None]], axis=-1).reshape(len(x), -1, 4)  # (N, 2K', 4)
        r = res.reshape(len(x), -1)
        jtj = np.einsum("nmi,nmj->nij", jac, jac) + 1e-9 * np.eye(4)
        step = np.linalg.solve(jtj, np.einsum("nmi,nm->ni", jac, r)[..., None])[..., 0]
        rot = _rodrigues(step[:, :3]) @ rot
        scale = scale + step[:, 3]
    return rot


def _pnp(x: np.ndarray, face: np.ndarray) -> np.ndarray:
    """cv2.solvePnP per shape (a cross-check; loops over shapes)."""
    import cv2

    rots = []
    for pts in x:
        size = float(np.ptp(pts, axis=0).max())
        centre = pts.mean(axis=0)
        cam = np.array([[4 * size, 0, centre[0]], [0, 4 * size, centre[1]], [0, 0, 1]], dtype=np.float64)
        ok, rvec, _ = cv2.solvePnP(face, pts.astype(np.float64), cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
        rots.append(cv2.Rodrigues(rvec)[0] if ok else np.full((3, 3), np.nan))
    return np.stack(rots)


def estimate_pose(
    points: np.ndarray,
    face3d: np.ndarray | None = None,
    indices: np.ndarray | None = None,
    method: str = "weak",
    n_iter: int = 10,
) -> np.ndarray:
    """Yaw, pitch and roll of 68-point shapes, in degrees (sign convention in the module doc).

    Args:
        points: (N, 68, 2) or (68, 2), (x, y) image-like coordinates (y down); any scale/offset.
        face3d: (68, 3) generic face; default the shipped ``data/mean_face_3d_68.txt``.
        indices: which points to fit; default 17-67 (no jaw contour).
        method: ``"weak"`` (vectorised weak perspective) or ``"pnp"`` (``cv2.solvePnP`` loop).
        n_iter: Gauss-Newton refinements for ``"weak"``.

    Returns:
        (N, 3) float64 [yaw, pitch, roll] in degrees, or (3,) for a single (68, 2) shape.

    Raises:
        ShapeModelError: wrong point count, NaN, degenerate shapes, unknown method.
    """
    pts, single = check_shapes(points, N_POINTS)
    face = load_mean_face_3d() if face3d is None else np.asarray(face3d, dtype=np.float64)
    idx = INNER if indices is None else np.asarray(indices)
    if method == "weak":
        rot = weak_perspective_rotations(pts[:, idx], face[idx], n_iter)
    elif method == "pnp":
        rot = _pnp(pts[:, idx], face[idx])
    else:
        raise ShapeModelError(f"estimate_pose: unknown method {method!r} (use 'weak' or 'pnp')")
    angles = rotation_to_euler(rot)
    return angles[0] if single else angles
