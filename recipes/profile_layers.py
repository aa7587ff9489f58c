"""Recipe: look inside a profile render — its three layers and their weights, one row per sample.

A profile render is ``lookup(geometry)`` of three layers (direct texture, mirrored texture, background
warp) blended by per-pixel weights. When a render breaks, this shows which layer put the wrong pixels
there. Each row: source crop | render (targets in green) | direct layer | mirror layer | background
layer | weights as colour (red direct, green mirror, blue background; dark = the low-pass fill).
Usage::

    python recipes/profile_layers.py DATASET.h5 --input FACES --rows 34,25 --out layers.png

``DATASET.h5`` is a profile ``augment`` run of ``--input`` (same ``--size``, default margin); each row
is re-rendered from its source side (``mirrored`` honoured) with the current code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from gannotate.io.hdf5 import DatasetReader
from gannotate.io.images import write_image
from gannotate.render.base import Geometry, lookup
from gannotate.render.profile import ProfileRenderer
from gannotate.run.gate import side_of
from gannotate.run.sources import DEFAULT_MARGIN, find_sources, load_crop

LABELS = ("source", "render", "direct", "mirror", "background", "weights")


def layer_row(renderer: ProfileRenderer, image: np.ndarray, points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, 6·W, 3) uint8: the source, the render and each layer alone, and the weights as RGB."""
    geo = renderer.geometry(image[None], points[None], target[None])
    alone = []
    for k in range(geo.n_layers):
        w = np.zeros_like(geo.weights)
        w[:, k] = 1.0
        alone.append(lookup(image[None], Geometry(geo.grids, w, geo.valid))[0])
    render = lookup(image[None], geo)[0].copy()
    for x, y in np.round(target).astype(int):
        cv2.circle(render, (int(x), int(y)), 1, (0, 255, 0), -1)
    weights = np.round(np.clip(np.moveaxis(geo.weights[0], 0, -1), 0, 1) * 255).astype(np.uint8)
    return np.concatenate([image, render, *alone, weights], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--input", type=Path, required=True, help="the augment run's --input")
    ap.add_argument("--rows", required=True, help="dataset rows, comma-separated")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    reader = DatasetReader(args.dataset)
    size = int(reader.images.shape[1])
    sources = {s.key: s for s in find_sources(args.input, 68)[0]}
    mirrored = reader.fields.get("mirrored", np.zeros(len(reader), bool))
    renderer = ProfileRenderer()
    rows = []
    for r in (int(v) for v in args.rows.split(",")):
        crop = load_crop(sources[reader.sources[int(reader.source_index[r])]], size, DEFAULT_MARGIN)
        image, points = side_of(crop.image, crop.points.astype(np.float32), bool(mirrored[r]))
        rows.append(layer_row(renderer, image, points, np.asarray(reader.landmarks[r], np.float32)))
    sheet = np.concatenate(rows, axis=0)
    bar = np.full((20, sheet.shape[1], 3), 255, np.uint8)
    for i, label in enumerate(LABELS):
        cv2.putText(bar, label, (i * size + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    print(write_image(args.out, np.concatenate([bar, sheet])))


if __name__ == "__main__":
    main()
