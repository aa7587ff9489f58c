"""Generator: original-release layout and size, blend formula, shapes, errors."""

from __future__ import annotations

import pytest
import torch

from gannotate.errors import ShapeError
from gannotate.models.generator import Generator, GeneratorConfig

SMALL = GeneratorConfig(n_points=5, width=8, n_res=2, image_size=16)


def _inputs(cfg: GeneratorConfig, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    image = torch.rand(batch, 3, s, s, generator=g) * 2 - 1
    maps = torch.rand(batch, cfg.n_points, s, s, generator=g)
    return image, maps


class TestGenerator:
    def test_release_parameter_count(self):
        g = Generator(GeneratorConfig(n_points=66, width=64, n_res=6))
        n = sum(p.numel() for p in g.parameters())
        assert n == 8_621_888  # ≈ 8.62 M, as counted from the release's model.py
        assert n == pytest.approx(8.62e6, rel=1e-3)

    def test_release_key_layout(self):
        keys = set(Generator(GeneratorConfig(n_points=66)).state_dict())
        expected = {f"down_conv.{i}.weight" for i in (0, 3, 6)}
        expected |= {f"down_conv.{i}.{p}" for i in (1, 4, 7) for p in ("weight", "bias")}
        expected |= {f"bottleneck.{b}.conv{c}.{p}" for b in range(6) for c in (1, 2) for p in ("weight", "bias")}
        expected |= {f"feature_layer.{i}.weight" for i in (0, 3)}
        expected |= {f"feature_layer.{i}.{p}" for i in (1, 4) for p in ("weight", "bias")}
        expected |= {"colour_layer.0.weight", "mask_layer.0.weight"}
        assert keys == expected

    def test_shapes_and_range(self):
        torch.manual_seed(0)
        g = Generator(SMALL)
        image, maps = _inputs(SMALL)
        with torch.no_grad():
            out, colour, mask = g.forward_parts(image, maps)
        assert out.shape == colour.shape == image.shape and mask.shape == (2, 1, 16, 16)
        assert float(out.abs().max()) <= 1.0
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1

    def test_blend_formula(self):
        torch.manual_seed(0)
        g = Generator(SMALL)
        image, maps = _inputs(SMALL)
        out, colour, mask = g.forward_parts(image, maps)
        torch.testing.assert_close(out, mask * image + (1 - mask) * colour, atol=1e-6, rtol=0)
        torch.testing.assert_close(g(image, maps), out, atol=0, rtol=0)

    def test_zero_mask_logits_average_image_and_colour(self):
        torch.manual_seed(0)
        g = Generator(SMALL)
        with torch.no_grad():
            g.mask_layer[0].weight.zero_()  # sigmoid(0) = 0.5 everywhere
            image, maps = _inputs(SMALL)
            out, colour, mask = g.forward_parts(image, maps)
        assert torch.all(mask == 0.5)
        torch.testing.assert_close(out, 0.5 * (image + colour), atol=1e-6, rtol=0)

    def test_heatmaps_change_output(self):
        torch.manual_seed(0)
        g = Generator(SMALL)
        image, maps = _inputs(SMALL)
        assert not torch.allclose(g(image, maps), g(image, maps.flip(-1)))

    def test_backward(self):
        torch.manual_seed(0)
        g = Generator(SMALL)
        image, maps = _inputs(SMALL)
        g(image, maps).mean().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())

    def test_non_square_size(self):
        g = Generator(SMALL)
        out = g(torch.zeros(1, 3, 16, 24), torch.zeros(1, 5, 16, 24))
        assert out.shape == (1, 3, 16, 24)

    def test_wrong_point_count(self):
        g = Generator(SMALL)
        with pytest.raises(ShapeError, match="5-point"):
            g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 6, 16, 16))

    @pytest.mark.parametrize(
        "image,maps",
        [((1, 4, 16, 16), (1, 5, 16, 16)), ((1, 3, 16, 16), (2, 5, 16, 16)), ((1, 3, 18, 18), (1, 5, 18, 18))],
    )
    def test_bad_shapes(self, image, maps):
        with pytest.raises(ShapeError):
            Generator(SMALL)(torch.zeros(image), torch.zeros(maps))
