"""Heatmaps: exact sub-pixel peaks, the original release's legacy kernel, device/dtype, module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gannotate.errors import ShapeError
from gannotate.heatmaps import DEFAULT_SIGMA, LEGACY_SIGMA, HeatmapRenderer, render


def _reference_legacy_map(point, h: int, w: int) -> np.ndarray:
    """A straightforward re-statement of the release's draw_gaussian(zeros, pt, sigma=1), per point."""
    x, y = round(float(point[0]), 2), round(float(point[1]), 2)
    ul = [math.floor(x - 3), math.floor(y - 3)]
    br = [math.floor(x + 3), math.floor(y + 3)]
    image = np.zeros((h, w))
    if ul[0] > w or ul[1] > h or br[0] < 1 or br[1] < 1:
        return image
    g = np.empty((7, 7), dtype=np.float32)
    for i in range(7):
        for j in range(7):
            g[i, j] = math.exp(-(((j + 1 - 4) / 1.75) ** 2 / 2.0 + ((i + 1 - 4) / 1.75) ** 2 / 2.0))
    g_x = [max(1, -ul[0]), min(br[0], w) - max(1, ul[0]) + max(1, -ul[0])]
    g_y = [max(1, -ul[1]), min(br[1], h) - max(1, ul[1]) + max(1, -ul[1])]
    img_x = [max(1, ul[0]), min(br[0], w)]
    img_y = [max(1, ul[1]), min(br[1], h)]
    image[img_y[0] - 1 : img_y[1], img_x[0] - 1 : img_x[1]] += g[g_y[0] - 1 : g_y[1], g_x[0] - 1 : g_x[1]]
    image[image > 1] = 1
    return image


def _parabolic_peak(profile: np.ndarray) -> float:
    """Sub-pixel maximum of a sampled Gaussian: a parabola through the log of the 3 top samples.

    log of a Gaussian is exactly quadratic, so this recovers the centre analytically.
    """
    i = int(np.argmax(profile))
    lm, l0, lp = np.log(profile[i - 1 : i + 2])
    return i + 0.5 * (lm - lp) / (lm - 2 * l0 + lp)


class TestExact:
    def test_shape_range_dtype(self):
        pts = torch.rand(3, 5, 2) * 30
        maps = render(pts, (32, 40))
        assert maps.shape == (3, 5, 32, 40) and maps.dtype == torch.float32
        assert float(maps.min()) >= 0 and float(maps.max()) <= 1

    def test_subpixel_peak_recovered(self):
        g = torch.Generator().manual_seed(0)
        pts = torch.rand(2, 7, 2, generator=g, dtype=torch.float64) * 50 + 7
        maps = render(pts, 64).numpy()
        for b in range(2):
            for k in range(7):
                m = maps[b, k]
                r, c = np.unravel_index(np.argmax(m), m.shape)
                x = _parabolic_peak(m[r, :])
                y = _parabolic_peak(m[:, c])
                assert abs(x - float(pts[b, k, 0])) < 1e-3
                assert abs(y - float(pts[b, k, 1])) < 1e-3

    def test_values_match_formula(self):
        pts = torch.tensor([[[3.3, 4.7]]])
        sigma = 1.9
        maps = render(pts, (8, 9), sigma=sigma)
        v, u = np.mgrid[0:8, 0:9]
        expected = np.exp(-((u - 3.3) ** 2 + (v - 4.7) ** 2) / (2 * sigma**2))
        np.testing.assert_allclose(maps[0, 0].numpy(), expected, atol=1e-6)

    def test_integer_point_has_unit_peak(self):
        maps = render(torch.tensor([[[5.0, 9.0]]]), 16)
        assert float(maps[0, 0, 9, 5]) == pytest.approx(1.0, abs=1e-7)

    def test_default_sigma_is_about_6px_fwhm(self):
        assert 2 * math.sqrt(2 * math.log(2)) * DEFAULT_SIGMA == pytest.approx(6.0, abs=0.2)

    def test_follows_dtype(self):
        pts = torch.rand(1, 2, 2, dtype=torch.float64) * 10
        assert render(pts, 12).dtype == torch.float64
        assert render(pts.half().float(), 12).dtype == torch.float32

    def test_low_precision_points_keep_subpixel_centre(self):
        pts = torch.tensor([[[100.25, 60.75]]])
        maps = render(pts.to(torch.bfloat16), 128)
        assert maps.dtype == torch.bfloat16
        ref = render(pts.to(torch.bfloat16).float(), 128)  # same rounded point, float32 maths
        torch.testing.assert_close(maps.float(), ref, atol=1e-2, rtol=0)

    def test_gradient_flows_to_points(self):
        pts = (torch.rand(1, 3, 2, dtype=torch.float64) * 10 + 3).requires_grad_()
        assert torch.autograd.gradcheck(lambda p: render(p, 16, sigma=2.0), (pts,))

    @pytest.mark.parametrize("bad", [torch.zeros(4, 2), torch.zeros(1, 4, 3)])
    def test_bad_shape(self, bad):
        with pytest.raises(ShapeError, match=r"\(B, K, 2\)"):
            render(bad, 16)

    def test_bad_mode_and_sigma(self):
        with pytest.raises(ValueError, match="mode"):
            render(torch.zeros(1, 1, 2), 8, mode="fancy")
        with pytest.raises(ValueError, match="sigma"):
            render(torch.zeros(1, 1, 2), 8, sigma=0.0)


