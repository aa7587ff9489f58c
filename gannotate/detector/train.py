"""Train the landmark detector: one ``train(...)`` that reads top to bottom.

Loss (integral regression with a heatmap prior, as in DSNT): L1 between the soft-argmax points and
the targets, in units of the heatmap side, plus ``heatmap_weight`` × the cross-entropy between the
spatial softmax and a normalised Gaussian rendered at the target by ``gannotate.heatmaps.render``.
The coordinate term optimises what NME measures; the heatmap term keeps each map unimodal, which
soft-argmax needs (a second mode drags the mean between the two).

A run directory holds ``config.json``, ``stats.jsonl`` (one row per ``log_every`` steps, plus a row
holding ``val_nme`` at each checkpoint step) and ``checkpoint.pt``, rewritten every
``checkpoint_every`` steps (independently of ``log_every``) so a killed run leaves a usable model.
Beside it ``train_state.pt`` holds the optimiser, the random generators and the batch sampler at
that step, so a rerun with the same settings and data resumes and ends with the very weights an
uninterrupted run gives.

Generated faces train beside the real ones at a fixed share of every batch
(``DetectorTrainConfig.real_share``, see :mod:`gannotate.detector.sampler`), or first alone and then the
real faces fine-tune from those weights (``init_from``): the two recipes of the detector payoff.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from gannotate.detector.data import NO_AUGMENT, CropAugmentConfig, FaceSet, sample_batch, to_tensor
from gannotate.detector.model import (
    DetectorConfig,
    LandmarkNet,
    crop_to_heatmap,
    load_checkpoint,
    save_checkpoint,
    soft_argmax,
)
from gannotate.detector.sampler import RECIPES, BatchSampler
from gannotate.errors import CheckpointError, GannotateError
from gannotate.heatmaps import render
from gannotate.landmarks import nme

__all__ = ["DetectorTrainConfig", "PRESETS", "Progress", "RECIPES", "train", "train_with_generated", "evaluate_faceset",
           "detector_loss", "STATE_FILE"]

STATE_FILE = "train_state.pt"
STATE_KIND, STATE_FORMAT = "gannotate.detector.train_state", 1

Progress = Callable[[int, int, float], None]
"""``progress(step, steps, elapsed_s)``: called at every stats row (the CLI prints rate and ETA)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Optimisation settings (defaults: the CPU recipe that built the shipped detector).

    Attributes:
        steps: optimiser steps.
        batch_size: faces per step.
        lr: peak Adam learning rate (linear warm-up, then cosine decay to ``lr · 0.01``).
        warmup: warm-up steps.
        weight_decay: AdamW decoupled weight decay.
        heatmap_weight: weight of the heatmap cross-entropy beside the coordinate L1.
        sigma: σ of the heatmap prior, in heatmap pixels.
        margin: crop margin as a fraction of the landmark-box side (each side).
        seed: seeds the network init and the batch sampler.
        device: ``"cpu"``, ``"cuda"``, ...; AMP (float16) is used on CUDA only.
        num_threads: torch CPU threads (1 by default: on an oversubscribed shared CPU, OpenMP spin-waits make 2 threads ~5× slower than 1).
        log_every: steps between rows of stats.jsonl.
        checkpoint_every: steps between checkpoint rewrites (and validation, when given).
        time_budget_s: stop early (after a checkpoint) when training has run this long; 0 = no limit.
        real_share: share of each batch drawn from the real faces when generated faces are given
            (``None``: one shuffled pool over both, each face equally often).
        init_from: a detector checkpoint whose weights start the run (fine-tuning); "" = random init.
    """

    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 1e-4
    heatmap_weight: float = 0.02
    sigma: float = 1.0
    margin: float = 0.1
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 250
    time_budget_s: float = 0.0
    real_share: float | None = 0.5
    init_from: str = ""


PRESETS: dict[str, DetectorTrainConfig] = {
    "default": DetectorTrainConfig(),
    "smoke": replace(DetectorTrainConfig(), steps=4, batch_size=4, warmup=1, log_every=1, checkpoint_every=2),
}


def detector_loss(logits: torch.Tensor, target: torch.Tensor, sigma: float, heatmap_weight: float) -> tuple[torch.Tensor, dict]:
    """Loss of (B, K, h, w) logits against (B, K, 2) targets in heatmap pixels → (scalar, parts)."""
    logits = logits.float()
    coords, _ = soft_argmax(logits)
    h = logits.shape[-1]
    l1 = (coords - target).abs().sum(-1).mean() / h
    prior = render(target, logits.shape[-2:], sigma)  # (B, K, h, w)
    prior = prior / prior.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    logp = F.log_softmax(logits.flatten(2), dim=-1)  # (B, K, h·w)
    ce = -(prior.flatten(2) * logp).sum(-1).mean()
    return l1 + heatmap_weight * ce, {"l1": float(l1.detach()), "ce": float(ce.detach())}


@torch.no_grad()
def evaluate_faceset(net: LandmarkNet, faces: FaceSet, margin: float, batch_size: int = 64) -> np.ndarray:
    """NME (%) per face of un-augmented landmark-box crops of ``faces`` → (N,)."""
    net.eval()
    device = next(net.parameters()).device
    rng = np.random.default_rng(0)
    out = []
    for start in range(0, len(faces), batch_size):
        idx = np.arange(start, min(start + batch_size, len(faces)))
        images, pts = sample_batch(faces, idx, rng, net.cfg.input_size, margin, NO_AUGMENT)
        pred = net.predict_points(to_tensor(images, device)).cpu().numpy()
        out.append(nme(pred, pts))
    return np.concatenate(out) if out else np.zeros(0)


def _lr_at(step: int, cfg: DetectorTrainConfig, elapsed_s: float = 0.0) -> float:
    """Warm-up, then cosine decay over the run's progress.

    Progress is the share of steps done or, under a time budget, of the budget used if that is
    larger: a run cut short by its budget still ends at the low learning rate (reproducible runs
    leave ``time_budget_s`` at 0).
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.time_budget_s > 0:
        t = max(t, elapsed_s / cfg.time_budget_s)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _run_identity(cfg: DetectorTrainConfig, net_cfg: DetectorConfig, aug: CropAugmentConfig, faces: FaceSet,
                  generated: FaceSet | None) -> dict:
    """What a saved training state must match to be resumed: settings and the data's size and keys."""
    keys = faces.keys + (generated.keys if generated is not None else [])
    return {"train": asdict(cfg), "net": net_cfg.to_dict(), "augment": asdict(aug),
            "n_real": len(faces), "n_generated": 0 if generated is None else len(generated),
            "keys_hash": hash_keys(keys)}


