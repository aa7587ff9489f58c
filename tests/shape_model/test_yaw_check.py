"""Yaw readings on the label scale (issue 13 item 5): curve inversion, and the BFM-68 fit (shared data)."""

from __future__ import annotations

import numpy as np
import pytest

from shape_model.face3d import euler_to_rotation
from shape_model.yaw_check import bfm68_pose, load_bfm68, reading_curve, to_label_scale


def test_an_estimator_that_over_reads_by_a_factor_is_mapped_back():
    rng = np.random.default_rng(0)
    label = rng.uniform(-80, 80, 4000)
    reading = 1.15 * label + rng.normal(0, 1.0, label.shape)  # reads everything 15% more turned
    curve = reading_curve(reading, label)
    back = to_label_scale(np.array([-51.75, -34.5, 0.0, 17.25, 34.5, 51.75]), curve)
    assert np.allclose(back, [-45, -30, 0, 15, 30, 45], atol=0.6)


@pytest.mark.shared_data
def test_bfm68_fit_recovers_the_pose_of_a_projected_bfm_face(shared_data):
    bfm = load_bfm68(shared_data / "bfm68_pdm_3ddfa")
    rng = np.random.default_rng(1)
    shapes = []
    for yaw in (-45.0, -15.0, 0.0, 30.0, 60.0):
        face = bfm.mean + bfm.basis @ np.clip(rng.standard_normal(bfm.basis.shape[2]), -1, 1) * 0.5
        rot = euler_to_rotation(yaw, 5.0, 3.0)
        shapes.append(2.0 * (face @ rot.T)[:, :2] + 100.0)
    est = bfm68_pose(np.stack(shapes), bfm)
    assert np.allclose(est[:, 0], [-45, -15, 0, 30, 60], atol=2.0)
