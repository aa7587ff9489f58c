from __future__ import annotations

import numpy as np
import pytest

from shape_model.errors import ShapeModelError
from shape_model.ibug68 import mirror
from shape_model.params import Params
from shape_model.plausibility import eyes_inside_outline, is_plausible, polyline_self_intersects
from shape_model.pose import estimate_pose


def _random_params(model, n, seed=0, yaw=(-60, 60), pitch=(-20, 20)):
    r = np.random.default_rng(seed)
    p = model.sample(r, n, yaw_range=yaw, pitch_range=pitch, roll_range=(-40, 40))
    p.scale[:] = r.uniform(20, 300, n)
    p.tx[:], p.ty[:] = r.uniform(-100, 500, n), r.uniform(-100, 500, n)
    return p


class TestPoseFeatures:
    """φ(yaw, pitch) are the monomials u^i v^j of the module doc, and dφ is their derivative."""

    @pytest.mark.parametrize("degree", [1, 2, 3, 4])
    def test_monomials_and_their_derivatives(self, degree):
        from shape_model.pdm import ANGLE_UNIT, pose_exponents, pose_feature_jacobian, pose_features

        r = np.random.default_rng(degree)
        yaw, pitch = np.r_[0.0, r.uniform(-90, 90, 6)], np.r_[r.uniform(-60, 60, 6), 0.0]
        u, v = yaw / ANGLE_UNIT, pitch / ANGLE_UNIT
        ex = pose_exponents(degree)
        want = np.stack([u**i * v**j for i, j in ex], -1)  # (N, F)
        np.testing.assert_allclose(pose_features(yaw, pitch, degree), want, rtol=1e-12, atol=1e-15)
        assert pose_features(yaw[:1], pitch[:1], degree).shape == (1, len(ex))
        jac = pose_feature_jacobian(u, v, degree)  # (N, F, 2)
        h = 1e-6
        du = (pose_features((u + h) * ANGLE_UNIT, pitch, degree) - pose_features((u - h) * ANGLE_UNIT, pitch, degree)) / (2 * h)
        dv = (pose_features(yaw, (v + h) * ANGLE_UNIT, degree) - pose_features(yaw, (v - h) * ANGLE_UNIT, degree)) / (2 * h)
        np.testing.assert_allclose(jac, np.stack([du, dv], -1), atol=1e-7)
        assert not np.signbit(jac[..., 0][:, ex[:, 0] == 0]).any()  # exact +0 where a monomial has no u


class TestCalibration:
    @pytest.mark.parametrize("yaw", [-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0])
    def test_instance_yaw_is_estimated_within_5_degrees(self, model, yaw):
        assert estimate_pose(model.instance(yaw=yaw))[0] == pytest.approx(yaw, abs=5.0)

    @pytest.mark.parametrize("pitch", [-20.0, -10.0, 10.0, 20.0])
    def test_instance_pitch_is_estimated_within_5_degrees(self, model, pitch):
        assert estimate_pose(model.instance(pitch=pitch))[1] == pytest.approx(pitch, abs=5.0)

    def test_mean_is_frontal_and_symmetric(self, model):
        frontal = model.instance()
        np.testing.assert_allclose(mirror(frontal) - mirror(frontal).mean(0), frontal - frontal.mean(0), atol=1e-3)


class TestFitInstance:
    def test_round_trip_recovers_params(self, model):
        p = _random_params(model, 500)
        q = model.fit(model.instances(p))
        np.testing.assert_allclose(q.yaw, p.yaw, atol=0.02)
        np.testing.assert_allclose(q.pitch, p.pitch, atol=0.02)
        np.testing.assert_allclose(q.theta, p.theta, atol=0.01)
        np.testing.assert_allclose(q.scale / p.scale, 1.0, atol=1e-4)
        np.testing.assert_allclose(q.tx, p.tx, atol=1e-2)
        np.testing.assert_allclose(q.expression, p.expression, atol=1e-3)

    def test_fit_is_invariant_to_a_similarity_of_the_input(self, model):
        pts = model.instances(_random_params(model, 50, seed=1)).astype(np.float64)
        pts += np.random.default_rng(2).normal(0, 0.5, pts.shape)  # not exactly in the model
        th = np.radians(33.0)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        moved = 1.7 * pts @ rot.T + np.array([12.0, -40.0])
        a, b = model.fit(pts), model.fit(moved)
        np.testing.assert_allclose(b.yaw, a.yaw, atol=1e-4)
        np.testing.assert_allclose(b.expression, a.expression, atol=1e-5)
        np.testing.assert_allclose(b.scale / a.scale, 1.7, rtol=1e-6)
        np.testing.assert_allclose((b.theta - a.theta + 180) % 360 - 180, 33.0, atol=1e-4)

    def test_mirrored_shape_fits_negated_yaw(self, model):
        pts = model.instances(_random_params(model, 20, seed=3, yaw=(-40, 40))).astype(np.float64)
        pts += np.random.default_rng(4).normal(0, 0.3, pts.shape)
        a, b = model.fit(pts), model.fit(mirror(pts))
        np.testing.assert_allclose(b.yaw, -a.yaw, atol=0.05)
        np.testing.assert_allclose(b.pitch, a.pitch, atol=0.05)

    def test_single_shape_and_instance_keywords(self, model):
        x = model.instance(yaw=20.0, scale=100.0, tx=64.0, ty=64.0)
        assert x.shape == (68, 2) and x.dtype == np.float32
        p = model.fit(x)
        assert len(p) == 1 and p.yaw[0] == pytest.approx(20.0, abs=1e-3)
        np.testing.assert_allclose(model.instance(p), x, atol=1e-3)

    def test_fit_never_returns_nan_on_noisy_shapes(self, model, rng):
        pts = rng.normal(size=(100, 68, 2))  # not faces at all
        assert np.isfinite(model.fit(pts).to_vector()).all()

    @pytest.mark.parametrize(
        "points, message",
        [
            (np.zeros((2, 66, 2)), "expected 68 points"),
            (np.full((68, 2), np.nan), "NaN"),
            (np.full((68, 2), 5.0), "all points are equal"),
            (np.stack([np.arange(68.0), np.full(68, 3.0)], 1), "one line"),
        ],
    )
    def test_bad_input_names_the_problem(self, model, points, message):
        with pytest.raises(ShapeModelError, match=message):
            model.fit(points)

    def test_bad_params_names_the_problem(self, model):
        with pytest.raises(ShapeModelError, match="expression coefficients"):
            model.instances(Params(1, 0, 0, 0, 0, 0, np.zeros((1, model.n_expression + 1))))