def hash_keys(keys: list[str]) -> str:
    """A short stable digest of the training faces' keys (data changed → no resume)."""
    import hashlib

    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def _load_state(run_dir: Path, identity: dict) -> dict | None:
    """The saved training state of ``run_dir`` if it matches ``identity``, else None (start afresh)."""
    from gannotate.training.runs import load_checkpoint as load_run_state

    path = run_dir / STATE_FILE
    if not path.is_file() or not (run_dir / "checkpoint.pt").is_file():
        return None
    try:
        state = load_run_state(path, STATE_KIND, STATE_FORMAT, what="detector training state",
                               require=("identity", "step", "optimizer", "sampler"))
    except CheckpointError as e:
        log.warning("%s: not resumed (%s); training from the start", path, e.reason)
        return None
    if json.loads(state["identity"]) != json.loads(json.dumps(identity)):
        log.warning("%s: settings or data changed since it was saved; training from the start", path)
        return None
    return state


def train(
    faces: FaceSet,
    run_dir: str | Path,
    cfg: DetectorTrainConfig = DetectorTrainConfig(),
    net_cfg: DetectorConfig | None = None,
    aug: CropAugmentConfig = CropAugmentConfig(),
    val: FaceSet | None = None,
    meta: dict | None = None,
    generated: FaceSet | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train a detector on ``faces`` (and ``generated``) and write ``run_dir/checkpoint.pt``; returns its path.

    A run folder holding a matching ``train_state.pt`` resumes from it; a finished run returns at once.

    Args:
        faces: real training canvases (any mix of sources, one scheme).
        run_dir: output folder (created).
        cfg, net_cfg, aug: optimisation, network size (K is taken from ``faces.scheme``), augmentation.
        val: optional validation faces, scored (NME %) at every checkpoint.
        meta: extra plain-typed entries stored in the checkpoint (e.g. the data sources).
        generated: generated faces, drawn at ``cfg.real_share`` of each batch beside ``faces``.
        progress: called as ``progress(step, steps, elapsed_s)`` at every stats row.
    """
    # Set up: run folder, seeds, network, optimiser, batch sampler; resume a saved state.
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if generated is not None and generated.scheme.name != faces.scheme.name:
        raise GannotateError(f"generated faces use {generated.scheme.name}, real faces {faces.scheme.name}")
    all_faces = FaceSet.concat([faces, generated]) if generated is not None and len(generated) else faces
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)  # augmentation
    sampler = BatchSampler(len(faces), len(all_faces) - len(faces), cfg.batch_size, cfg.real_share, cfg.seed)
    net_cfg = replace(net_cfg or DetectorConfig(), n_points=faces.scheme.n_points)
    device = torch.device(cfg.device)
    net = LandmarkNet(net_cfg).to(device)
    if cfg.init_from:
        start_net, _ = load_checkpoint(cfg.init_from, device)
        if start_net.cfg != net_cfg:
            raise CheckpointError(cfg.init_from, f"its network {start_net.cfg} differs from this run's {net_cfg}")
        net.load_state_dict(start_net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    identity = _run_identity(cfg, net_cfg, aug, faces, generated)
    ckpt_meta = {
        "scheme": faces.scheme.name,
        "crop_mode": "landmark-box",
        "margin": cfg.margin,
        "input_size": net_cfg.input_size,
        "heatmap_size": net_cfg.heatmap_size,
        "value_range": "[-1, 1]",
        "train": asdict(cfg),
        "augment": asdict(aug),
        "n_train_faces": len(faces),
        "n_generated_faces": identity["n_generated"],
        **(meta or {}),
    }
    ckpt = run_dir / "checkpoint.pt"
    first_step, elapsed_before = 0, 0.0
    state = _load_state(run_dir, identity)
    if state is not None:
        saved_net, _ = load_checkpoint(ckpt, device)
        net.load_state_dict(saved_net.state_dict())
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["aug_rng"]
        sampler.load_state_dict(state["sampler"])
        first_step, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        log.info("%s: resuming at step %d of %d", run_dir, first_step, cfg.steps)
    _keep_stats_until(run_dir / "stats.jsonl", first_step)
    (run_dir / "config.json").write_text(json.dumps({"train": asdict(cfg), "net": net_cfg.to_dict(), "augment": asdict(aug),
                                                     "meta": meta or {}, "n_real": len(faces),
                                                     "n_generated": identity["n_generated"]}, indent=2))
    from gannotate.training.runs import RunDir

    run = RunDir(run_dir)  # stats rows are appended one at a time: no file stays open if a step raises

    # Training loop.
    t0, running = time.time() - elapsed_before, []
    for step in range(first_step, cfg.steps):
        images, pts = sample_batch(all_faces, sampler.next(), rng, net_cfg.input_size, cfg.margin, aug)
        x = to_tensor(images, device)
        target = crop_to_heatmap(torch.from_numpy(pts).to(device), net_cfg.input_size, net_cfg.heatmap_size)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg, time.time() - t0)
        net.train()
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(x)
        loss, parts = detector_loss(logits, target, cfg.sigma, cfg.heatmap_weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        running.append(parts["l1"] * net_cfg.input_size)  # L1 per point in crop pixels

        # Maintenance: stats, checkpoint + training state, validation, time budget.
        last = step + 1 == cfg.steps
        elapsed = time.time() - t0
        out_of_time = cfg.time_budget_s > 0 and elapsed > cfg.time_budget_s
        log_now = (step + 1) % cfg.log_every == 0 or last or out_of_time
        checkpoint_now = (step + 1) % cfg.checkpoint_every == 0 or last or out_of_time
        row = {"step": step + 1, "time_s": round(elapsed, 1)}
        if checkpoint_now:  # independent of log_every: a checkpoint step always gets a stats row
            save_checkpoint(ckpt, net, {**ckpt_meta, "steps_done": step + 1, "train_time_s": round(elapsed, 1), "time_budget_hit": out_of_time})
            _save_state(run_dir, identity, step + 1, elapsed, opt, scaler, rng, sampler)
            if val is not None and len(val):
                row["val_nme"] = float(np.mean(evaluate_faceset(net, val, cfg.margin)))
        if log_now:
            row.update({"lr": opt.param_groups[0]["lr"], "loss": float(loss.detach()), **parts,
                        "mean_err_px": float(np.mean(running))})
            running = []
        if log_now or checkpoint_now:
            run.append_stats(row)
            log.info("step %d %s", step + 1, row)
            if progress is not None:
                progress(step + 1, cfg.steps, elapsed)
        if out_of_time:
            log.warning("time budget of %.0f s reached after %d of %d steps", cfg.time_budget_s, step + 1, cfg.steps)
            break
    return ckpt


def _save_state(run_dir: Path, identity: dict, step: int, elapsed: float, opt: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, rng: np.random.Generator, sampler: BatchSampler) -> None:
    """Everything besides the weights that a resumed run needs, written after the checkpoint (atomic, verified)."""
    from gannotate.training.runs import save_checkpoint as save_run_state

    save_run_state(run_dir / STATE_FILE, {
        "kind": STATE_KIND, "format_version": STATE_FORMAT, "identity": json.dumps(identity), "step": step,
        "elapsed_s": elapsed, "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(), "aug_rng": rng.bit_generator.state, "sampler": sampler.state_dict()})


def _keep_stats_until(path: Path, step: int) -> None:
    """Drop stats rows past ``step`` (written after the last checkpoint of a killed run): the resumed run rewrites them."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


def train_with_generated(
    faces: FaceSet,
    generated: FaceSet | None,
    run_dir: str | Path,
    cfg: DetectorTrainConfig = DetectorTrainConfig(),
    recipe: str = "mixed",
    net_cfg: DetectorConfig | None = None,
    aug: CropAugmentConfig = CropAugmentConfig(),
    val: FaceSet | None = None,
    meta: dict | None = None,
    progress: Progress | None = None,
) -> Path:
    """:func:`train` with one of :data:`RECIPES` for the generated faces (None: real only); resumable.

    ``pretrain`` runs ``cfg.steps`` on the generated faces, then ``cfg.steps`` on the real ones (twice
    the compute: the real phase alone matches a real-only run's budget).
    """
    if recipe not in RECIPES:
        raise GannotateError(f"unknown training recipe {recipe!r} (known: {', '.join(RECIPES)})")
    meta = {**(meta or {}), "recipe": recipe if generated is not None else "real"}
    if generated is None or recipe == "mixed":
        return train(faces, run_dir, cfg, net_cfg, aug, val, meta, generated, progress)
    from gannotate.detector.model import training_complete

    pre = Path(run_dir) / "pretrain"
    if not training_complete(pre / "checkpoint.pt", cfg.steps):
        train(generated, pre, cfg, net_cfg, aug, val, {**meta, "phase": "pretrain"}, None, progress)
    return train(faces, run_dir, replace(cfg, init_from=str(pre / "checkpoint.pt")), net_cfg, aug, val,
                 {**meta, "phase": "fine-tune"}, None, progress)
