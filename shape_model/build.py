"""Build a PointDistributionModel from 68-point shapes, and save/load it as a small ``.npz``.

Build steps (``build_model``):
1. head pose of every training shape with ``pose.estimate_pose`` (weak perspective, generic
   3D face), unless given;
2. with ``mirror=True`` every shape is also used mirrored with negated yaw (the model is then
   left-right symmetric and yaw-antisymmetric by construction);
3. generalised Procrustes alignment on the 51 inner points (the jaw is carried along);
4. least-squares regression of the aligned shapes on φ(yaw, pitch) (intercept = frontal mean,
   slopes = ``B_pose``), both made orthogonal to the similarity directions at the mean; jaw
   coordinates only from shapes whose contour follows the 300W convention (``contour_valid``);
5. PCA of the residual of the contour-valid shapes (made orthogonal to the similarity and
   first-order pose directions, so expression can never imitate a yaw or pitch change), keeping
   the fewest modes that explain ``variance`` of it;
6. ``calibrate=True``: rescale the yaw and pitch axes so ``estimate_pose(instance(yaw=θ))``
   returns θ (the regression on noisy estimated poses shrinks the slopes; this undoes it).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from shape_model.errors import ShapeModelError, check_shapes
from shape_model.ibug68 import INNER, JAW
from shape_model.ibug68 import mirror as mirror_shapes
from shape_model.pdm import PointDistributionModel, pose_exponents, pose_features
from shape_model.pose import estimate_pose
from shape_model.procrustes import align, generalised_procrustes

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FORMAT_VERSION",
    "build_model",
    "save_model",
    "load_model",
    "model_sha256",
    "similarity_directions",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "pdm_ibug68.npz"
FORMAT_VERSION = 1


def similarity_directions(mean: np.ndarray) -> np.ndarray:
    """(4, 2K) orthonormal tangent directions of the similarity group at ``mean`` (K, 2)."""
    k = mean.shape[0]
    rot = np.stack([-mean[:, 1], mean[:, 0]], axis=-1)
    tx = np.tile([1.0, 0.0], (k, 1))
    ty = np.tile([0.0, 1.0], (k, 1))
    q, _ = np.linalg.qr(np.stack([mean, rot, tx, ty]).reshape(4, -1).T)
    return q.T


def _project_out(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Remove from rows of x (M, D) their components along orthonormal rows of basis (B, D)."""
    return x - (x @ basis.T) @ basis


def _calibrate(model: PointDistributionModel, grid: float = 45.0) -> tuple[float, float]:
    """Least-squares slopes of estimate_pose(instance(angle)) against angle, yaw and pitch."""
    angles = np.linspace(-grid, grid, 7)
    zeros = np.zeros_like(angles)
    e = np.zeros((len(angles), model.n_expression))
    est_yaw = estimate_pose(model.shapes_in_model_frame(angles, zeros, e))[:, 0]
    est_pitch = estimate_pose(model.shapes_in_model_frame(zeros, angles, e))[:, 1]
    return float(angles @ est_yaw / (angles @ angles)), float(angles @ est_pitch / (angles @ angles))


