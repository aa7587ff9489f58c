"""Readers for the 68-point shape collections the shipped model is built and measured on.

All return float64 (N, 68, 2), (x, y), 0-based pixel coordinates (1-based files have 1
subtracted here, once). Layouts are those of ``../shared/data`` (see each folder's SOURCE.md);
nothing here is needed at run time, only by the build recipe, the benchmark and the
``shared_data`` tests.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from shape_model.errors import ShapeModelError
from shape_model.ibug68 import N_POINTS

__all__ = [
    "read_pts_folder",
    "read_hrnet_csv",
    "read_aflw2000",
    "wrap_degrees",
    "aflw2000_split",
    "load_training_shapes",
    "load_test_shapes",
]


def read_pts_folder(folder: str | Path) -> tuple[np.ndarray, list[str]]:
    """Every ``*.pts`` under ``folder`` (sorted), 1-based on disk -> 0-based.

    Accepts files with or without the ``version/n_points/{ }`` header.

    Returns:
        (shapes (N, 68, 2) float64, names relative to ``folder`` without extension).
    """
    root = Path(folder)
    files = sorted(root.rglob("*.pts"))
    if not files:
        raise ShapeModelError(f"{root}: no .pts files found")
    shapes, names = [], []
    for f in files:
        rows = []
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                try:
                    rows.append((float(parts[0]), float(parts[1])))
                except ValueError:
                    continue  # header line such as "n_points: 68"
        if len(rows) != N_POINTS:
            raise ShapeModelError(f"{f}: expected {N_POINTS} points, got {len(rows)}")
        shapes.append(rows)
        names.append(str(f.relative_to(root).with_suffix("")))
    return np.asarray(shapes, dtype=np.float64) - 1.0, names


def read_hrnet_csv(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """An HRNet 300W csv (``image_name,scale,center_w,center_h,x0,y0,...``), 1-based -> 0-based.

    Returns:
        (shapes (N, 68, 2) float64, image names).
    """
    p = Path(path)
    with p.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or len(rows[0]) != 4 + 2 * N_POINTS:
        raise ShapeModelError(f"{p}: expected a header of {4 + 2 * N_POINTS} columns")
    names = [r[0] for r in rows[1:]]
    vals = np.asarray([[float(v) for v in r[4:]] for r in rows[1:]], dtype=np.float64)
    return vals.reshape(-1, N_POINTS, 2) - 1.0, names


def wrap_degrees(angle: np.ndarray) -> np.ndarray:
    """Wrap angles in degrees into [-180, 180)."""
    return (np.asarray(angle, dtype=np.float64) + 180.0) % 360.0 - 180.0


def read_aflw2000(folder: str | Path, reannotated: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """AFLW2000-3D (3DDFA test configs): 2D shapes and yaw labels in this package's convention.

    The label file's yaw is positive when the nose moves towards the image *left* (checked: it
    correlates at -0.73 with the nose-tip offset towards the image right), so it is negated here
    to match ``shape_model.pose`` (positive = nose towards the image right), and wrapped into
    [-180, 180) (a few raw values lie outside ±180).

    Args:
        folder: ``../shared/data/aflw2000_3d_3ddfa``.
        reannotated: use the 2D re-annotation (default) rather than the x, y of the 3D points.

    Returns:
        (shapes (2000, 68, 2) float64 pixels of the 450×450 image, yaw (2000,) degrees).
    """
    root = Path(folder)
    name = "AFLW2000-3D-Reannotated.pts68.npy" if reannotated else "AFLW2000-3D.pts68.npy"
    pts = np.load(root / name)[:, :2, :]  # (N, 2, 68)
    yaw = -wrap_degrees(np.load(root / "AFLW2000-3D.pose.npy"))
    return np.ascontiguousarray(np.transpose(pts, (0, 2, 1)), dtype=np.float64), yaw


AFW_HELEN = "300w_afw_helen_spinkoo/annotations"
AFLW2000 = "aflw2000_3d_3ddfa"
HRNET = "300w_hrnet_csv"


def aflw2000_split(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The fixed AFLW2000-3D split: even indices train the model, odd indices only evaluate it."""
    idx = np.arange(n)
    return idx[idx % 2 == 0], idx[idx % 2 == 1]


def load_training_shapes(data_root: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """The shipped model's training shapes from ``../shared/data``.

    AFW (337) + Helen train (870) 300W ``.pts`` and the even half of AFLW2000-3D's 2D
    re-annotation (1000); the 300W public test (Helen test, LFPW test, iBUG) and the odd half of
    AFLW2000-3D are never used here.

    AFLW2000-3D's jaw follows the 3D face contour (behind the cheek at large yaw), not the 300W
    convention (the visible silhouette): the far eye lies inside the jaw/brow outline in 100% of
    AFW/Helen faces at any yaw but in 3% of AFLW2000-3D faces at 30-45° (measured with
    ``estimate_pose``). So its shapes are flagged ``contour_valid = False`` and train only the
    inner points.

    Returns:
        (shapes (N, 68, 2) float64 0-based, contour_valid (N,) bool, provenance dict with sources
        and counts).
    """
    root = Path(data_root)
    afw, _ = read_pts_folder(root / AFW_HELEN / "afw")
    helen, _ = read_pts_folder(root / AFW_HELEN / "helen" / "trainset")
    aflw, _ = read_aflw2000(root / AFLW2000)
    train_idx, _ = aflw2000_split(len(aflw))
    shapes = np.concatenate([afw, helen, aflw[train_idx]])
    contour_valid = np.arange(len(shapes)) < len(afw) + len(helen)
    prov = {
        "sources": {
            "afw": f"{AFW_HELEN}/afw/**/*.pts (300W re-annotation, 1-based)",
            "helen_train": f"{AFW_HELEN}/helen/trainset/*.pts (300W re-annotation, 1-based)",
            "aflw2000_even": f"{AFLW2000}/AFLW2000-3D-Reannotated.pts68.npy rows 0, 2, 4, ... (inner points only)",
        },
        "counts": {"afw": len(afw), "helen_train": len(helen), "aflw2000_even": len(train_idx)},
        "held_out": "300W public test (common 554, challenging 135); AFLW2000-3D odd rows",
    }
    return shapes, contour_valid, prov


def load_test_shapes(data_root: str | Path) -> dict[str, np.ndarray]:
    """Held-out shapes: ``{"common": (554, 68, 2), "challenging": (135, 68, 2)}`` 0-based."""
    root = Path(data_root) / HRNET
    return {
        "common": read_hrnet_csv(root / "face_landmarks_300w_valid_common.csv")[0],
        "challenging": read_hrnet_csv(root / "face_landmarks_300w_valid_challenge.csv")[0],
    }