class TestFrontalise:
    def test_zeroes_pose_keeps_the_rest(self, model):
        p = _random_params(model, 30)
        f = model.frontalise(p)
        assert np.all(f.yaw == 0) and np.all(f.pitch == 0) and np.all(f.theta == 0)
        np.testing.assert_array_equal(f.expression, p.expression)
        np.testing.assert_array_equal(f.scale, p.scale)
        shapes = model.instances(f)
        np.testing.assert_allclose(shapes.mean(axis=1), np.c_[p.tx, p.ty], atol=1e-3 * p.scale.max())

    def test_frontalised_shape_is_estimated_frontal(self, model):
        f = model.frontalise(model.fit(model.instance(yaw=35.0, pitch=10.0)))
        assert np.abs(estimate_pose(model.instances(f))[0, :2]).max() < 3.0


class TestSample:
    def test_ranges_seed_and_shapes(self, model):
        a = model.sample(7, 1000, yaw_range=(-30, 10), pitch_range=(5, 6), roll_range=(-3, 3))
        b = model.sample(np.random.default_rng(7), 1000, yaw_range=(-30, 10), pitch_range=(5, 6), roll_range=(-3, 3))
        np.testing.assert_array_equal(a.to_vector(), b.to_vector())
        assert a.yaw.min() >= -30 and a.yaw.max() <= 10 and a.pitch.min() >= 5 and np.abs(a.theta).max() <= 3
        assert model.instances(a).shape == (1000, 68, 2)
        assert np.abs(a.expression / model.expression_std).max() <= 2.5 + 1e-9

    def test_expression_scale_zero_keeps_base_face(self, model):
        base = model.fit(model.instance(yaw=10.0, scale=80.0, tx=50.0, ty=60.0))
        s = model.sample(0, 8, yaw_range=(-40, 40), expression_scale=0.0, base=base)
        np.testing.assert_allclose(s.expression, np.repeat(base.expression, 8, 0))
        np.testing.assert_allclose(s.scale, base.scale[0]) and np.testing.assert_allclose(s.tx, base.tx[0])

    def test_bad_ranges(self, model):
        with pytest.raises(ShapeModelError, match="yaw_range"):
            model.sample(0, 4, yaw_range=(10, -10))
        with pytest.raises(ShapeModelError, match="base has 2 rows"):
            model.sample(0, 3, base=model.sample(0, 2))


class TestPlausibility:
    @pytest.mark.parametrize("yaw, pitch", [(-45.0, -20.0), (-45.0, 20.0), (45.0, -20.0), (45.0, 20.0), (0.0, 0.0)])
    def test_10000_samples_at_the_range_ends_are_plausible(self, model, yaw, pitch):
        p = model.sample(0, 10_000, yaw_range=(yaw, yaw), pitch_range=(pitch, pitch))
        shapes = model.instances(p)
        assert eyes_inside_outline(shapes).all()
        assert not polyline_self_intersects(shapes[:, :17]).any()
        if yaw == 0.0:
            assert (np.diff(shapes[:, 3:14, 0], axis=1) > 0).all()  # lower jaw runs left to right

    def test_raw_model_is_mostly_plausible(self, model):
        # Without the redraw, the model alone: measured 100% at yaw 0 and ~90% at ±45° (docs/results/shape_model.md).
        for yaw, floor in ((0.0, 0.995), (45.0, 0.85), (-45.0, 0.85)):
            p = model.sample(1, 4000, yaw_range=(yaw, yaw), plausible_only=False)
            assert is_plausible(model.instances(p), p.yaw).mean() >= floor

    def test_checks_catch_broken_shapes(self, model):
        x = model.instance()[None].astype(np.float64)
        crossed = x.copy()
        crossed[0, [4, 12]] = crossed[0, [12, 4]]  # swap two jaw points: the contour crosses itself
        assert polyline_self_intersects(crossed[:, :17]).all()
        out = x.copy()
        out[0, 36] = [-10.0, 0.0]  # an eye corner far outside the face
        assert not eyes_inside_outline(out).any()
        assert is_plausible(x, np.zeros(1)).all()
