from __future__ import annotations

import numpy as np
import pytest

from shape_model.errors import ShapeModelError
from shape_model.ibug68 import FLIP, mirror
from shape_model.pose import estimate_pose, load_mean_face_3d, rotation_to_euler, symmetrise_face_3d


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _project(rot: np.ndarray, scale: float = 2.0, offset=(200.0, 150.0)) -> np.ndarray:
    face = load_mean_face_3d()
    return scale * (face @ rot.T)[:, :2] + np.asarray(offset)


class TestMeanFace3D:
    def test_shipped_face_is_symmetric_and_camera_framed(self):
        face = load_mean_face_3d()
        assert face.shape == (68, 3)
        np.testing.assert_allclose(symmetrise_face_3d(face), face - face.mean(0), atol=1e-3)
        assert face[30, 2] < face[0, 2]  # nose tip nearer the viewer (z away from the viewer)
        assert face[8, 1] > face[30, 1]  # chin below the nose (y down)


class TestEstimatePose:
    @pytest.mark.parametrize("yaw_axis_deg", [-60.0, -30.0, 0.0, 20.0, 45.0])
    def test_recovers_exact_projection(self, yaw_axis_deg):
        rot = _rot(2, 8.0) @ _rot(0, -12.0) @ _rot(1, yaw_axis_deg)
        est = estimate_pose(_project(rot))
        np.testing.assert_allclose(est, rotation_to_euler(rot[None])[0], atol=1e-3)

    def test_yaw_sign_nose_towards_image_right_is_positive(self):
        pts = _project(_rot(1, 30.0))  # x' = x cos - z sin: the nose (z < 0) moves towards +x
        assert pts[30, 0] > pts[27:36].mean(0)[0] - 1e-9 and pts[30, 0] > pts[[0, 16], 0].mean()
        yaw, pitch, roll = estimate_pose(pts)
        assert yaw == pytest.approx(30.0, abs=1e-3)
        assert pitch == pytest.approx(0.0, abs=1e-3) and roll == pytest.approx(0.0, abs=1e-3)

    def test_pitch_sign_looking_up_is_positive(self):
        pts = _project(_rot(0, -20.0))  # y' = y cos + z sin: the nose (z < 0) moves up
        assert estimate_pose(pts)[1] == pytest.approx(20.0, abs=1e-3)

    def test_roll_sign_clockwise_on_screen_is_positive(self):
        assert estimate_pose(_project(_rot(2, 15.0)))[2] == pytest.approx(15.0, abs=1e-3)

    def test_mirrored_shape_negates_yaw_and_roll(self, rng):
        pts = _project(_rot(2, 5.0) @ _rot(0, 10.0) @ _rot(1, 35.0)) + rng.normal(0, 1.0, (68, 2))
        est, est_m = estimate_pose(np.stack([pts, mirror(pts, width=640)]))
        np.testing.assert_allclose(est_m, est * [-1, 1, -1], atol=1e-6)

    def test_invariant_to_image_similarity(self, rng):
        pts = _project(_rot(1, 25.0)) + rng.normal(0, 0.5, (68, 2))
        moved = 0.5 * pts + 40.0
        np.testing.assert_allclose(estimate_pose(moved), estimate_pose(pts), atol=1e-6)

    def test_batch_shape(self):
        pts = np.stack([_project(_rot(1, a)) for a in (-20.0, 0.0, 20.0)])
        assert estimate_pose(pts).shape == (3, 3)
        assert estimate_pose(pts[0]).shape == (3,)

    def test_flip_table_is_an_involution(self):
        np.testing.assert_array_equal(FLIP[FLIP], np.arange(68))

    @pytest.mark.parametrize(
        "points, message",
        [
            (np.zeros((66, 2)), "expected 68 points"),
            (np.full((68, 2), np.nan), "NaN"),
            (np.ones((68, 2)), "all points are equal"),
            (np.stack([np.arange(68.0), 2 * np.arange(68.0)], 1), "one line"),
            (np.zeros((68, 3)), "expected shape"),
        ],
    )
    def test_bad_input_names_the_problem(self, points, message):
        with pytest.raises(ShapeModelError, match=message):
            estimate_pose(points)

    def test_unknown_method(self):
        with pytest.raises(ShapeModelError, match="unknown method"):
            estimate_pose(_project(np.eye(3)), method="magic")
