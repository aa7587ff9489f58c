"""Is a trained generator following the heatmaps, or copying its input? Measured on fixed triplets.

A landmark-guided generator has a trivial solution: return the input. It makes the self- and
triple-consistency terms (and the identity term) zero, so falling consistency losses prove
nothing. The probe compares the pixel error of Î = G(I; H(s_t)) against the target with the error
a copy of the input would have on the same triplets, and says how far Î moved from I:

- ``pix_ratio`` = ‖Î − I_t‖² / ‖I − I_t‖²: below 1 means G beats copying;
- ``moved`` = ‖Î − I‖²: ≈ 0 means G returns its input (with ``pix_ratio`` ≈ 1, the copy solution);
- ``triple`` = ‖G(Î; H(s_n)) − G(I; H(s_n))‖² and ``mask`` = mean blend mask M (1 keeps the input).

The triplets come from the run's own sampler, as the batches of steps 10⁹, 10⁹ + 1, … (steps no
run reaches, so not the batches it trained on), so checkpoints of one run, or of runs with
different settings, are measured on the very same images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gannotate.training.cache import TrainingCache
from gannotate.training.config import GANTrainConfig
from gannotate.training.losses import pixel_l2, triple_consistency
from gannotate.training.trainer import build_networks, device_batch, heatmap_renderer, load_checkpoint
from gannotate.training.triplets import TripletBatches

__all__ = ["ProbeResult", "probe_checkpoint", "PROBE_FIRST_STEP"]

PROBE_FIRST_STEP = 10**9  # probe batches are drawn as these steps' batches


@dataclass(frozen=True)
class ProbeResult:
    """Means over the probe triplets (see the module docstring)."""

    step: int  # the checkpoint's training step
    n_triplets: int
    pix: float  # ‖Î − I_t‖²
    pix_copy: float  # ‖I − I_t‖², what copying the input scores
    pix_ratio: float  # pix / pix_copy (< 1: better than copying)
    moved: float  # ‖Î − I‖² (≈ 0: the output is the input)
    triple: float  # ‖G(Î; H(s_n)) − G(I; H(s_n))‖²
    mask: float  # mean blend mask M ∈ [0, 1] (1 = keep the input pixel)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.no_grad()
def probe_checkpoint(
    checkpoint: str | Path,
    cache_path: str | Path,
    n_batches: int = 6,
    batch_size: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """Measure a training checkpoint's generator on ``n_batches × batch_size`` fixed triplets.

    Args:
        checkpoint: a training checkpoint (``gannotate train run`` writes ``checkpoint.pt``).
        cache_path: the training cache (its faces; the probe seed picks other draws than training's).
        seed: the sampling seed (keep it fixed to compare checkpoints).

    Raises:
        CheckpointError: the checkpoint is missing, unsafe or not a training checkpoint.
    """
    ckpt = load_checkpoint(checkpoint)
    cfg = GANTrainConfig.from_dict(ckpt["config"])
    device = torch.device(device)
    cache = TrainingCache(cache_path)
    G, _ = build_networks(cfg, cache.n_points)
    G.load_state_dict(ckpt["G"])
    G.to(device).eval()
    data = TripletBatches(cache, cfg.triplet_config(), seed=seed, samples=range(batch_size))
    render = heatmap_renderer(cfg, device)
    sums = dict.fromkeys(("pix", "pix_copy", "moved", "triple", "mask"), 0.0)
    for step in range(n_batches):
        b = device_batch(data.batch(PROBE_FIRST_STEP + step, range(batch_size)), device, render)
        fake, _, mask = G.forward_parts(b["image_a"], b["heat_t"])
        sums["pix"] += float(pixel_l2(fake, b["image_t"]))
        sums["pix_copy"] += float(pixel_l2(b["image_a"], b["image_t"]))
        sums["moved"] += float(pixel_l2(fake, b["image_a"]))
        sums["triple"] += float(triple_consistency(G(fake, b["heat_n"]), G(b["image_a"], b["heat_n"])))
        sums["mask"] += float(mask.mean())
    m = {k: v / n_batches for k, v in sums.items()}
    return ProbeResult(step=int(ckpt["step"]), n_triplets=n_batches * batch_size, pix_ratio=m["pix"] / m["pix_copy"], **m)
