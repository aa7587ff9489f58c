"""Recipe: the detector payoff behind the README's headline, as it was run (resumable; ~3 h on 2 cores).

One split of the shared 300W photos (``gannotate.payoff``: photos with a face turned ≥ 28° are
test-only, the shipped detector's 69 validation faces a second test set); three experiments whose
runs share one pool of ``--jobs`` processes, the costliest last:

* S1 *frontal* (training faces below 20°): real only vs real + profile renders at ±45° and ±60°
  (mixed batches, half real), seeds 0–2;
* S3 *few50* (50 of those faces): real only vs real + profile ±45° (mixed), seeds 0–2;
* S1 real only at twice the steps, seed 0 (``OUT/budget<2·steps>``): is real-only converged?
* S1 with the pretrain→fine-tune recipe at ±45°, seed 0 (twice the compute of a run);
* S1 with ±45° renders from the nearer side through the quality gate (``augment``'s defaults), seeds 0–1.

Then it scores every complete run (``gannotate evaluate payoff --no-train`` scores any subset again).

Usage::

    python recipes/payoff.py --out outputs/payoff --jobs 2
    gannotate evaluate payoff --real ../shared/data/300w_afw_helen_spinkoo/image_for_pts.txt \\
        --root ../shared/data/300w_afw_helen_spinkoo/images --renderers profile --ranges 45,60 \\
        --recipes mixed,pretrain --out outputs/payoff --no-train          # the S1 table alone
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from gannotate.payoff import PayoffConfig, prepare
from gannotate.payoff.protocol import arms_of, plan_jobs, run_dir, train_jobs
from gannotate.metrics.payoff import score_experiment

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "300w_afw_helen_spinkoo"


def experiments(out: Path, steps: int) -> list[PayoffConfig]:
    base = PayoffConfig(real=DATA / "image_for_pts.txt", root=DATA / "images", out=out, scenarios=("frontal",),
                        renderers=("profile",), ranges=(45.0, 60.0), recipes=("mixed", "pretrain"),
                        arms=("profile±45", "profile±60"), seeds=(0, 1, 2), steps=steps)
    return [base,
            replace(base, scenarios=("few50",), arms=("profile±45",)),
            # is real-only converged at `steps`? the same run at twice the steps (its own folder)
            replace(base, out=out / f"budget{2 * steps}", renderers=(), arms=(), seeds=(0,), steps=2 * steps),
            replace(base, arms=("profile±45 pretrain",), seeds=(0,)),
            # the same ±45° renders from the nearer side, gated (augment's defaults when the quality gate came,
            # before --turn mixed)
            replace(base, ranges=(45.0,), gate=True, turn="shape-model", enclose=False, arms=("profile±45 gated",),
                    seeds=(0, 1))]


def turned_figure(test_list: Path, arms: dict[str, Path], path: Path, n: int = 6, cell: int = 192, per_row: int = 3) -> Path:
    """The ``n`` most turned test faces, ``per_row`` faces a row, one tile per arm: its prediction and NME."""
    import cv2
    import numpy as np

    from gannotate.detector.data import crop_transform_for_points, iter_annotated
    from gannotate.detector.predict import Detector
    from gannotate.metrics import yaw_of
    from gannotate.landmarks import IBUG68, nme
    from gannotate.preview import contact_sheet

    faces = list(iter_annotated(test_list, IBUG68, []))
    yaw = np.abs(yaw_of(np.stack([p for _, _, p in faces])))
    dets = {name: Detector.load(ckpt) for name, ckpt in arms.items()}
    images, points, labels = [], [], []
    for i in np.argsort(-yaw)[:n]:
        _, image, truth = faces[i]
        crop = crop_transform_for_points(truth, cell, 0.25)
        tile = crop.warp(image, cell)
        for name, det in dets.items():
            pred = det.predict_from_points([image], truth[None])[0]
            images.append(tile)
            points.append(crop.apply(pred))
            labels.append(f"{yaw[i]:.0f}deg {name}: {float(nme(pred, truth)):.1f}")
    sheet = contact_sheet(images, points, ncols=len(dets) * per_row, cell=cell, labels=labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("outputs/payoff"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--no-train", action="store_true", help="only score the complete runs")
    ap.add_argument("--figure", type=Path, default=None,
                    help="only draw the most turned test faces read by real-only and by real + profile ±45 (seed 0)")
    args = ap.parse_args()
    if args.figure:
        runs = args.out / "runs" / "frontal"
        turned_figure(args.out / "split" / "test_turned.txt", {"real": runs / "real" / "seed0" / "checkpoint.pt",
                      "+gen": runs / "profile_pm45" / "seed0" / "checkpoint.pt"}, args.figure)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    exps = experiments(args.out, args.steps)
    # one split and one set of generated data for all (the budget check only needs the split)
    generate = not args.no_train
    preps = [prepare(replace(c, scenarios=("frontal", "few50")), generate) for c in (exps[0], exps[2], exps[4])]
    prep_of = [preps[1] if c.out != args.out else preps[2] if c.gate else preps[0] for c in exps]
    if not args.no_train:
        train_jobs([j for c, p in zip(exps, prep_of) for j in plan_jobs(c, p)], args.jobs)
    for steps, group in ((args.steps, [c for c in exps if c.out == args.out]), (2 * args.steps, [exps[2]])):
        runs = {(s, a.name, seed): run_dir(c, s, a, seed) / "checkpoint.pt"
                for c in group for s in c.scenarios for a in arms_of(c) for seed in c.seeds}
        score_experiment(runs, preps[0].test_lists, group[0].out, steps)
    print((args.out / "payoff.md").read_text())


if __name__ == "__main__":
    main()
