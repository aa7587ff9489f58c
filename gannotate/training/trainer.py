"""The GANnotation training loop: one :func:`train` that reads top to bottom.

Run directory (:class:`gannotate.training.runs.RunDir`)::

    config.json        the GANTrainConfig (and the cache it read)
    stats.jsonl        one row per ``log_every`` steps: every loss term, lr, steps/s, images/s
    samples/NNNNNNN.png  input | target | generated | progressive two-pass (I → s_n → s_t)
    checkpoint.pt      the latest checkpoint (written atomically)

Checkpoints hold only tensors and plain Python values (loadable with ``weights_only=True``):
G, D, both Adam states, the step, the learning-rate schedule (from the config), RNG states of
torch, numpy and Python, the config, the disabled losses and why, and the training data summary.
Resuming restores all of it, and each batch depends only on (seed, step, sample index), so a
resumed run continues bit-for-bit on CPU.

Several processes (``torchrun --nproc_per_node N``) split each batch by sample index; gradients are
averaged with one all-reduce per phase (no DDP wrapper: the G phase freezes D, which DDP's
reducer does not allow), so N processes compute the single-process step. Rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from gannotate import heatmaps
from gannotate.errors import GannotateError
from gannotate.io.images import write_image
from gannotate.models.discriminator import Discriminator, DiscriminatorConfig
from gannotate.models.generator import Generator, GeneratorConfig
from gannotate.training import runs
from gannotate.training.cache import TrainingCache
from gannotate.training.config import GANTrainConfig
from gannotate.training.feature_nets import load_feature_networks
from gannotate.training.losses import TripleConsistencyLoss
from gannotate.training.runs import CHECKPOINT_NAME, RunDir, StatsWindow, rng_state, save_checkpoint, seed_all, set_rng_state
from gannotate.training.triplets import TripletBatches

__all__ = [
    "train",
    "device_batch",
    "TrainResult",
    "load_checkpoint",
    "build_networks",
    "build_training",
    "heatmap_renderer",
    "export_generator",
    "CHECKPOINT_KIND",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
]

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "gannotate-train"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    step: int  # global step reached (number of optimisation steps done in total)
    stopped_by: str  # "max_steps", "total_steps" or "time_budget"
    checkpoint: Path
    disabled_losses: dict[str, str]  # feature/any loss that was OFF → why
    loss_networks: dict[str, str] = field(default_factory=dict)  # feature loss that was on → its network


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------


def build_networks(cfg: GANTrainConfig, n_points: int) -> tuple[Generator, Discriminator]:
    """G and D for ``cfg`` (initialised from ``torch``'s current RNG state)."""
    G = Generator(GeneratorConfig(n_points=n_points, width=cfg.g_width, n_res=cfg.g_res, image_size=cfg.image_size))
    D = Discriminator(DiscriminatorConfig(image_size=cfg.image_size, width=cfg.d_width))
    return G, D


def device_batch(
    batch: dict[str, torch.Tensor], device: torch.device, render: Callable, channels_last: bool = False
) -> dict[str, torch.Tensor]:
    """A loader batch → what the loss takes: images on ``device`` (channels_last on request) and
    heatmaps ``heat_a/t/n`` rendered from ``points_a/t/n``. The trainer and the benchmark share it."""
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k.startswith("image")}
    if channels_last:
        b = {k: v.contiguous(memory_format=torch.channels_last) for k, v in b.items()}
    for k in "atn":
        b[f"heat_{k}"] = render(batch[f"points_{k}"])
    return b


