"""The worst samples of several datasets, one labelled row each: a before/after picture of the quality gate.

Each row is ``gannotate preview DATASET --worst N`` (lowest :func:`gannotate.metrics.quality.quality`
first, labelled ``#row yaw° q``). Usage::

    python recipes/worst_samples.py --out docs/quality_worst.png --n 8 --cell 80 \\
        "before (source side, no gate)=runs/before/dataset.h5" "nearer side + gate 0.5=runs/gated/dataset.h5"
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from gannotate.io.images import read_image, write_image
from gannotate.preview import preview_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="+", help="LABEL=DATASET.h5, one per row")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=8, help="samples per row")
    ap.add_argument("--cell", type=int, default=80)
    args = ap.parse_args()
    sheets = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(args.rows):
            label, _, path = row.partition("=")
            png = preview_dataset(path, Path(tmp) / f"{i}.png", n=args.n, ncols=args.n, cell=args.cell, worst=True)
            sheet = read_image(png)
            bar = np.full((22, sheet.shape[1], 3), 255, np.uint8)
            cv2.putText(bar, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            sheets.append(np.concatenate([bar, sheet]))
    width = max(s.shape[1] for s in sheets)
    sheets = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    print(write_image(args.out, np.concatenate(sheets)))


if __name__ == "__main__":
    main()
