"""Training triplets (I, I_t, I_n) with landmarks, drawn from a :class:`~gannotate.training.cache.TrainingCache`.

- **paired**: three distinct frames of one clip (one person; the expressions and poses differ).
  The same mirror decision applies to all three, so they stay one person in one setting.
- **unpaired**: one photo turned into three views, each by its own random rotation, shear, scale
  and shift, all three mirrored or none (probability 1/2); image and landmarks go through the same
  :class:`~gannotate.geometry.Affine`, and the mirror re-orders points by the scheme's flip table.

Every view is then cropped as the paper does (landmark box + margin, square, ``image_size``²).
Each batch is paired *or* unpaired (probability ``paired_ratio``), as in the paper.

Determinism: the kind of batch ``step`` comes from ``default_rng([seed, step + 1])`` and its sample
``i`` from ``default_rng([seed, step + 1, i + 1])``, nothing else; so a resumed run, a data-loader
worker, or N processes each drawing a slice of the samples all see exactly the same batches.

Convention: numpy images uint8 (H, W, 3) RGB; points (K, 2) float32, 0-based pixel centres; the
torch batch holds images (B, 3, H, W) float32 in [-1, 1] and points (B, K, 2) in crop pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gannotate.errors import DatasetError
from gannotate.geometry import Affine, hflip_transform, paper_crop_transform, similarity, translation
from gannotate.landmarks import scheme_for
from gannotate.training.cache import TrainingCache
from gannotate.training.config import TripletConfig

__all__ = ["TripletSampler", "TripletBatches", "to_tensor_images"]


class TripletSampler:
    """Draw triplet batches as numpy arrays (no torch): the data part of training, testable alone.

    Args:
        cache: the training cache.
        cfg: sampling settings.
    """

    def __init__(self, cache: TrainingCache, cfg: TripletConfig = TripletConfig()):
        self.cache, self.cfg = cache, cfg
        self.scheme = scheme_for(cache.n_points)
        self.clip_ids = np.asarray(sorted(g for g, idx in cache.clips.items() if len(idx) >= 3), np.int64)
        if not len(self.clip_ids) and not len(cache.photos):
            raise DatasetError(cache.path, "no clip with 3+ frames and no photo: nothing to draw triplets from")

    def _use_paired(self, rng: np.random.Generator) -> bool:
        if not len(self.clip_ids):
            return False
        if not len(self.cache.photos):
            return True
        return bool(rng.random() < self.cfg.paired_ratio)

    def _view(
        self, index: int, rng: np.random.Generator, perturb: bool, mirror: bool, img: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One cropped view of cache entry ``index``: ((S, S, 3) uint8, (K, 2) float32).

        ``img``: the entry's decoded image when the caller already has it (read-only here), else decoded.
        """
        c, cfg = self.cache, self.cfg
        img = c.decode(index) if img is None else img
        pts = c.landmarks[index]
        t = Affine(np.eye(3))
        if mirror:
            t = hflip_transform(img.shape[1])
            pts_m = t.apply(pts)[self.scheme.flip_array]
        else:
            pts_m = pts
        centre = pts_m.mean(axis=0)
        if perturb:
            shear = Affine(np.array([[1.0, rng.uniform(-cfg.shear, cfg.shear), 0.0], [0.0, 1.0, 0.0], [0, 0, 1.0]]))
            warp = (
                translation(-centre[0], -centre[1])
                .compose_before(shear)
                .compose_before(similarity(1.0, rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)))
                .compose_before(translation(centre[0], centre[1]))
            )
            t = t.compose_before(warp)
            pts_m = warp.apply(pts_m)
        crop = paper_crop_transform(pts_m, cfg.image_size, cfg.margin * float(c.scale[index]))
        half = (cfg.image_size - 1) / 2
        shift = rng.uniform(-1, 1, size=2) * cfg.shift_jitter * cfg.image_size
        jitter = (
            translation(-half, -half)
            .compose_before(similarity(1.0 + rng.uniform(-cfg.scale_jitter, cfg.scale_jitter)))
            .compose_before(translation(half + shift[0], half + shift[1]))
        )
        t = t.compose_before(crop).compose_before(jitter)
        out_pts = t.apply(pts)
        if mirror:
            out_pts = out_pts[self.scheme.flip_array]
        return t.warp(img, cfg.image_size), out_pts.astype(np.float32)

    def _paired_indices(self, rng: np.random.Generator) -> np.ndarray:
        frames = self.cache.clips[int(rng.choice(self.clip_ids))]
        gap = self.cfg.min_frame_gap if len(frames) >= 3 * self.cfg.min_frame_gap else 1
        # three positions at least `gap` apart: draw sorted offsets in a shrunken range, then spread them
        picks = np.sort(rng.choice(len(frames) - 2 * (gap - 1), size=3, replace=False)) + np.arange(3) * (gap - 1)
        return frames[rng.permutation(picks)]

    def sample(self, seed: int, step: int, samples: range | list[int]) -> dict[str, np.ndarray | bool]:
        """The samples ``samples`` of batch ``step`` (see *Determinism* in the module docstring).

        Returns:
            ``images`` (3, B, S, S, 3) uint8 and ``points`` (3, B, K, 2) float32 for (I, I_t, I_n),
            B = len(samples), and ``paired`` (bool): which kind of triplet the whole batch holds.
        """
        paired = self._use_paired(_rng(seed, step))
        images, points = [], []
        for i in samples:
            rng = _rng(seed, step, i)
            if paired:
                idx = self._paired_indices(rng)
                mirror = self.cfg.mirror and bool(rng.random() < 0.5)
                views = [self._view(int(j), rng, False, mirror) for j in idx]
            else:
                j = int(rng.choice(self.cache.photos))
                img = self.cache.decode(j)  # once: the three views warp the same photo
                mirror = self.cfg.mirror and bool(rng.random() < 0.5)
                views = [self._view(j, rng, True, mirror, img) for _ in range(3)]
            images.append(np.stack([v[0] for v in views]))
            points.append(np.stack([v[1] for v in views]))
        return {
            "images": np.ascontiguousarray(np.stack(images, axis=1)),  # (3, B, S, S, 3)
            "points": np.ascontiguousarray(np.stack(points, axis=1)),  # (3, B, K, 2)
            "paired": paired,
        }