def heatmap_renderer(cfg: GANTrainConfig, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``points (B, K, 2) crop px -> heatmaps (B, K, S, S)`` on ``device`` (channels_last on CUDA)."""
    sigma = cfg.sigma_px()
    nhwc = device.type == "cuda" and cfg.channels_last

    def render(points: torch.Tensor) -> torch.Tensor:
        h = heatmaps.render(points.to(device), cfg.image_size, sigma, cfg.heatmap_mode)  # (B, K, H, W)
        return h.contiguous(memory_format=torch.channels_last) if nhwc else h

    return render


def build_training(
    cfg: GANTrainConfig, n_points: int, device: torch.device
) -> tuple[Generator, Discriminator, torch.optim.Adam, torch.optim.Adam, TripleConsistencyLoss]:
    """G, D (on ``device``), their Adam optimisers and the loss object with its feature networks."""
    G, D = build_networks(cfg, n_points)
    G.to(device), D.to(device)
    if device.type == "cuda" and cfg.channels_last:
        G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    nets = load_feature_networks(cfg, device)
    amp = device.type == "cuda" and cfg.amp
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else None
    loss = TripleConsistencyLoss(G, D, cfg.weights, nets.identity, nets.perceptual, nets.reasons, autocast)
    loss.networks = nets.used
    return G, D, opt_G, opt_D, loss


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint safely (``weights_only=True``: pickled code is refused).

    Raises:
        CheckpointError: missing file, unsafe or corrupt content, or not a gannotate training checkpoint.
    """
    return runs.load_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_FORMAT, map_location, what="gannotate training",
                                require=("config", "G"))


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over processes with one flat all-reduce (parameters without grad are skipped)."""
    grads = [p.grad for p in params if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _sample_grid(G: torch.nn.Module, batch: dict[str, torch.Tensor], render: Callable, path: Path) -> None:
    """Write rows of input | target | generated | progressive two-pass G(G(I; H_n); H_t) as a PNG."""
    with torch.no_grad():
        gen = G(batch["image_a"], render(batch["points_t"]))
        two = G(G(batch["image_a"], render(batch["points_n"])), render(batch["points_t"]))
    cols = [_to_uint8(batch["image_a"]), _to_uint8(batch["image_t"]), _to_uint8(gen), _to_uint8(two)]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(cols[0].shape[0])]
    write_image(path, np.concatenate(rows, axis=0))  # RGB, atomic


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def train(
    cfg: GANTrainConfig,
    run_dir: str | Path,
    cache_path: str | Path,
    *,
    max_steps: int | None = None,
    time_budget_min: float | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train GANnotation on a training cache.

    Args:
        cfg: the run's configuration (on resume, the checkpoint's config wins and this one is ignored).
        run_dir: output folder (created).
        cache_path: the training cache written by ``gannotate train prepare``.
        max_steps: stop when the global step reaches this (None: ``cfg.total_steps``).
        time_budget_min: stop cleanly, with a checkpoint, after this many minutes.
        resume: continue from ``run_dir/checkpoint.pt`` exactly (models, optimisers, step, RNG).
        device: torch device (None: CUDA when available, else CPU; under torchrun, cuda:LOCAL_RANK).

    Returns:
        A :class:`TrainResult`.
    """
    t_start = time.perf_counter()
    run = RunDir(run_dir)

    # Processes and device.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = runs.default_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    on_cuda = device.type == "cuda"

    # Resume: the checkpoint's config wins.
    ckpt = load_checkpoint(run.checkpoint) if resume and run.checkpoint.is_file() else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s, starting from step 0", run.path)
    if ckpt is not None:
        saved = GANTrainConfig.from_dict(ckpt["config"])
        if saved != cfg:
            log.warning("resuming with the checkpoint's config (differs from the one given)")
        cfg = saved
    stop_at = min(cfg.total_steps, max_steps) if max_steps is not None else cfg.total_steps
    if cfg.batch_size % world:
        raise GannotateError(f"batch size {cfg.batch_size} does not split evenly over {world} processes")

    # Data.
    cache = TrainingCache(cache_path)
    data_summary = cache.summary() | {"crop_margin_rel": cache.margin_rel(cfg.triplets.margin)}
    tcfg = cfg.triplet_config()
    per_rank = cfg.batch_size // world
    dataset = TripletBatches(cache, tcfg, seed=cfg.seed, samples=range(rank * per_rank, (rank + 1) * per_rank))
    render = heatmap_renderer(cfg, device)

    # Networks and optimisers.
    seed_all(cfg.seed)
    G, D, opt_G, opt_D, loss = build_training(cfg, cache.n_points, device)
    step = 0
    if ckpt is not None:
        G.load_state_dict(ckpt["G"]), D.load_state_dict(ckpt["D"])
        opt_G.load_state_dict(ckpt["opt_G"]), opt_D.load_state_dict(ckpt["opt_D"])
        step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])
        log.info("resumed from %s at step %d", run.checkpoint, step)
    elif world > 1:  # identical seeds give identical weights; broadcast anyway, cheaply, to be sure
        for p in list(G.parameters()) + list(D.parameters()):
            dist.broadcast(p.data, 0)

    # Run directory.
    writer = rank == 0
    if writer:
        run.create().write_config({"config": cfg.to_dict(), "cache": data_summary, "disabled_losses": loss.disabled,
                                   "loss_networks": loss.networks, "world_size": world})
    fixed = dataset.batch(-1, range(cfg.n_samples)) if writer and cfg.sample_every else None

    def checkpoint() -> Path:
        if writer:
            save_checkpoint(run.checkpoint, {
                "kind": CHECKPOINT_KIND, "format_version": CHECKPOINT_FORMAT, "step": step,
                "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(), "rng": rng_state(),
                "schedule": {"lr": cfg.lr, "lr_final": cfg.lr_final, "lr_decay_start": cfg.lr_decay_start,
                             "lr_decay_steps": cfg.lr_decay_steps, "total_steps": cfg.total_steps},
                "disabled_losses": dict(loss.disabled), "loss_networks": dict(loss.networks),
                "data": json.dumps(data_summary, default=str),
                "scheme": str(data_summary.get("scheme")), "world_size": world,
            })
        if world > 1:
            dist.barrier()
        return run.checkpoint

    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(step, max(stop_at, step))), batch_size=None,
        num_workers=cfg.num_workers, persistent_workers=False,
    )

    # Train.
    stopped_by = "max_steps" if max_steps is not None and max_steps < cfg.total_steps else "total_steps"
    window = StatsWindow()
    t0 = time.perf_counter()
    for batch in loader:
        t_data = time.perf_counter() - t0
        lr = cfg.lr_at(step)
        for opt in (opt_G, opt_D):
            for g in opt.param_groups:
                g["lr"] = lr
        b = device_batch(batch, device, render, channels_last=on_cuda and cfg.channels_last)

        loss.w = cfg.weights_at(step)  # consistency warm-up: a function of the step only

        # Discriminator phase, then generator phase, both on one Î = G(I; H(s_t)).
        t1 = time.perf_counter()
        b = loss.with_fake(b)
        opt_D.zero_grad(set_to_none=True)
        stats = loss.accumulate_gradients("D", b)
        _all_reduce_grads(list(D.parameters()), world)
        opt_D.step()
        t2 = time.perf_counter()
        opt_G.zero_grad(set_to_none=True)
        stats |= loss.accumulate_gradients("G", b)
        _all_reduce_grads(list(G.parameters()), world)
        opt_G.step()
        t3 = time.perf_counter()
        step += 1
        stats["paired"] = float(batch["paired"])
        stats["Weight/self"], stats["Weight/triple"] = loss.w.self_, loss.w.triple
        window.add({"ms/data": 1000 * t_data, "ms/D": 1000 * (t2 - t1), "ms/G": 1000 * (t3 - t2)} | stats)

        # Maintenance: stats row, sample grid, checkpoint, time budget.
        if writer and (step % cfg.log_every == 0 or step == stop_at):
            row = {"step": step, "lr": lr, "time_s": round(time.perf_counter() - t_start, 3)}
            row |= window.row(cfg.batch_size)
            run.append_stats(row)
            log.info("step %d  G %.4f  D %.4f  %.2f steps/s", step, row.get("Loss/G/total", float("nan")),
                     row.get("Loss/D/total", float("nan")), row["steps_per_s"])
            window.reset()
        if writer and cfg.sample_every and step % cfg.sample_every == 0:
            fb = {k: v.to(device) for k, v in fixed.items()}
            _sample_grid(G, fb, render, run.samples / f"{step:07d}.png")
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < stop_at:
            checkpoint()
        out_of_time = time_budget_min is not None and time.perf_counter() - t_start > 60 * time_budget_min
        if world > 1:
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.broadcast(flag, 0)
            out_of_time = bool(flag.item())
        if out_of_time:
            stopped_by = "time_budget"
            log.info("time budget of %.1f min reached at step %d", time_budget_min, step)
            break
        t0 = time.perf_counter()

    path = checkpoint()
    return TrainResult(run.path, step, stopped_by, path, dict(loss.disabled), dict(loss.networks))


