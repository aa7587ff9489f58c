"""Which faces each training batch holds: one pool, or real and generated pools at a fixed share.

Why a fixed share: adding four generated faces per real face to one shuffled pool cuts each real
face's exposure five-fold at a fixed step budget, so the added data starves the real faces (the
payoff protocol measured exactly that). With ``real_share`` the real faces keep a fixed share of
every batch whatever the generated set's size, so "real only" and "real + generated" see the real
faces equally often per step.

Each pool is walked in its own shuffled order (an epoch per pool) from one seeded generator, and
the sampler's state (orders, cursors, generator) round-trips through :meth:`state_dict` so a
resumed run draws the very batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gannotate.errors import GannotateError

__all__ = ["BatchSampler", "RECIPES"]

RECIPES = ("mixed", "pretrain")
"""How generated faces train beside real ones: ``mixed`` batches at a fixed real share, or ``pretrain``
on the generated faces alone, then fine-tune on the real ones from those weights."""


@dataclass
class _Pool:
    """One pool's shuffled order and position in it."""

    size: int
    offset: int  # index of the pool's first face in the concatenated FaceSet
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cursor: int = 0

    def take(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` indices (into the concatenated set), reshuffling whenever the pool is used up."""
        out = []
        while n > 0:
            if self.cursor >= len(self.order):
                self.order, self.cursor = rng.permutation(self.size), 0
            k = min(n, len(self.order) - self.cursor)
            out.append(self.order[self.cursor: self.cursor + k] + self.offset)
            self.cursor += k
            n -= k
        return np.concatenate(out) if out else np.zeros(0, np.int64)


class BatchSampler:
    """Batches of indices into ``real + generated`` (real faces first in the concatenated set).

    Args:
        n_real: real faces (indices ``0 .. n_real-1``).
        n_generated: generated faces (indices ``n_real ..``); 0 → real-only batches.
        batch_size: faces per batch.
        real_share: share of each batch drawn from the real pool when both pools are given; ``None``
            → one pool over everything (each face equally often, the share follows the set sizes).
        seed: seeds the shuffles.

    Example:
        >>> s = BatchSampler(10, 40, batch_size=8, real_share=0.5, seed=0)
        >>> int((s.next() < 10).sum())
        4
    """

    def __init__(self, n_real: int, n_generated: int, batch_size: int, real_share: float | None = 0.5, seed: int = 0):
        if n_real < 0 or n_generated < 0 or n_real + n_generated == 0:
            raise GannotateError(f"sampler: no faces to train on ({n_real} real, {n_generated} generated)")
        if batch_size < 1:
            raise GannotateError(f"sampler: batch size must be at least 1, got {batch_size}")
        if real_share is not None and not 0.0 <= real_share <= 1.0:
            raise GannotateError(f"sampler: real share must be in [0, 1], got {real_share}")
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        mixed = real_share is not None and n_real > 0 and n_generated > 0
        if mixed:
            n_r = int(round(batch_size * real_share))
            self.pools = [(_Pool(n_real, 0), n_r), (_Pool(n_generated, n_real), batch_size - n_r)]
        else:
            self.pools = [(_Pool(n_real + n_generated, 0), batch_size)]

    def next(self) -> np.ndarray:
        """The next batch: (batch_size,) int64 indices, real ones first."""
        return np.concatenate([pool.take(n, self.rng) for pool, n in self.pools])

    def state_dict(self) -> dict:
        """Plain types only (loads with ``torch.load(weights_only=True)``)."""
        return {"rng": self.rng.bit_generator.state,
                "pools": [{"order": p.order.tolist(), "cursor": p.cursor} for p, _ in self.pools]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["pools"]) != len(self.pools):
            raise GannotateError("sampler: saved state has another number of pools (data changed since?)")
        self.rng.bit_generator.state = state["rng"]
        for (pool, _), saved in zip(self.pools, state["pools"]):
            pool.order, pool.cursor = np.asarray(saved["order"], np.int64), int(saved["cursor"])
