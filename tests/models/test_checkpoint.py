"""Checkpoints: our format round-trips; the original release layout loads strictly; code is refused."""

from __future__ import annotations

import functools
import os
import pickle

import pytest
import torch

from gannotate.errors import CheckpointError
from gannotate.models.checkpoint import (
    REQUIRED_META,
    load_generator,
    load_original_gannotation,
    safe_load,
    save_generator,
)
from gannotate.models.generator import Generator, GeneratorConfig

SMALL = GeneratorConfig(n_points=68, width=4, n_res=1, image_size=16)


class _Payload:
    """Unpickling this runs a shell command (it would create ``marker``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@functools.lru_cache(maxsize=1)
def _release_shapes() -> tuple[tuple[str, torch.Size], ...]:
    with torch.device("meta"):
        g = Generator(GeneratorConfig(n_points=66))
    return tuple((k, v.shape) for k, v in g.state_dict().items())


@functools.lru_cache(maxsize=1)
def _release_tensors() -> tuple[tuple[str, torch.Tensor], ...]:
    gen = torch.Generator().manual_seed(0)
    return tuple((k, torch.randn(shape, generator=gen)) for k, shape in _release_shapes())


def _release_state(prefix: str = "module.") -> dict:
    """Random weights in the release's layout (names and shapes from the K = 66 generator)."""
    return {prefix + k: v for k, v in _release_tensors()}


class TestOwnFormat:
    def test_round_trip(self, tmp_path):
        torch.manual_seed(0)
        g = Generator(SMALL)
        path = save_generator(tmp_path / "sub" / "g.pt", g, {"training": {"steps": 3}, "heatmap_sigma": 2.0})
        g2, meta = load_generator(path)
        assert g2.cfg == SMALL and not g2.training
        for k, v in g.state_dict().items():
            assert torch.equal(v, g2.state_dict()[k])
        assert all(hasattr(meta, k) for k in REQUIRED_META)
        assert meta.scheme == "ibug68" and meta.heatmap_sigma == 2.0 and meta.info["training"] == {"steps": 3}
        assert meta.value_range == (-1.0, 1.0)
        x, h = torch.rand(1, 3, 16, 16), torch.rand(1, 68, 16, 16)
        torch.testing.assert_close(g.eval()(x, h), g2(x, h), rtol=0, atol=0)
        assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left behind

    def test_meta_not_json(self, tmp_path):
        with pytest.raises(CheckpointError, match="JSON"):
            save_generator(tmp_path / "g.pt", Generator(SMALL), {"bad": object()})
        assert not (tmp_path / "g.pt").exists()

    def test_missing_and_foreign(self, tmp_path):
        with pytest.raises(CheckpointError, match="not found"):
            load_generator(tmp_path / "nope.pt")
        torch.save({"down_conv.0.weight": torch.zeros(1)}, tmp_path / "orig.pt")  # a bare state dict
        with pytest.raises(CheckpointError, match="load_original_gannotation"):
            load_generator(tmp_path / "orig.pt")
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
        with pytest.raises(CheckpointError, match="junk.pt"):
            load_generator(tmp_path / "junk.pt")

    def test_mismatched_weights_named(self, tmp_path):
        path = save_generator(tmp_path / "g.pt", Generator(SMALL))
        obj = torch.load(path, weights_only=True)
        obj["state_dict"].pop("mask_layer.0.weight")
        obj["state_dict"]["extra.weight"] = torch.zeros(1)
        torch.save(obj, path)
        with pytest.raises(CheckpointError, match=r"missing keys \['mask_layer.0.weight'\].*extra.weight"):
            load_generator(path)


class TestOriginalRelease:
    def test_wrapped_with_module_prefix_loads_strictly(self, tmp_path):
        state = _release_state("module.")
        torch.save({"state_dict": state, "epoch": 7}, tmp_path / "myGEN.pth")
        g, meta = load_original_gannotation(tmp_path / "myGEN.pth")
        assert g.cfg.n_points == 66 and meta.scheme == "ibug66" and meta.heatmap_mode == "legacy"
        for k, v in g.state_dict().items():
            assert torch.equal(v, state["module." + k])

    def test_bare_dict_without_prefix(self, tmp_path):
        torch.save(_release_state(""), tmp_path / "bare.pth")
        g, _ = load_original_gannotation(tmp_path / "bare.pth")
        assert isinstance(g, Generator)

    def test_wrong_layout_names_keys(self, tmp_path):
        state = _release_state("module.")
        state.pop("module.colour_layer.0.weight")
        state["module.bottleneck.0.bn1.running_mean"] = torch.zeros(256)
        torch.save({"state_dict": state}, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError) as err:
            load_original_gannotation(tmp_path / "bad.pth")
        msg = str(err.value)
        assert "colour_layer.0.weight" in msg and "bottleneck.0.bn1.running_mean" in msg and "bad.pth" in msg

    def test_68_point_weights_rejected(self, tmp_path):
        state = _release_state("")
        state["down_conv.0.weight"] = torch.zeros(64, 3 + 68, 7, 7)
        torch.save({"state_dict": state}, tmp_path / "g68.pth")
        with pytest.raises(CheckpointError, match="down_conv.0.weight"):
            load_original_gannotation(tmp_path / "g68.pth")


class TestRefusesCode:
    @pytest.mark.parametrize("loader", [load_generator, load_original_gannotation, safe_load])
    def test_payload_never_runs(self, tmp_path, loader):
        marker = tmp_path / "pwned"
        path = tmp_path / "evil.pth"
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, path)
        with pytest.raises(CheckpointError, match="refused"):
            loader(path)
        assert not marker.exists()

    @pytest.mark.filterwarnings("ignore:Detected pickle protocol")
    def test_plain_pickle_payload(self, tmp_path):
        marker = tmp_path / "pwned"
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps(_Payload(marker)))
        with pytest.raises(CheckpointError):
            load_original_gannotation(path)
        assert not marker.exists()


@pytest.mark.slow
def test_release_end_to_end(tmp_path):
    """The release-layout file → K = 66 generator → legacy maps at 128² → an image in range."""
    from gannotate.heatmaps import render

    torch.manual_seed(0)
    state = {k: v * 0.02 for k, v in _release_state("module.").items()}
    torch.save({"state_dict": state}, tmp_path / "myGEN.pth")
    g, meta = load_original_gannotation(tmp_path / "myGEN.pth")
    pts = torch.rand(2, 66, 2) * 100 + 14
    maps = render(pts, meta.image_size, meta.heatmap_sigma, meta.heatmap_mode)
    with torch.no_grad():
        out = g(torch.rand(2, 3, 128, 128), maps)  # the release took images in [0, 1]
    assert out.shape == (2, 3, 128, 128) and torch.isfinite(out).all()
    assert float(out.min()) >= -1 and float(out.max()) <= 1
