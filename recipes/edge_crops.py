"""Faces whose crop extends past the photo: their crop and renders from two datasets of the same input, side by side.

Lists the input's sources whose ``augment`` crop reaches past the photo's edge (most uncovered first) and
draws, per source, its crop as ``augment`` makes it now, then the first renders of each dataset. Usage::

    python recipes/edge_crops.py --input FACES.txt --out docs/results/edge_fill.jpg --sources 4 --renders 3 \\
        "before (edge pixels smeared)=runs/before/dataset.h5" "now (smooth fill)=runs/now/dataset.h5"

Both datasets must be made from ``--input`` (their ``source_index`` follows its sorted keys).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import h5py
import numpy as np

from gannotate.augment import DEFAULT_MARGIN
from gannotate.io.images import write_image
from gannotate.run.sources import find_sources, load_crop


def edge_sources(input_path: Path, size: int, margin: float) -> list[tuple[int, float, np.ndarray]]:
    """(index, uncovered share, crop) of each source whose crop extends past its photo, most uncovered first."""
    sources, _ = find_sources(input_path, 68)
    out = []
    for i, s in enumerate(sources):
        crop = load_crop(s, size, margin)
        if crop.coverage is not None:
            out.append((i, float(1.0 - crop.coverage.mean()), crop.image))
    return sorted(out, key=lambda t: -t[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", help="LABEL=DATASET.h5, one column block each")
    ap.add_argument("--input", type=Path, required=True, help="the datasets' augment --input")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--renders", type=int, default=3, help="renders per source and dataset")
    args = ap.parse_args()
    sets = []
    for spec in args.datasets:
        label, _, path = spec.partition("=")
        f = h5py.File(path, "r")
        sets.append((label, f))
    size = int(sets[0][1].attrs["image_size"])
    found = edge_sources(args.input, size, float(sets[0][1].attrs.get("crop_margin", DEFAULT_MARGIN)))
    print(f"{len(found)} source(s) with a crop past the photo; uncovered share, largest: "
          + ", ".join(f"#{i} {share:.0%}" for i, share, _ in found[: args.sources]))
    gap = np.full((size, 6, 3), 255, np.uint8)
    rows = []
    for i, _, crop in found[: args.sources]:
        cells = [crop, gap]
        for _, f in sets:
            idx = np.flatnonzero(f["source_index"][:] == i)[: args.renders]
            cells += [f["images"][j] for j in idx] + [np.full((size, size, 3), 255, np.uint8)] * (args.renders - len(idx))
            cells.append(gap)
        rows.append(np.concatenate(cells[:-1], 1))
    bar = np.full((22, rows[0].shape[1], 3), 255, np.uint8)
    x = size + 6
    cv2.putText(bar, "crop", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for label, _ in sets:
        cv2.putText(bar, label, (x + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += args.renders * size + 6
    print(write_image(args.out, np.concatenate([bar] + rows)))


if __name__ == "__main__":
    main()
