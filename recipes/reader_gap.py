"""How much worse does a reader read renders than real photos, and is that the renders or the reader?

The issue's goal compares dlib's NME on renders with its NME on real photos of the same yaw. dlib's
predictor was trained on 300-W (AFW, Helen, LFPW, iBUG, mirrored), which holds every photo we have
images for, so a second reader that never saw those photos nor any render is read beside it: the payoff's
real-only detectors (trained on 262 frontal photos of the payoff split, none of the validation faces).
Both read with the truth's landmark box (dlib only the faces it finds), per |yaw| bin.

    python recipes/reader_gap.py --dataset outputs/rt16/profile_defaults/dataset.h5 \\
        --real outputs/payoff/split/test_val.txt outputs/payoff/split/test_turned.txt \\
        --detector outputs/payoff/runs/frontal/real/seed{0,1,2}/checkpoint.pt
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gannotate.augment import DEFAULT_MARGIN
from gannotate.detector.predict import Detector
from gannotate.io.folders import Failure
from gannotate.io.hdf5 import DatasetReader
from gannotate.landmarks import nme
from gannotate.metrics.independent import DlibReader, find_predictor
from gannotate.metrics.yaw import yaw_of
from gannotate.run.sources import find_sources, load_crop

RENDER_BINS = (0, 15, 30, 45)  # the dataset's slot yaws (a grid of 15°), each against the real bin it opens
REAL_BINS = {0: (0, 15), 15: (15, 30), 30: (30, 45)}


def _real(lists: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sources = [s for faces in lists for s in find_sources(faces, 68, False)[0]]
    crops = [c for c in (load_crop(s, 128, DEFAULT_MARGIN, 1.0) for s in sources) if not isinstance(c, Failure)]
    truth = np.stack([c.points for c in crops]).astype(np.float32)
    return np.stack([c.image for c in crops]), truth, np.abs(np.asarray(yaw_of(truth)))


def _cell(err: np.ndarray) -> dict[str, float]:
    return {"n": int(len(err)), "median": round(float(np.median(err)), 2), "mean": round(float(np.mean(err)), 2)}


Reader = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]  # (images, truth) → (points, found)


def gaps(images: np.ndarray, truth: np.ndarray, yaw: np.ndarray, real_images: np.ndarray, real_truth: np.ndarray,
         real_yaw: np.ndarray, read: Reader) -> dict[str, dict]:
    """Per render bin: the reader's NME on renders and on real photos of that yaw, and their ratio (medians)."""
    pred, ok = read(images, truth)
    rpred, rok = read(real_images, real_truth)
    slot = np.round(yaw / 15.0) * 15.0
    out = {}
    for b in RENDER_BINS:
        m = (slot == b) & ok
        row = {"renders": _cell(nme(pred[m], truth[m]))}
        if b in REAL_BINS:
            lo, hi = REAL_BINS[b]
            r = (real_yaw >= lo) & (real_yaw < hi) & rok
            row["real"] = _cell(nme(rpred[r], real_truth[r]))
            row["ratio"] = round(row["renders"]["median"] / row["real"]["median"], 2)
        out[f"{b}°"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="an augment dataset of the held-out faces")
    ap.add_argument("--real", type=Path, nargs="+", required=True,
                    help="real photos (folders or list files): the same faces, and turned ones for the 30-45° bin")
    ap.add_argument("--detector", type=Path, nargs="*", default=[], help="never-trained readers (checkpoints)")
    args = ap.parse_args()
    with DatasetReader(args.dataset) as r:
        images, truth = np.asarray(r.images), np.asarray(r.landmarks, np.float32)
        yaw = np.abs(np.asarray(r.pose[:, 0]))
    real = _real(args.real)
    dlib = DlibReader(find_predictor())
    table = {"dlib": gaps(images, truth, yaw, *real, dlib.read)}
    for path in args.detector:
        det = Detector.load(path)
        table[str(path)] = gaps(images, truth, yaw, *real,
                                lambda im, t, d=det: (d.predict_from_points(list(im), t), np.ones(len(im), bool)))
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