def build_model(
    shapes: np.ndarray,
    pose: np.ndarray | None = None,
    *,
    pose_degree: int = 3,
    variance: float = 0.95,
    max_components: int | None = None,
    mirror: bool = True,
    calibrate: bool = True,
    max_abs_yaw: float = 90.0,
    contour_valid: np.ndarray | None = None,
    modes_orthogonal_to: str = "linear",
    provenance: dict | None = None,
) -> PointDistributionModel:
    """Fit a PDM to training shapes (steps in the module docstring).

    Args:
        shapes: (N, 68, 2) training shapes, (x, y), any similarity frame each.
        pose: optional (N, 2) [yaw, pitch] degrees; default ``estimate_pose(shapes)``.
        pose_degree: degree of the polynomial φ (1 = linear).
        variance: fraction of the residual variance the expression modes must explain.
        max_components: cap on the number of modes (after the variance rule).
        mirror: also train on the mirrored shapes (yaw negated).
        calibrate: rescale the pose axes so instance(yaw=θ) is estimated at θ.
        max_abs_yaw: training shapes with a larger estimated |yaw| are left out.
        contour_valid: optional (N,) bool, False where a shape's jaw contour does not follow the
            300W convention (the visible silhouette), e.g. AFLW2000-3D, whose jaw follows the 3D
            contour behind the cheek at large yaw. Such shapes train only the 51 inner points
            (alignment, pose basis); the jaw's pose basis and the expression modes come from the
            others. Default: all valid.
        modes_orthogonal_to: ``"linear"`` (the expression modes avoid the first-order pose
            directions) or ``"pose"`` (they avoid every pose direction).
        provenance: stored in the model (sources, counts, date, command...).

    Returns:
        The fitted PointDistributionModel; ``model.provenance`` also holds the build numbers.

    Raises:
        ShapeModelError: bad shapes, too few shapes, or ``variance`` outside (0, 1].
    """
    pts, _ = check_shapes(shapes, None, "shapes")
    if not 0.0 < variance <= 1.0:
        raise ShapeModelError(f"build_model: variance must be in (0, 1], got {variance}")
    if modes_orthogonal_to not in ("linear", "pose"):
        raise ShapeModelError(
            f"build_model: modes_orthogonal_to must be 'linear' or 'pose', got {modes_orthogonal_to!r}"
        )
    yp = estimate_pose(pts)[:, :2] if pose is None else np.asarray(pose, dtype=np.float64).reshape(-1, 2)
    valid = np.ones(len(pts), bool) if contour_valid is None else np.asarray(contour_valid, bool).reshape(-1)
    if valid.shape != (len(pts),) or not valid.any():
        raise ShapeModelError(f"build_model: contour_valid needs {len(pts)} flags with at least one True")
    keep = np.abs(yp[:, 0]) <= max_abs_yaw
    pts, yp, valid = pts[keep], yp[keep], valid[keep]
    if mirror:
        pts = np.concatenate([pts, mirror_shapes(pts)])
        yp = np.concatenate([yp, yp * np.array([-1.0, 1.0])])
        valid = np.concatenate([valid, valid])
    n, k = pts.shape[:2]
    f = len(pose_exponents(pose_degree))
    if valid.sum() < f + 3:
        raise ShapeModelError(f"build_model: need more than {f + 2} shapes with a valid contour, got {valid.sum()}")

    # Align on the inner points (valid in every shape), then carry the jaw along.
    ref = pts[np.argmin(np.abs(yp).sum(axis=1)), INNER]  # most frontal shape fixes the frame orientation
    _, inner_aligned = generalised_procrustes(pts[:, INNER], reference=ref)
    aligned = align(pts[:, INNER], inner_aligned).apply(pts)
    x = aligned.reshape(n, -1)  # (N, 2K)
    jaw_cols = np.zeros((k, 2), bool)
    jaw_cols[JAW] = True
    jaw_cols = jaw_cols.reshape(-1)
    design = np.concatenate([np.ones((n, 1)), pose_features(yp[:, 0], yp[:, 1], pose_degree)], axis=1)
    coef = np.empty((1 + f, 2 * k))
    coef[:, ~jaw_cols] = np.linalg.lstsq(design, x[:, ~jaw_cols], rcond=None)[0]
    coef[:, jaw_cols] = np.linalg.lstsq(design[valid], x[valid][:, jaw_cols], rcond=None)[0]
    mean = coef[0].reshape(k, 2)
    mean = mean - mean.mean(axis=0)  # origin at the centroid of all K points (tx, ty = face centroid)
    sim_dirs = similarity_directions(mean)
    b = _project_out(coef[1:], sim_dirs)  # (F, 2K)
    resid = x[valid] - design[valid] @ coef
    n_avoid = 2 if modes_orthogonal_to == "linear" else f
    linear_pose = np.linalg.qr(b[:n_avoid].T)[0].T  # (2 or F, 2K): pose directions the modes must avoid
    resid = _project_out(_project_out(resid, sim_dirs), linear_pose)
    _, sv, vt = np.linalg.svd(resid - resid.mean(axis=0), full_matrices=False)
    eig = sv**2 / (len(resid) - 1)
    ratio = np.cumsum(eig) / eig.sum()
    e = int(np.searchsorted(ratio, variance - 1e-12) + 1)
    if max_components is not None:
        e = min(e, int(max_components))
    model = PointDistributionModel(mean, b.reshape(f, k, 2), vt[:e].reshape(e, k, 2), np.sqrt(eig[:e]), pose_degree)

    slopes = (1.0, 1.0)
    if calibrate:
        slopes = _calibrate(model)
        exps = pose_exponents(pose_degree)
        factor = 1.0 / (slopes[0] ** exps[:, 0] * slopes[1] ** exps[:, 1])  # φ(θ/a) = φ(θ) / a^i b^j
        model = PointDistributionModel(mean, model.pose_basis * factor[:, None, None], model.components,
                                       model.expression_std, pose_degree)
    model.provenance = dict(provenance or {})
    model.provenance.update(
        n_training_shapes=int(keep.sum()),
        n_contour_valid=int(valid.sum() // (2 if mirror else 1)),
        n_dropped_large_yaw=int((~keep).sum()),
        mirrored=bool(mirror),
        pose_degree=int(pose_degree),
        n_expression=e,
        explained_variance=float(ratio[e - 1]),
        variance_target=float(variance),
        calibration_slopes=[float(s) for s in slopes],
        training_yaw_percentiles={str(q): float(v) for q, v in zip((1, 50, 99), np.percentile(yp[:, 0], (1, 50, 99)))},
    )
    logger.info("built %r explaining %.3f of the residual variance", model, ratio[e - 1])
    return model


def save_model(model: PointDistributionModel, path: str | Path, provenance: dict | None = None) -> Path:
    """Write the model as a compressed ``.npz`` (float32 arrays + provenance JSON), atomically.

    ``provenance`` (if given) is merged over ``model.provenance``.
    """
    p = Path(path)
    prov = {**model.provenance, **(provenance or {})}
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format_version=np.int64(FORMAT_VERSION),
        mean=model.mean.astype(np.float32),
        pose_basis=model.pose_basis.astype(np.float32),
        components=model.components.astype(np.float32),
        expression_std=model.expression_std.astype(np.float32),
        pose_degree=np.int64(model.pose_degree),
        provenance=np.array(json.dumps(prov, sort_keys=True)),
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(buf.getvalue())
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model is meant to be read by anyone
    os.replace(tmp, p)
    return p


def load_model(path: str | Path | None = None) -> PointDistributionModel:
    """Load a saved model; ``None`` loads the shipped one (``DEFAULT_MODEL_PATH``).

    Raises:
        ShapeModelError: missing file, not a model, or an unknown format version.
    """
    p = DEFAULT_MODEL_PATH if path is None else Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
    except (OSError, ValueError) as e:
        raise ShapeModelError(f"{p}: cannot read a shape model ({e})") from e
    needed = {"format_version", "mean", "pose_basis", "components", "expression_std", "pose_degree"}
    if not needed <= set(data):
        raise ShapeModelError(f"{p}: not a shape model (missing {sorted(needed - set(data))})")
    if int(data["format_version"]) != FORMAT_VERSION:
        raise ShapeModelError(f"{p}: format_version {int(data['format_version'])}, this code reads {FORMAT_VERSION}")
    prov = json.loads(str(data["provenance"])) if "provenance" in data else {}
    return PointDistributionModel(
        data["mean"], data["pose_basis"], data["components"], data["expression_std"], int(data["pose_degree"]), prov
    )


def model_sha256(path: str | Path | None = None) -> str:
    """Hex SHA-256 of a model file (default: the shipped one), for dataset provenance."""
    p = DEFAULT_MODEL_PATH if path is None else Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest()