def _rng(seed: int, step: int, sample: int | None = None) -> np.random.Generator:
    """The generator of batch ``step`` (step −1: the fixed preview batch), or of one of its samples."""
    key = [seed, step + 1] if sample is None else [seed, step + 1, sample + 1]
    return np.random.default_rng(key)


def to_tensor_images(images: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (..., 3, H, W) float32 in [-1, 1] (the generator's convention)."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3).contiguous()


class TripletBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``step`` is this process's share of that step's batch (``batch_size=None``).

    Item: ``image_a``, ``image_t``, ``image_n`` (B, 3, S, S) in [-1, 1]; ``points_a``, ``points_t``,
    ``points_n`` (B, K, 2) float32 crop pixels; ``paired`` (bool tensor).

    Args:
        cache_path: the training cache's path (opened lazily, on first use), or an already opened
            :class:`~gannotate.training.cache.TrainingCache` (fully in memory, so it also travels to
            data-loader workers).
        cfg: sampling settings.
        seed: the run's seed.
        samples: which sample indices of every batch this process draws (rank r of N with batch B:
            ``range(r·B/N, (r+1)·B/N)``), so N processes together draw the single-process batch.
        length: number of steps this dataset covers.
    """

    def __init__(
        self,
        cache_path: str | Path | TrainingCache,
        cfg: TripletConfig,
        seed: int = 0,
        samples: range = range(1),
        length: int = 1 << 30,
    ):
        self.cfg, self.seed, self.samples, self.length = cfg, seed, samples, length
        self._cache = cache_path if isinstance(cache_path, TrainingCache) else None
        self.cache_path = self._cache.path if self._cache is not None else cache_path
        self._sampler: TripletSampler | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.batch(int(step), self.samples)

    def batch(self, step: int, samples: range | list[int]) -> dict[str, torch.Tensor]:
        """Samples ``samples`` of batch ``step`` as tensors (step −1 is the fixed preview batch)."""
        if self._sampler is None:
            cache = self._cache if self._cache is not None else TrainingCache(self.cache_path)
            self._sampler = TripletSampler(cache, self.cfg)
        b = self._sampler.sample(self.seed, step, samples)
        ims = to_tensor_images(b["images"])  # (3, B, 3, S, S)
        pts = torch.from_numpy(b["points"])
        out = {f"image_{k}": ims[j] for j, k in enumerate("atn")}
        out.update({f"points_{k}": pts[j] for j, k in enumerate("atn")})
        out["paired"] = torch.tensor(b["paired"])
        return out
