"""gannotate.evidence.payoff: mean ± std over seeds, verdicts beyond the seed spread, resumable arms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gannotate.errors import GannotateError
from gannotate.evidence.payoff import PayoffConfig, arm_name, best_range, payoff_markdown, run_payoff, summarise_arms
from gannotate.render.base import RendererSpec


def _seeds(values, auc=0.3):
    return {i: {"nme": v, "auc_8": auc, "failure_8": 10.0} for i, v in enumerate(values)}


def test_summary_mean_std_and_verdicts():
    s = summarise_arms({"real": _seeds([5.0, 6.0, 7.0]), "warp±60": _seeds([8.0, 8.1, 7.9]),
                        "profile±15": _seeds([3.0, 3.1, 2.9], auc=0.5), "profile±60": _seeds([6.2, 5.8, 6.0])})
    assert s["real"]["nme"]["mean"] == pytest.approx(6.0) and s["real"]["nme"]["std"] == pytest.approx(1.0)
    assert s["warp±60"]["nme"]["delta"] == pytest.approx(2.0) and s["warp±60"]["nme"]["verdict"] == "hurts"
    assert s["profile±15"]["nme"]["verdict"] == "helps"
    assert s["profile±60"]["nme"]["verdict"] == "no change"  # |Δ| = 0 within the spread
    assert s["profile±15"]["auc_8"]["verdict"] == "helps"  # AUC improves upwards
    assert s["profile±15"]["nme_by_yaw/45+"]["n"] == 0  # absent metric: no values, no verdict
    assert best_range(s, "profile") == "±15 (helps, -3.00)" and best_range(s, "gan") == "–"
    md = payoff_markdown(s)
    assert "| real | 3 | 6.00 ± 1.00 |" in md and "+2.00 (hurts)" in md and "| \\|yaw\\| 0-15 |" in md


def test_config_is_checked(tmp_path):
    with pytest.raises(GannotateError, match="seed"):
        PayoffConfig(tmp_path, tmp_path, tmp_path, (RendererSpec("warp"),), seeds=())
    with pytest.raises(GannotateError, match="positive"):
        PayoffConfig(tmp_path, tmp_path, tmp_path, (RendererSpec("warp"),), ranges=(0.0,))
    with pytest.raises(GannotateError, match="positive"):
        PayoffConfig(tmp_path, tmp_path, tmp_path, (RendererSpec("warp"),), ranges_for={"warp": ()})
    with pytest.raises(GannotateError, match="at least 1"):
        PayoffConfig(tmp_path, tmp_path, tmp_path, (RendererSpec("warp"),), steps=0)
    cfg = PayoffConfig(tmp_path, tmp_path, tmp_path, (RendererSpec("warp"),), ranges=(15.0, 60.0), ranges_for={"gan": (60.0,)})
    assert cfg.ranges_of("warp") == (15.0, 60.0) and cfg.ranges_of("gan") == (60.0,)


def test_run_payoff_end_to_end_and_resume(split_faces, tmp_path):
    train, val = split_faces
    cfg = PayoffConfig(train=train, val=val, out=tmp_path / "p", renderers=(RendererSpec("warp"),), ranges=(30.0,),
                       seeds=(0, 1), steps=2, batch_size=4, width=8, n_per_face=1, tests={"again": val})
    res = run_payoff(cfg)
    arm = arm_name("warp", 30)
    assert set(res.summary) == {"val", "again"} and set(res.summary["val"]) == {"real", arm}
    assert res.summary["val"]["real"]["nme"]["n"] == 2 and np.isfinite(res.summary["val"][arm]["nme"]["mean"])
    assert res.generated[arm]["samples"] == len(list(train.glob("*.pts")))  # one target per training face
    assert all(p.is_file() for p in res.ced.values())
    # Same truth for both test sets → same numbers: the evaluation is a function of the checkpoints.
    assert res.summary["again"][arm]["nme"]["mean"] == pytest.approx(res.summary["val"][arm]["nme"]["mean"])
    doc = json.loads((tmp_path / "p" / "payoff.json").read_text())
    assert doc["config"]["seeds"] == [0, 1] and doc["config"]["renderers"] == [{"name": "warp", "options": {}}]
    ckpts = sorted((tmp_path / "p" / "arms").rglob("checkpoint.pt"))
    assert len(ckpts) == 4  # 2 arms × 2 seeds
    stamps = [c.stat().st_mtime_ns for c in ckpts]
    again = run_payoff(cfg)  # complete arms are not retrained
    assert [c.stat().st_mtime_ns for c in ckpts] == stamps
    assert again.summary["val"][arm]["nme"]["mean"] == pytest.approx(res.summary["val"][arm]["nme"]["mean"])
    # A partial experiment is scored as it stands: a seed with no run is left out, not trained.
    from dataclasses import replace

    partial = run_payoff(replace(cfg, seeds=(0, 1, 5), train_missing=False))
    assert partial.summary["val"][arm]["nme"]["n"] == 2 and not (tmp_path / "p" / "arms" / "real" / "seed5").exists()
    # A different seed trains a different network (the seed reaches the detector).
    per_seed = res.per_seed["val"]["real"]
    assert per_seed["0"]["nme"] != per_seed["1"]["nme"]
