"""The run bookkeeping every trainer shares: folder, stats rows, verified atomic checkpoints, RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gannotate.errors import CheckpointError
from gannotate.training.runs import (
    CHECKPOINT_NAME,
    RunDir,
    StatsWindow,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_all,
    set_rng_state,
)


class TestRunDir:
    def test_layout_config_and_stats(self, tmp_path):
        run = RunDir(tmp_path / "run").create()
        assert run.samples.is_dir() and run.checkpoint.name == CHECKPOINT_NAME
        run.write_config({"config": {"lr": 1e-4}, "path": tmp_path})  # a Path is written as str
        assert '"lr": 0.0001' in run.config.read_text() and str(tmp_path) in run.config.read_text()
        assert run.read_stats() == []
        window = StatsWindow()
        for v in (1.0, 3.0):
            window.add({"Loss/G/total": v})
        run.append_stats({"step": 2} | window.row(batch_size=4))
        window.reset()
        window.add({"Loss/G/total": 5.0})
        run.append_stats({"step": 3} | window.row(batch_size=4))
        rows = run.read_stats()
        assert [r["step"] for r in rows] == [2, 3] and [r["Loss/G/total"] for r in rows] == [2.0, 5.0]
        assert rows[0]["images_per_s"] == pytest.approx(4 * rows[0]["steps_per_s"])


class Opaque:
    """A pickled class instance: ``torch.save`` writes it, a ``weights_only`` load refuses it."""


class TestCheckpoint:
    def test_round_trip_kind_format_and_required_entries(self, tmp_path):
        path = save_checkpoint(tmp_path / "c.pt", {"kind": "k", "format_version": 2, "w": torch.arange(3), "config": {}})
        got = load_checkpoint(path, "k", 2, require=("config",))
        assert torch.equal(got["w"], torch.arange(3))
        with pytest.raises(CheckpointError, match="not a thing checkpoint"):
            load_checkpoint(path, "other", 2, what="thing")
        with pytest.raises(CheckpointError, match="format 2"):
            load_checkpoint(path, "k", 1)
        with pytest.raises(CheckpointError, match="no 'G'"):
            load_checkpoint(path, "k", 2, require=("config", "G"))

    def test_unsafe_state_is_refused_and_the_last_checkpoint_kept(self, tmp_path):
        path = save_checkpoint(tmp_path / "c.pt", {"kind": "k", "format_version": 1, "step": 1})
        with pytest.raises(CheckpointError, match="refused"):
            save_checkpoint(path, {"kind": "k", "format_version": 1, "step": 2, "bad": Opaque()})  # a weights_only load refuses it
        assert load_checkpoint(path, "k", 1)["step"] == 1
        assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_rng_state_round_trip():
    seed_all(3)
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
