"""Rebuild the shipped shape model and generic 3D face from ../shared/data.

    python recipes/build_shape_model.py --data ../shared/data [--degree 2] [--variance 0.95]

Writes shape_model/data/mean_face_3d_68.txt (first: the model's training poses depend on it) and
shape_model/data/pdm_ibug68.npz (provenance inside). Same inputs give the same model.
"""

from __future__ import annotations

import argparse
import logging
import sys

from shape_model.build import DEFAULT_MODEL_PATH
from shape_model.shipped import build_default_model, derive_mean_face_3d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--out", default=str(DEFAULT_MODEL_PATH), help="model .npz to write")
    ap.add_argument("--degree", type=int, default=3, help="polynomial degree of the yaw/pitch basis")
    ap.add_argument("--variance", type=float, default=0.95, help="residual variance the modes must explain")
    ap.add_argument("--keep-face3d", action="store_true", help="do not re-derive the generic 3D face")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.keep_face3d:
        derive_mean_face_3d(args.data)
    model = build_default_model(
        args.data, args.out, pose_degree=args.degree, variance=args.variance, command=" ".join(["python"] + sys.argv)
    )
    logging.info("wrote %s: %r", args.out, model)


if __name__ == "__main__":
    main()
