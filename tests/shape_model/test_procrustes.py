from __future__ import annotations

import numpy as np
import pytest

from shape_model.procrustes import Similarity2D, align, generalised_procrustes, normalise_shape


def _similarity(points, scale, theta_deg, t):
    th = np.radians(theta_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return scale * points @ rot.T + np.asarray(t)


class TestAlign:
    def test_recovers_known_similarity(self, rng):
        src = rng.normal(size=(5, 20, 2))
        tgt = np.stack([_similarity(s, 2.5, 30.0 * i - 40, (3.0, -7.0 + i)) for i, s in enumerate(src)])
        sim = align(src, tgt)
        np.testing.assert_allclose(sim.apply(src), tgt, atol=1e-10)
        np.testing.assert_allclose(sim.scale, 2.5, rtol=1e-12)
        np.testing.assert_allclose(sim.theta, 30.0 * np.arange(5) - 40, atol=1e-10)

    def test_positive_theta_is_clockwise_on_screen(self):
        # y down: rotating the x axis by +90° sends it to +y (downwards on screen).
        sim = Similarity2D(np.array([np.exp(1j * np.pi / 2)]), np.array([0j]))
        np.testing.assert_allclose(sim.apply(np.array([[1.0, 0.0]])), [[[0.0, 1.0]]], atol=1e-12)
        assert sim.theta[0] == pytest.approx(90.0)

    def test_inverse(self, rng):
        sim = align(rng.normal(size=(3, 10, 2)), rng.normal(size=(3, 10, 2)))
        pts = rng.normal(size=(3, 10, 2))
        np.testing.assert_allclose(sim.inverse().apply(sim.apply(pts)), pts, atol=1e-10)

    def test_broadcasts_one_source_over_many_targets(self, rng):
        src = rng.normal(size=(10, 2))
        tgt = rng.normal(size=(4, 10, 2))
        assert align(src, tgt).a.shape == (4,)

    def test_degenerate_source_gives_no_nan(self):
        sim = align(np.zeros((1, 5, 2)), np.ones((1, 5, 2)))
        assert np.isfinite(sim.a).all() and np.isfinite(sim.t).all()


class TestGeneralisedProcrustes:
    def test_aligns_similar_copies_exactly(self, rng):
        base = rng.normal(size=(15, 2))
        moves = [(1, 0, (0, 0)), (3, 50, (5, 1)), (0.5, -80, (-2, 9))]
        shapes = np.stack([_similarity(base, s, th, t) for s, th, t in moves])
        mean, aligned = generalised_procrustes(shapes)
        np.testing.assert_allclose(aligned, np.broadcast_to(mean, aligned.shape), atol=1e-9)
        np.testing.assert_allclose(mean, normalise_shape(mean), atol=1e-12)  # centred, unit RMS radius

    def test_reference_fixes_orientation(self, rng):
        base = rng.normal(size=(15, 2))
        shapes = np.stack([_similarity(base, 2, th, (0, 0)) for th in (10, 20, 30)])
        mean, _ = generalised_procrustes(shapes, reference=base)
        np.testing.assert_allclose(mean, normalise_shape(base), atol=1e-9)
