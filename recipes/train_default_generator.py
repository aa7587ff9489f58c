"""Rebuild the shipped generator: a refiner over the profile render, trained on render-and-back and clip pairs.

    python recipes/train_default_generator.py --data ../shared/data --time-budget 90 [--ship]
    python recipes/train_default_generator.py --renderer warp --run-dir outputs/refine/warp   # the warp-based arm

Steps (each one a library call):
  1. split the AFW/Helen photos by photo exactly as the detector recipe does (val 15 %, seed 0) —
     validation photos never train the refiner, so evaluations on them are honest;
  2. build the pairs file (``gannotate.training.pairs``) with the base renderer if it is missing;
  3. train the refiner with resume into the run folder for the time budget (checkpoints as it goes);
  4. export G_ema (fp16, ``GeneratorMeta`` kind "refine") to RUN/generator.pt, draw RUN/curves.png,
     and with ``--ship`` copy it to gannotate/assets/generator_refine.pt.
Run it again to continue the same run exactly (``--preset refine-gpu`` on a CUDA machine).

The shipped file was built in two calls (2,014 steps in all, about 2.5 h on 2 cores): 1,414 steps with
the first critic (spectral norm, DiffAugment: it turned out blind, see docs/results/refiner.md), then 600 with
the fixed critic from that generator; the exported weights are the EMA::

    python recipes/train_default_generator.py --preset refine-v1 --max-steps 1414 --time-budget 0 \
        --run-dir outputs/refine/refine_profile
    python recipes/train_default_generator.py --init-from outputs/refine/refine_profile/checkpoint.pt \
        --max-steps 2014 --time-budget 0 --run-dir outputs/refine/ft_triple --weights ema --ship
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from gannotate.detector.data import split_by_photo
from gannotate.render.gan import SHIPPED_GENERATOR
from gannotate.training.curves import draw_curves, read_stats
from gannotate.training.pairs import PairConfig, build_pairs, load_clip_frames, load_photo_crops
from gannotate.training.config import REFINE_PRESETS
from gannotate.training.refine import export_refiner, heldout_probe, train_refiner

CURVE_KEYS = ("Loss/G/pix", "Loss/G/triple", "Loss/G/self", "Loss/G/perceptual", "Loss/G/adv", "Mask/invalid",
              "Probe/l1", "Loss/D/accuracy")
CURVE_REFERENCES = {"Loss/G/pix": "Ref/pix_render", "Probe/l1": "Probe/l1_render"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    ap.add_argument("--renderer", default="profile", help="base renderer (geometric): profile or warp")
    ap.add_argument("--pairs", type=Path, default=None, help="pairs file [default: outputs/refine/pairs_<renderer>.h5]")
    ap.add_argument("--preset", choices=sorted(REFINE_PRESETS), default="refine")
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--time-budget", type=float, default=90.0, help="minutes of training in this call (0: no limit)")
    ap.add_argument("--init-from", type=Path, default=None, help="start from another run's checkpoint (fresh critic)")
    ap.add_argument("--weights", choices=("ema", "raw"), default="ema", help="which generator weights to export")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--pairs-per-clip", type=int, default=60)
    ap.add_argument("--per-photo", type=int, default=3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--jobs", type=int, default=1, help="processes building pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ship", action="store_true", help="copy the exported generator into gannotate/assets/")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    pairs = args.pairs or Path("outputs/refine") / f"pairs_{args.renderer}.h5"
    run_dir = args.run_dir or Path("outputs/refine") / f"{args.preset}_{args.renderer}"
    if not pairs.is_file():
        photos_dir = args.data / "300w_afw_helen_spinkoo"
        train_faces, _ = split_by_photo(photos_dir / "image_for_pts.txt", photos_dir / "images", 0.15, 0)
        pcfg = PairConfig(renderer=args.renderer, per_photo=args.per_photo, pairs_per_clip=args.pairs_per_clip, seed=args.seed)
        photos = load_photo_crops(train_faces, pcfg.size, pcfg.margin)
        clips = load_clip_frames(args.data / "videos_300vw_style", pcfg.frames_per_clip)
        build_pairs(pairs, photos, clips, pcfg, n_jobs=args.jobs)
    cfg = replace(REFINE_PRESETS[args.preset], seed=args.seed)
    res = train_refiner(cfg, pairs, run_dir, max_steps=args.max_steps, time_budget_min=args.time_budget or None,
                        resume=True, device=args.device, init_from=args.init_from)
    command = " ".join(["python"] + [shlex.quote(a) for a in sys.argv])
    info = {"command": command, "probe_heldout": heldout_probe(res.checkpoint, pairs, args.device or "cpu")}
    gen = export_refiner(res.checkpoint, run_dir / "generator.pt", info=info, weights=args.weights)
    stats = read_stats(run_dir / "stats.jsonl")
    draw_curves(stats, [k for k in CURVE_KEYS if k in stats], run_dir / "curves.png", references=CURVE_REFERENCES)
    if args.ship:
        shutil.copyfile(gen, SHIPPED_GENERATOR)
    print(json.dumps({"step": res.step, "stopped_by": res.stopped_by, "probe": res.probe, "generator": str(gen),
                      "shipped": str(SHIPPED_GENERATOR) if args.ship else None}, indent=2))


if __name__ == "__main__":
    main()
