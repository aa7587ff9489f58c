"""Rebuild the shipped artefacts (generic 3D face, PDM) from ``../shared/data``.

Used by ``recipes/build_shape_model.py`` and ``gannotate shape-model build``; nothing here runs
when the package is merely used (the artefacts are committed under ``shape_model/data``).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import numpy as np

from shape_model.build import DEFAULT_MODEL_PATH, build_model, save_model
from shape_model.datasets import AFLW2000, aflw2000_split, load_training_shapes, read_aflw2000
from shape_model.pdm import PointDistributionModel
from shape_model.pose import MEAN_FACE_3D_PATH, fit_depth_scale, symmetrise_face_3d, write_mean_face_3d

__all__ = ["YIN_FACE", "derive_mean_face_3d", "build_default_model"]

logger = logging.getLogger(__name__)

YIN_FACE = "meanface3d_head_pose_estimation/model.txt"  # MIT, yinguobing/head-pose-estimation


def derive_mean_face_3d(data_root: str | Path, out: str | Path = MEAN_FACE_3D_PATH) -> tuple[np.ndarray, float, float]:
    """Derive and write the generic 3D face: yinguobing's face, symmetrised, depth fitted.

    The depth stretch is chosen on the *training* (even) half of AFLW2000-3D only, so the odd
    half stays a fair test of yaw.

    Returns:
        (face (68, 3), depth factor, its training-half yaw MAE in degrees).
    """
    root = Path(data_root)
    raw = np.loadtxt(root / YIN_FACE).reshape(3, -1).T  # file holds all x, then all y, then all z
    face = symmetrise_face_3d(raw)
    shapes, yaw = read_aflw2000(root / AFLW2000)
    train, _ = aflw2000_split(len(shapes))
    k, mae = fit_depth_scale(face, shapes[train], yaw[train])
    face = face * np.array([1.0, 1.0, k])
    header = "\n".join(
        [
            "Generic 3D 68-point face for shape_model.pose (iBUG 68 order, rows = 0-based points 0..67).",
            "Columns: x, y, z in roughly millimetres; x to the image right, y down, z away from the viewer.",
            "Derived from yinguobing/head-pose-estimation assets/model.txt (commit e0c37703e318, MIT licence):",
            "centred, averaged with its mirror image (x -> -x, iBUG 68 flip table), then z multiplied by",
            f"{k:.2f}, the factor that best predicts the yaw labels of the even half of AFLW2000-3D",
            f"(3DDFA test configs; training-half yaw MAE {mae:.2f} deg over |yaw| <= 60).",
            "Rebuild: python recipes/build_shape_model.py --data ../shared/data",
        ]
    )
    write_mean_face_3d(out, face, header)
    logger.info("generic 3D face: depth x%.2f, AFLW2000 train-half yaw MAE %.2f deg", k, mae)
    return face, k, mae


def build_default_model(
    data_root: str | Path,
    out: str | Path = DEFAULT_MODEL_PATH,
    *,
    pose_degree: int = 3,
    variance: float = 0.95,
    command: str = "",
) -> PointDistributionModel:
    """Build the PDM from the shared training shapes and save it with its provenance.

    Returns:
        The model as saved (provenance: sources, counts, held-out sets, date, command, settings).
    """
    shapes, contour_valid, prov = load_training_shapes(data_root)
    prov.update(
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=command,
        pose_estimator="shape_model.pose.estimate_pose (weak perspective, data/mean_face_3d_68.txt, points 17-67)",
        licence_note="research-only source annotations (300-W, AFW, Helen, AFLW2000-3D); see SOURCE.md files",
    )
    model = build_model(
        shapes, pose_degree=pose_degree, variance=variance, contour_valid=contour_valid, provenance=prov
    )
    save_model(model, out)
    return model