class TestLegacy:
    def test_matches_reference_loop(self):
        g = torch.Generator().manual_seed(1)
        h, w = 24, 20
        inside = torch.rand(2, 30, 2, generator=g) * torch.tensor([w + 8.0, h + 8.0]) - 4.0
        edges = torch.tensor(
            [[[0.0, 0.0], [0.4, 5.5], [-0.6, 3.2], [-1.5, 7.0], [-2.99, 9.0], [-3.0, 2.0], [3.0, 3.0],
              [19.99, 23.99], [20.0, 24.0], [22.5, 1.0], [23.0, 4.0], [24.1, 4.0], [5.005, 6.015],
              [2.999, 4.001], [1.0, 1.0], [-4.2, -4.2]]]
        ).expand(2, -1, -1)
        pts = torch.cat([inside, edges], dim=1)
        maps = render(pts, (h, w), mode="legacy").numpy()
        for b in range(pts.shape[0]):
            for k in range(pts.shape[1]):
                ref = _reference_legacy_map(pts[b, k].double().numpy(), h, w)
                np.testing.assert_allclose(maps[b, k], ref, atol=2e-7, err_msg=f"point {pts[b, k].tolist()}")

    def test_peak_is_shifted_up_left(self):
        maps = render(torch.tensor([[[10.7, 20.2]]]), 32, mode="legacy")
        r, c = np.unravel_index(int(maps[0, 0].argmax()), (32, 32))
        assert (c, r) == (9, 19)  # (⌊x⌋ − 1, ⌊y⌋ − 1)
        assert float(maps[0, 0].max()) == pytest.approx(1.0)
        assert int((maps[0, 0] > 0).sum()) == 49  # 7×7 support

    def test_sigma_is_fixed(self):
        render(torch.zeros(1, 1, 2), 8, sigma=LEGACY_SIGMA, mode="legacy")
        with pytest.raises(ValueError, match="1.75"):
            render(torch.zeros(1, 1, 2), 8, sigma=2.0, mode="legacy")


class TestModule:
    def test_module_equals_function(self):
        pts = torch.rand(2, 4, 2) * 16
        for mode in ("exact", "legacy"):
            m = HeatmapRenderer(16, mode=mode)
            torch.testing.assert_close(m(pts), render(pts, 16, mode=mode), rtol=0, atol=0)
        assert "legacy" in repr(HeatmapRenderer(8, mode="legacy"))

    def test_module_checks_settings_early(self):
        with pytest.raises(ValueError, match="1.75"):
            HeatmapRenderer(8, sigma=3.0, mode="legacy")
        with pytest.raises(ValueError, match="sigma"):
            HeatmapRenderer(8, sigma=-1.0)

    def test_meta_device(self):
        pts = torch.rand(1, 3, 2, device="meta")
        assert render(pts, 8).device.type == "meta"


class TestOut:
    @pytest.mark.parametrize("mode", ["exact", "legacy"])
    def test_writes_into_buffer_and_slice(self, mode):
        pts = torch.rand(2, 4, 2) * 16
        expected = render(pts, 16, mode=mode)
        buf = torch.full((2, 3 + 4, 16, 16), -5.0)
        res = render(pts, 16, mode=mode, out=buf[:, 3:])  # e.g. the generator input's map channels
        assert res.data_ptr() == buf[:, 3:].data_ptr()
        torch.testing.assert_close(buf[:, 3:], expected, rtol=0, atol=0)
        assert torch.all(buf[:, :3] == -5.0)

    def test_wrong_out_shape(self):
        with pytest.raises(ValueError, match="out"):
            render(torch.zeros(1, 2, 2), 8, out=torch.empty(1, 2, 8, 9))
