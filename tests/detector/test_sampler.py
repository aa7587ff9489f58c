"""The batch sampler: a fixed real share per batch, every face of a pool once per epoch, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.detector.sampler import BatchSampler
from gannotate.errors import GannotateError


def test_fixed_real_share_whatever_the_pool_sizes():
    for n_gen in (5, 40, 400):
        s = BatchSampler(10, n_gen, batch_size=8, real_share=0.5, seed=1)
        for _ in range(20):
            b = s.next()
            assert len(b) == 8 and (b < 10).sum() == 4 and np.all(b[4:] >= 10) and np.all(b < 10 + n_gen)


def test_each_real_face_once_per_epoch():
    s = BatchSampler(12, 100, batch_size=8, real_share=0.75, seed=0)  # 6 real per batch: 2 batches = 1 epoch
    seen = np.concatenate([s.next()[:6] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(12))


def test_real_exposure_equals_real_only_training():
    """At share 0.5 and batch 2B the real faces are seen as often per step as real-only at batch B."""
    mixed = BatchSampler(30, 300, batch_size=16, real_share=0.5, seed=0)
    alone = BatchSampler(30, 0, batch_size=8, real_share=0.5, seed=0)
    a = np.bincount(np.concatenate([mixed.next()[:8] for _ in range(30)]), minlength=30)
    b = np.bincount(np.concatenate([alone.next() for _ in range(30)]), minlength=30)
    assert np.array_equal(a, b) and a.min() == a.max() == 8


def test_one_pool_without_share():
    s = BatchSampler(4, 4, batch_size=8, real_share=None, seed=0)
    assert sorted(s.next().tolist()) == list(range(8))


def test_state_round_trip_draws_the_same_batches():
    a = BatchSampler(7, 23, batch_size=6, real_share=0.5, seed=3)
    for _ in range(5):
        a.next()
    b = BatchSampler(7, 23, batch_size=6, real_share=0.5, seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(10):
        assert np.array_equal(a.next(), b.next())


def test_bad_settings():
    with pytest.raises(GannotateError, match="no faces"):
        BatchSampler(0, 0, 4)
    with pytest.raises(GannotateError, match="real share"):
        BatchSampler(4, 4, 4, real_share=1.5)