# ---------------------------------------------------------------------------------------------
# Shipping
# ---------------------------------------------------------------------------------------------


def export_generator(checkpoint_path: str | Path, out_path: str | Path) -> Path:
    """Write the generator of a training checkpoint as a generator-only file with :class:`GeneratorMeta`.

    The crop margin is written as ``crop_margin_rel`` (the training margin in photo pixels over the
    training boxes' median side), which is what the renderer reads; older checkpoints without it
    get the paper's 0.025 with a warning.
    """
    from gannotate.generator_meta import PAPER_MARGIN_REL, GeneratorMeta
    from gannotate.models.checkpoint import save_generator

    ckpt = load_checkpoint(checkpoint_path)
    cfg = GANTrainConfig.from_dict(ckpt["config"])
    G, _ = build_networks(cfg, _n_points_of(ckpt))
    G.load_state_dict(ckpt["G"])
    data = json.loads(ckpt.get("data") or "{}")
    margin_rel = data.get("crop_margin_rel")
    if margin_rel is None:
        log.warning("%s: no crop_margin_rel recorded; using the paper's %.3f", checkpoint_path, PAPER_MARGIN_REL)
        margin_rel = PAPER_MARGIN_REL
    meta = GeneratorMeta(
        scheme=str(ckpt.get("scheme")), image_size=cfg.image_size, heatmap_mode=cfg.heatmap_mode,
        heatmap_sigma=cfg.sigma_px(), crop_mode="paper", crop_margin_rel=float(margin_rel),
        info={
            "step": int(ckpt["step"]), "crop_margin_px": cfg.triplets.margin,
            "disabled_losses": json.dumps(ckpt.get("disabled_losses", {})),
            "loss_networks": json.dumps(ckpt.get("loss_networks", {})),
            "training_data": ckpt.get("data"), "train_config": json.dumps(cfg.to_dict(), default=str),
        },
    )
    save_generator(out_path, G, meta)
    return Path(out_path)


def _n_points_of(ckpt: dict[str, Any]) -> int:
    """K from the checkpoint's scheme name (the generator's input has 3 + K channels)."""
    from gannotate.landmarks import get_scheme

    return get_scheme(str(ckpt.get("scheme"))).n_points
