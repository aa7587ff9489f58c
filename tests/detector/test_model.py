"""LandmarkNet, soft-argmax decoding and the checkpoint format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from gannotate.detector.model import (
    DetectorConfig,
    LandmarkNet,
    crop_to_heatmap,
    heatmap_to_crop,
    inference_copy,
    load_checkpoint,
    save_checkpoint,
    soft_argmax,
)
from gannotate.errors import CheckpointError


class TestSoftArgmax:
    def test_sharp_peak_lands_on_pixel(self):
        logits = torch.full((2, 3, 16, 16), -50.0)
        logits[0, 1, 5, 9] = 50.0  # (y=5, x=9)
        coords, prob = soft_argmax(logits)
        assert coords.shape == (2, 3, 2)
        assert torch.allclose(coords[0, 1], torch.tensor([9.0, 5.0]), atol=1e-4)
        assert torch.allclose(prob.sum(dim=(-2, -1)), torch.ones(2, 3), atol=1e-5)

    def test_symmetric_gaussian_gives_subpixel_centre(self):
        ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        cx, cy = 12.3, 17.8
        logits = (-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.2**2))[None, None]
        coords, _ = soft_argmax(logits)
        assert torch.allclose(coords[0, 0], torch.tensor([cx, cy]), atol=1e-3)

    def test_heatmap_crop_mapping_inverts(self):
        p = torch.rand(4, 5, 2) * 31
        assert torch.allclose(crop_to_heatmap(heatmap_to_crop(p, 128, 32), 128, 32), p, atol=1e-5)
        # heatmap pixel 0 covers crop pixels 0..3, centre 1.5
        assert float(heatmap_to_crop(torch.zeros(1), 128, 32)) == pytest.approx(1.5)


class TestLandmarkNet:
    @pytest.mark.parametrize("hm,k", [(32, 68), (64, 66)])
    def test_shapes(self, hm, k):
        net = LandmarkNet(DetectorConfig(n_points=k, heatmap_size=hm, width=8, blocks=1)).eval()
        x = torch.zeros(2, 3, 128, 128)
        assert net(x).shape == (2, k, hm, hm)
        pts = net.predict_points(x)
        assert pts.shape == (2, k, 2) and pts.dtype == torch.float32
        assert float(pts.min()) >= -0.5 and float(pts.max()) <= 127.5

    def test_bad_config(self):
        with pytest.raises(ValueError):
            DetectorConfig(input_size=128, heatmap_size=16)


class TestCheckpoint:
    def test_roundtrip(self, tmp_path):
        torch.manual_seed(0)
        net = LandmarkNet(DetectorConfig(width=8, blocks=1)).eval()
        path = save_checkpoint(tmp_path / "d.pt", net, {"scheme": "ibug68", "margin": 0.1})
        net2, meta = load_checkpoint(path)
        x = torch.randn(1, 3, 128, 128)
        assert torch.equal(net(x), net2(x))
        assert meta == {"scheme": "ibug68", "margin": 0.1}

    def test_missing(self, tmp_path):
        with pytest.raises(CheckpointError, match="no such"):
            load_checkpoint(tmp_path / "nope.pt")

    def test_not_a_detector(self, tmp_path):
        torch.save({"state_dict": {}}, tmp_path / "x.pt")
        with pytest.raises(CheckpointError, match="not a gannotate detector"):
            load_checkpoint(tmp_path / "x.pt")

    def test_pickled_code_is_refused(self, tmp_path):
        (tmp_path / "evil.pt").write_bytes(pickle.dumps(np.random.default_rng, protocol=2))  # a global, not plain data
        with pytest.raises(CheckpointError, match="cannot be loaded safely"):
            load_checkpoint(tmp_path / "evil.pt")

    def test_corrupt(self, tmp_path):
        (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / "c.pt")


class TestInferenceCopy:
    def test_folded_copy_predicts_as_the_network_and_leaves_it_untouched(self):
        torch.manual_seed(0)
        net = LandmarkNet(DetectorConfig(width=16, blocks=1))
        for m in net.modules():  # trained-looking statistics, so the fold has something to fold
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        net.eval()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        fast = inference_copy(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
        x = torch.rand(3, 3, 128, 128) * 2 - 1
        np.testing.assert_allclose(fast.predict_points(x.contiguous(memory_format=torch.channels_last)).numpy(),
                                   net.predict_points(x).numpy(), atol=1e-3)
        after = net.state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
