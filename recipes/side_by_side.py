"""The same samples of datasets that differ by one option, side by side: a before/after picture of a change.

Datasets made from the same faces with the same ``--seed`` and ``--n`` plan the same slots; a row here is
one (face, slot) present in every dataset (a gate may have dropped a slot in one of them), one column
per dataset. Slots are taken at ``--min-yaw ≤ |yaw| ≤ --max-yaw``, evenly over the faces, or with
``--most-changed`` where the first two columns differ most (one slot a face: where a change acts). Usage::

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


def _most_changed(common: list, readers: list, slots: list, rows: int) -> list:
    """Up to ``rows`` slots, one per face, whose images in the two datasets differ most (mean |Δ|)."""
    diff = {k: float(np.abs(readers[0].images[slots[0][k]].astype(np.float32) - readers[1].images[slots[1][k]]).mean())
            for k in common}
    best: dict[int, tuple[float, tuple[int, int]]] = {}
    for k, d in diff.items():
        if k[0] not in best or d > best[k[0]][0]:
            best[k[0]] = (d, k)
    return sorted(k for _, k in sorted(best.values(), reverse=True)[:rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("columns", nargs="+", help="LABEL=DATASET.h5, one per column")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--min-yaw", type=float, default=40.0)
    ap.add_argument("--max-yaw", type=float, default=180.0, help="slots of |yaw| up to this only")
    ap.add_argument("--cell", type=int, default=128)
    ap.add_argument("--per-row", type=int, default=1, help="(face, slot) groups side by side in one row of the sheet")
    ap.add_argument("--landmarks", action="store_true", help="draw each sample's landmarks")
    ap.add_argument("--most-changed", action="store_true",
                    help="the slots whose first two columns differ most (one per face), not evenly spaced faces")
    args = ap.parse_args()
    labels, readers = [], []
    for col in args.columns:
        label, _, path = col.partition("=")
        labels.append(label)
        readers.append(DatasetReader(path))
    try:
        slots = [_slots(r) for r in readers]
        yaw = readers[0].pose[:, 0]
        common = sorted(k for k, i in slots[0].items()
                        if args.min_yaw <= abs(yaw[i]) <= args.max_yaw and all(k in s for s in slots[1:]))
        if args.most_changed:
            chosen = _most_changed(common, readers[:2], slots[:2], args.rows)
        else:
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
