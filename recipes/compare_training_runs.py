"""Stack the loss curves of several training runs into one figure (pixel term against copying).

    python recipes/compare_training_runs.py outputs/train/small outputs/train/b2 --out docs/training_curve.png

Each run gets one block of panels: the pixel term with ``Ref/pix_copy`` (what copying the input
scores on the same batches) drawn beside it, then the triple- and self-consistency terms. A run
whose pixel curve sits on its reference has learned to copy; one below it follows the heatmaps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gannotate.io.images import write_image
from gannotate.training.curves import draw_curves, read_stats

KEYS = ("Loss/G/pix", "Loss/G/triple", "Loss/G/self")
REFERENCES = {"Loss/G/pix": "Ref/pix_copy"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (each with stats.jsonl)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--labels", nargs="*", default=None, help="one title per run (default: the folder name)")
    ap.add_argument("--window", type=int, default=10, help="rows in the trailing mean")
    args = ap.parse_args()
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        ap.error(f"{len(labels)} labels for {len(args.runs)} runs")
    blocks = [draw_curves(read_stats(run / "stats.jsonl"), KEYS, references=REFERENCES, title=label,
                          window=args.window) for run, label in zip(args.runs, labels)]
    write_image(args.out, np.concatenate(blocks, axis=0))
    print(args.out)


if __name__ == "__main__":
    main()
