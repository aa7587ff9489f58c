"""Convert the Surrey Face Model (../shared/data/sfm_eos) into the compact numpy file the profile renderer ships.

Usage:
    python recipes/build_face3d_model.py [--src ../shared/data/sfm_eos] [--out gannotate/assets/sfm_face3d.npz]

eos-py is used here only to read the cereal ``.bin`` archives; at runtime ``shape_model.face3d`` reads the
``.npz`` with numpy. The output is in the camera-like frame of ``shape_model.pose`` (x right, y down, z away
from the viewer; millimetres), so the same Euler convention applies to both.

Licence: the Surrey Face Model is free for non-commercial use only (see gannotate/assets/SFM_LICENCE.md).
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np
from matplotlib.path import Path as PolyPath
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
FLIP_AXES = np.array([1.0, -1.0, -1.0])  # SFM (y up, z towards viewer) → camera frame (y down, z away)
LICENCE = (
    "Surrey Face Model (sfm_shape_3448, expression blendshapes, iBUG-68 mapping) from github.com/patrikhuber/eos "
    "share/ @ ce98420; free for non-commercial use only (cvssp.org/facemodel); Huber et al., VISAPP 2016"
)


def _landmark_map(src: Path, mean: np.ndarray) -> np.ndarray:
    """(68,) vertex per 0-based iBUG point; -1 for the jaw contour points (chosen per pose by the fitter).

    The mapping lacks the inner mouth corners (0-based 60, 64): take the vertex nearest to a point a quarter
    of the way from the outer corner to the middle of the upper inner lip.
    """
    table = tomllib.loads(src.joinpath("ibug_to_sfm.txt").read_text())["landmark_mappings"]
    lm = np.full(68, -1, np.int64)
    for k, v in table.items():
        lm[int(k) - 1] = int(v)
    tree = cKDTree(mean)
    for inner, outer in ((60, 48), (64, 54)):
        lm[inner] = tree.query(0.75 * mean[lm[outer]] + 0.25 * mean[lm[62]])[1]
    return lm


def _symmetry(src: Path, mean: np.ndarray) -> np.ndarray:
    """(V,) mirror vertex of each vertex: eos's list (first 845, 1-based) then nearest mirrored vertex of the mean."""
    listed = np.loadtxt(src / "sfm_reference_symmetry.txt", comments="#", usecols=0, dtype=np.int64) - 1
    sym = np.empty(len(mean), np.int64)
    sym[: len(listed)] = listed
    _, nearest = cKDTree(mean).query(mean * np.array([-1.0, 1.0, 1.0]))
    sym[len(listed):] = nearest[len(listed):]
    return sym


def _hull_distance(mean: np.ndarray, lm: np.ndarray, contour_r: np.ndarray, contour_l: np.ndarray) -> np.ndarray:
    """(V,) signed distance (mm, + inside) of each vertex from the frontal landmark hull (jaw contour + brows).

    Why: the renderer takes face texture only inside this region (the model's outer ring lies over hair and
    background in real photos) and fades it out over a few millimetres, so the face edge is soft, not blocky.
    """
    xy = mean[:, :2]
    eye_y = mean[lm[[36, 45]], 1].mean()  # the contour above eye height is temple (hair), not jaw
    contour_r, contour_l = contour_r[mean[contour_r, 1] >= eye_y], contour_l[mean[contour_l, 1] >= eye_y]
    brows = lm[np.arange(26, 16, -1)]  # left outer → right outer
    ring = np.concatenate([contour_r, contour_l[::-1], brows])  # right temple → chin → left temple → brows
    poly = xy[ring]
    inside = PolyPath(poly).contains_points(xy)
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = np.clip(np.einsum("vke,ke->vk", xy[:, None] - a[None], ab) / np.maximum((ab * ab).sum(1), 1e-9), 0, 1)
    dist = np.linalg.norm(xy[:, None] - (a[None] + t[..., None] * ab[None]), axis=2).min(1)
    return np.where(inside, dist, -dist)


def _boundary_loops(tris: np.ndarray) -> list[list[int]]:
    """Closed loops of edges used by one triangle only (the outer rim and the mouth opening)."""
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    adj: dict[int, list[int]] = {}
    for u, v in uniq[count == 1]:
        adj.setdefault(int(u), []).append(int(v))
        adj.setdefault(int(v), []).append(int(u))
    seen: set[int] = set()
    loops = []
    for start in adj:
        if start in seen:
            continue
        loop, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(loop)
    return loops


def _close_mouth(mean: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Add triangles closing the mouth opening (every boundary loop but the outer rim).

    Why: an open mouth must move with the 3D face; through a hole the renderer would show the 2D
    background layer, which folds at large yaw. Triangulated in the frontal projection (a simple polygon).
    """
    from scipy.spatial import Delaunay

    loops = sorted(_boundary_loops(tris), key=len)[:-1]
    extra = []
    for loop in loops:
        idx = np.asarray(loop)
        xy = mean[idx, :2]
        inner = Delaunay(xy).simplices
        centroid = xy[inner].mean(axis=1)
        keep = PolyPath(xy).contains_points(centroid)
        for t in idx[inner[keep]]:
            a, b, c = mean[t]
            if np.cross(b - a, c - a)[2] > 0:  # face the viewer (−z) like the rest of the mesh
                t = t[[0, 2, 1]]
            extra.append(t)
    return np.concatenate([tris, np.asarray(extra, np.int64).reshape(-1, 3)])


def build(src: Path, out: Path) -> Path:
    import eos  # conversion only; not a runtime dependency

    model = eos.morphablemodel.load_model(str(src / "sfm_shape_3448.bin"))
    shape = model.get_shape_model()
    mean = shape.get_mean().reshape(-1, 3) * FLIP_AXES
    n_v = len(mean)
    basis = shape.get_rescaled_pca_basis().reshape(n_v, 3, -1) * FLIP_AXES[None, :, None]  # (V, 3, P) mm per σ
    blends = eos.morphablemodel.load_blendshapes(str(src / "expression_blendshapes_3448.bin"))
    expr = np.stack([b.deformation.reshape(n_v, 3) * FLIP_AXES for b in blends], axis=-1)  # (V, 3, E)
    tris = _close_mouth(mean, np.asarray(shape.get_triangle_list(), np.int64))
    # the camera frame flips two axes (a rotation), so triangle winding is kept
    contours = json.loads((src / "sfm_model_contours.json").read_text())["model_contour"]
    contour_r = np.asarray(contours["right_contour"], np.int64)
    contour_l = np.asarray(contours["left_contour"], np.int64)
    lm = _landmark_map(src, mean)
    sym = _symmetry(src, mean)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        mean=mean.astype(np.float32),
        shape_basis=basis.astype(np.float32),
        expression_basis=expr.astype(np.float32),
        expression_names=np.array([b.name for b in blends]),
        triangles=tris.astype(np.int32),
        landmarks=lm.astype(np.int32),
        contour_right=contour_r.astype(np.int32),
        contour_left=contour_l.astype(np.int32),
        symmetry=sym.astype(np.int32),
        hull_distance=_hull_distance(mean, lm, contour_r, contour_l).astype(np.float32),
        licence=np.array(LICENCE),
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "data" / "sfm_eos")
    ap.add_argument("--out", type=Path, default=ROOT / "gannotate" / "assets" / "sfm_face3d.npz")
    args = ap.parse_args()
    path = build(args.src, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
