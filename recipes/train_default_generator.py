"""Train (or continue) the default generator from ../shared/data, export it, and draw its curves.

    python recipes/train_default_generator.py --data ../shared/data --preset paper --time-budget 25
    python recipes/train_default_generator.py --preset small --time-budget 30 --identity none   # CPU

Steps (each one a library call):
  1. build the training cache cache/train.h5 if it is missing (AFW/Helen photos + 300-VW-style clips);
  2. train with ``--resume`` into outputs/train/<preset>/ for the time budget (stops with a checkpoint);
  3. export the generator (models/checkpoint format, with metadata) to outputs/train/<preset>/generator.pt;
  4. draw the pixel / triple / self / D curves to outputs/train/<preset>/curves.png.
Run it again to continue the same run exactly. On a GPU machine carry cache/ along (only the
repository tree travels there).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import torch

from gannotate.training.cache import prepare_cache
from gannotate.training.config import PRESETS, get_preset
from gannotate.training.curves import draw_curves, read_stats
from gannotate.training.trainer import export_generator, train

CURVE_KEYS = ("Loss/G/pix", "Loss/G/triple", "Loss/G/self", "Loss/G/perceptual", "Loss/G/adv", "Loss/D/total")
CURVE_REFERENCES = {"Loss/G/pix": "Ref/pix_copy"}  # the pixel term of copying the input, same batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    ap.add_argument("--cache", type=Path, default=Path("cache/train.h5"))
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--time-budget", type=float, default=25.0, help="minutes of training in this call")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--identity", choices=["sface", "none"], default="sface")
    ap.add_argument("--perceptual", choices=["vgg19", "sface", "none"], default="vgg19",
                    help="vgg19 needs --vgg19-weights; sface is the offline stand-in")
    ap.add_argument("--vgg19-weights", default=None)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (shared machines: keep it low)")
    ap.add_argument("--seed", type=int, default=0, help="seeds initialisation and every batch")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    if not args.cache.is_file():
        shared = args.data
        prepare_cache(args.cache, photos=shared / "300w_afw_helen_spinkoo/image_for_pts.txt",
                      photos_root=shared / "300w_afw_helen_spinkoo/images", videos=shared / "videos_300vw_style",
                      command="recipes/train_default_generator.py")
    cfg = get_preset(args.preset, batch_size=args.batch_size, perceptual_weights=args.vgg19_weights, seed=args.seed)
    cfg = replace(cfg, identity_net=None if args.identity == "none" else args.identity,
                  perceptual_net=None if args.perceptual == "none" else args.perceptual)
    run_dir = args.run_dir or Path("outputs/train") / args.preset
    res = train(cfg, run_dir, args.cache, max_steps=args.max_steps, time_budget_min=args.time_budget, resume=True)
    export_generator(res.checkpoint, run_dir / "generator.pt")
    draw_curves(read_stats(run_dir / "stats.jsonl"), CURVE_KEYS, run_dir / "curves.png", references=CURVE_REFERENCES,
                title=f"{args.preset}: step {res.step} ({res.stopped_by})")
    print(f"step {res.step} ({res.stopped_by}); {run_dir / 'generator.pt'}; {run_dir / 'curves.png'}")


if __name__ == "__main__":
    main()
