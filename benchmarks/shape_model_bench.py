"""Shape-model measurements: reconstruction NME, yaw calibration, linear vs polynomial pose, speed.

    python benchmarks/shape_model_bench.py [--data ../shared/data] [--quick]

"yaw calibration" (issue 13 item 5): mean-shape targets at yaw 0, ±15, ±30, ±45, ±60 read by our
estimator and two independent ones (a BFM-68 affine-camera fit, the Surrey Face Model fit of
``shape_model.face3d``), next to what each estimator reads on real AFLW2000-3D faces (odd half) of
known yaw, and the targets' readings mapped back to the label scale through that curve (table on
stderr, numbers in the JSON).

Prints one JSON object and writes benchmarks/results/shape_model.json. Accuracy parts need
../shared/data (skipped without it); speed runs on the shipped model with one BLAS thread
(the machine is shared: the load average is recorded next to the timings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import platform
import time
from pathlib import Path

import numpy as np

from shape_model.build import build_model, load_model, model_sha256
from shape_model.datasets import aflw2000_split, load_test_shapes, load_training_shapes, read_aflw2000
from shape_model.ibug68 import OUTER_EYE_CORNERS
from shape_model.plausibility import is_plausible
from shape_model.params import Params
from shape_model.pose import estimate_pose
from shape_model.yaw_check import bfm68_pose, load_bfm68, reading_curve, to_label_scale

RESULTS = Path(__file__).resolve().parent / "results" / "shape_model.json"
SFM_NPZ = Path(__file__).resolve().parents[1] / "gannotate" / "assets" / "sfm_face3d.npz"
TARGET_YAWS = (-60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0)
BINS = (0, 15, 30, 45, 60)


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean NME in percent, normalised by the outer-eye-corner distance (300W / HRNet)."""
    iod = np.linalg.norm(gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return float(100 * np.mean(np.linalg.norm(pred - gt, axis=-1).mean(-1) / iod))


def yaw_bins(pred: np.ndarray, label: np.ndarray) -> dict:
    """MAE per |label| bin of 15°, and over |yaw| <= 60°."""
    out = {}
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (np.abs(label) >= lo) & (np.abs(label) < hi if hi < 60 else np.abs(label) <= hi)
        out[f"{lo}-{hi}"] = {"n": int(sel.sum()), "mae_deg": round(float(np.mean(np.abs(pred[sel] - label[sel]))), 2)}
    sel = np.abs(label) <= 60
    out["all_le_60"] = {"n": int(sel.sum()), "mae_deg": round(float(np.mean(np.abs(pred[sel] - label[sel]))), 2)}
    return out


def accuracy(model, data: Path) -> dict:
    test = load_test_shapes(data)
    shapes, yaw = read_aflw2000(data / "aflw2000_3d_3ddfa")
    _, odd = aflw2000_split(len(shapes))
    angles = np.arange(-45.0, 46.0, 15.0)
    zeros = np.zeros_like(angles)
    est = estimate_pose(model.shapes_in_model_frame(angles, zeros, np.zeros((len(angles), model.n_expression))))
    raw = {}
    for y in (0.0, 45.0):
        p = model.sample(0, 4000, yaw_range=(y, y), plausible_only=False)
        raw[f"yaw_{y:g}"] = round(float(is_plausible(model.instances(p), p.yaw).mean()), 4)
    return {
        "n_expression": model.n_expression,
        "pose_degree": model.pose_degree,
        "reconstruction_nme_pct": {k: round(nme(model.instances(model.fit(v)), v), 3) for k, v in test.items()},
        "instance_yaw_to_estimate_pose": {f"{a:g}": round(float(e), 2) for a, e in zip(angles, est[:, 0])},
        "instance_yaw_max_abs_error_deg": round(float(np.abs(est[:, 0] - angles).max()), 2),
        "aflw2000_odd_half_fitted_yaw": yaw_bins(model.fit(shapes[odd]).yaw, yaw[odd]),
        "aflw2000_odd_half_estimate_pose": yaw_bins(estimate_pose(shapes[odd])[:, 0], yaw[odd]),
        "raw_plausible_fraction": raw,
    }


def compare_degrees(data: Path) -> dict:
    shapes, valid, _ = load_training_shapes(data)
    out = {}
    for degree in (1, 2, 3):
        m = build_model(shapes, pose_degree=degree, contour_valid=valid)
        a = accuracy(m, data)
        out[f"degree_{degree}"] = {
            "n_expression": a["n_expression"],
            "nme_common": a["reconstruction_nme_pct"]["common"],
            "nme_challenging": a["reconstruction_nme_pct"]["challenging"],
            "instance_yaw_max_abs_error_deg": a["instance_yaw_max_abs_error_deg"],
            "aflw2000_fitted_yaw_mae_le_60": a["aflw2000_odd_half_fitted_yaw"]["all_le_60"]["mae_deg"],
            "raw_plausible_yaw45": a["raw_plausible_fraction"]["yaw_45"],
        }
    return out


def _estimators(data: Path) -> dict:
    """name -> function (N, 68, 2) -> (N,) yaw: ours, the BFM-68 fit, the SFM fit (inner points / all 68)."""
    bfm = load_bfm68(data / "bfm68_pdm_3ddfa")
    out = {
        "ours (weak persp., generic face)": lambda x: estimate_pose(x)[:, 0],
        "BFM-68 affine fit (pts 17-67)": lambda x: bfm68_pose(x, bfm)[:, 0],
    }
    if SFM_NPZ.exists():
        from shape_model.face3d import FitConfig, fit_face3d, load_face3d
        from shape_model.pose import rotation_to_euler

        sfm = load_face3d(SFM_NPZ)

        def sfm_yaw(x: np.ndarray, cfg: FitConfig) -> np.ndarray:
            return rotation_to_euler(np.stack([fit_face3d(sfm, p, cfg).rotation for p in x]))[:, 0]

        out["SFM fit (pts 17-67)"] = lambda x: sfm_yaw(x, FitConfig(jaw_weight=0.0))
        out["SFM fit (68, jaw marching)"] = lambda x: sfm_yaw(x, FitConfig())
    return out


def yaw_calibration(model, data: Path) -> dict:
    """Per target yaw, the yaw read by independent estimators, raw and on the AFLW2000-3D label scale."""
    shapes, label = read_aflw2000(data / "aflw2000_3d_3ddfa")
    _, odd = aflw2000_split(len(shapes))
    real, label = shapes[odd], label[odd]
    angles = np.asarray(TARGET_YAWS)
    n, z = len(angles), np.zeros(len(angles))
    targets = np.asarray(
        model.instances(Params(np.full(n, 100.0), z, z + 200, z + 200, angles, z, np.zeros((n, model.n_expression)))),
        np.float64,
    )
    out: dict = {"target_yaw": [float(a) for a in angles], "estimators": {}}
    for name, fn in _estimators(data).items():
        curve = reading_curve(fn(real), label)
        read = fn(targets)
        out["estimators"][name] = {
            "reads_real_faces_labelled_15_30_45_60": [round(float(v), 1) for v in np.interp([15, 30, 45, 60], *curve)],
            "reads_targets": [round(float(v), 1) for v in read],
            "targets_on_label_scale": [round(float(v), 1) for v in to_label_scale(read, curve)],
        }
    out["note"] = (
        "real faces: AFLW2000-3D odd half (1000), labels = 3DDFA's fitted yaw; mean-shape targets, pitch 0; "
        "label scale = the |label| whose real faces this estimator reads, on average, as it reads the target"
    )
    lines = ["yaw calibration: target | " + " | ".join(out["estimators"]) + "  (raw reading -> label scale)"]
    for i, a in enumerate(angles):
        cells = [
            f"{e['reads_targets'][i]:6.1f} -> {e['targets_on_label_scale'][i]:6.1f}" for e in out["estimators"].values()
        ]
        lines.append(f"{a:6.0f} | " + " | ".join(cells))
    lines.append("same estimators on real faces labelled 15/30/45/60: " + "; ".join(
        f"{k}: {v['reads_real_faces_labelled_15_30_45_60']}" for k, v in out["estimators"].items()))
    print("\n".join(lines), file=sys.stderr)
    return out


def speed(model, n: int = 10_000, repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    pts = model.instances(model.sample(rng, n, yaw_range=(-60, 60), pitch_range=(-20, 20), plausible_only=False))
    pts = pts + rng.normal(0, 0.01, pts.shape).astype(np.float32)

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    t_fit = best(lambda: model.fit(pts))
    n_s = 10 * n
    t_raw = best(lambda: model.instances(model.sample(rng, n_s, plausible_only=False)))
    t_pl = best(lambda: model.instances(model.sample(rng, n_s, plausible_only=True)))
    return {
        "fits_per_s": round(n / t_fit),
        "samples_per_s": round(n_s / t_raw),
        "samples_per_s_with_plausibility_redraw": round(n_s / t_pl),
        "batch_fit": n,
        "batch_sample": n_s,
        "timing": f"best of {repeats}, one BLAS thread",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--quick", action="store_true", help="skip the linear-vs-polynomial rebuilds")
    args = ap.parse_args()
    model = load_model()
    result: dict = {"model_sha256": model_sha256(), "n_expression": model.n_expression}
    result["pose_degree"] = model.pose_degree
    result["explained_variance"] = model.provenance.get("explained_variance")
    if args.data.is_dir():
        result["shipped"] = accuracy(model, args.data)
        result["yaw_calibration"] = yaw_calibration(model, args.data)
        if not args.quick:
            result["pose_basis_degree_comparison"] = compare_degrees(args.data)
    else:
        result["shipped"] = f"skipped: {args.data} not found"
    result["speed"] = speed(model)
    text = json.dumps(result, indent=2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
