"""The same samples of datasets that differ by one option, side by side: a before/after picture of a change.

Datasets made from the same faces with the same ``--seed`` and ``--n`` plan the same slots; a row here is
one (face, slot) present in every dataset (a gate may have dropped a slot in one of them), one column
per dataset. Slots are taken at ``|yaw| ≥ --min-yaw``, evenly over the faces. Usage::

    python recipes/side_by_side.py --out docs/turn_45.png --min-yaw 40 --rows 8 --cell 128 \\
        "shape-model=runs/shape/dataset.h5" "mixed=runs/mixed/dataset.h5"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gannotate.io.hdf5 import DatasetReader
from gannotate.io.images import write_image
from gannotate.preview import contact_sheet


def _slots(reader: DatasetReader) -> dict[tuple[int, int], int]:
    """(source index, target index) → row."""
    return {(int(s), int(t)): i for i, (s, t) in enumerate(zip(reader.source_index, reader.target_index))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("columns", nargs="+", help="LABEL=DATASET.h5, one per column")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--min-yaw", type=float, default=40.0)
    ap.add_argument("--cell", type=int, default=128)
    ap.add_argument("--per-row", type=int, default=1, help="(face, slot) groups side by side in one row of the sheet")
    ap.add_argument("--landmarks", action="store_true", help="draw each sample's landmarks")
    args = ap.parse_args()
    labels, readers = [], []
    for col in args.columns:
        label, _, path = col.partition("=")
        labels.append(label)
        readers.append(DatasetReader(path))
    try:
        slots = [_slots(r) for r in readers]
        yaw = readers[0].pose[:, 0]
        common = sorted(k for k, i in slots[0].items() if abs(yaw[i]) >= args.min_yaw and all(k in s for s in slots[1:]))
        faces = sorted({k[0] for k in common})
        pick_faces = set(faces[:: max(len(faces) // args.rows, 1)][: args.rows])
        chosen = [next(k for k in common if k[0] == f) for f in sorted(pick_faces)]
        images, points, text = [], [], []
        for key in chosen:
            for label, r, s in zip(labels, readers, slots):
                i = s[key]
                images.append(r.images[i])
                points.append(r.landmarks[i])
                text.append(f"{label} {r.pose[i, 0]:+.0f}")
        sheet = contact_sheet(images, points if args.landmarks else None, ncols=len(readers) * args.per_row,
                              cell=args.cell, labels=text)
        print(write_image(args.out, sheet))
    finally:
        for r in readers:
            r.close()


if __name__ == "__main__":
    main()
