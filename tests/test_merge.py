"""merge: shards joined keep every per-row array (masks, fit residuals) and share image files by hard link."""

from __future__ import annotations

import numpy as np

from gannotate.augment import AugmentConfig, run_augment
from gannotate.io.hdf5 import DatasetReader
from gannotate.merge import merge_outputs
from gannotate.plan import PlanConfig


def test_merge_keeps_masks_and_links_images(tmp_path, face_folder):
    cfg = dict(input=face_folder, plan=PlanConfig(n=2, seed=1), size=64)
    run_augment(AugmentConfig(out=tmp_path / "whole", **cfg))
    for i in range(2):
        run_augment(AugmentConfig(out=tmp_path / f"s{i}", shard=(i, 2), **cfg))
    res = merge_outputs(tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"])
    assert res.n_total == 8 and not res.failures

    def by_pair(path):
        with DatasetReader(path / "dataset.h5") as r:
            assert r.masks is not None  # the warp renderer records where its output is real surface
            keys = [(r.sources[s], t) for s, t in zip(r.source_index, r.target_index)]
            order = sorted(range(len(keys)), key=keys.__getitem__)
            return [keys[i] for i in order], np.asarray(r.masks)[order], np.asarray(r.images)[order]

    km, mm, im = by_pair(tmp_path / "m")
    kw, mw, iw = by_pair(tmp_path / "whole")
    assert km == kw and np.array_equal(mm, mw) and np.array_equal(im, iw)
    png = next((tmp_path / "s1" / "images").glob("*.png"))
    assert (tmp_path / "m" / "images" / png.name).stat().st_ino == png.stat().st_ino  # one copy on disk
