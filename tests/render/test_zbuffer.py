"""The numpy z-buffer: coverage, depth test, barycentrics, against a per-pixel reference on real meshes."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.render.zbuffer import interpolate, rasterise


def _reference(xy: np.ndarray, z: np.ndarray, tris: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, every triangle: the nearest one whose closed area holds the pixel centre, and its depth."""
    tri = np.full((h, w), -1)
    depth = np.full((h, w), np.inf)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for t, (i, j, k) in enumerate(tris):
        m = np.array([xy[j] - xy[i], xy[k] - xy[i]]).T  # (2, 2): columns are the edges
        if abs(np.linalg.det(m)) < 1e-9:
            continue
        l1, l2 = np.einsum("ab,bhw->ahw", np.linalg.inv(m), np.stack([xs - xy[i, 0], ys - xy[i, 1]]))
        inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (1 - l1 - l2 >= -1e-9)
        d = z[i] + l1 * (z[j] - z[i]) + l2 * (z[k] - z[i])
        near = inside & (d < depth)
        tri[near], depth[near] = t, d[near]
    return tri, depth


@pytest.fixture(scope="module")
def face_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Surrey face's mean shape turned 30° and projected into a 64² crop: real triangles, real overlaps."""
    from gannotate.render.profile import MODEL_PATH
    from shape_model.face3d import euler_to_rotation, load_face3d

    model = load_face3d(MODEL_PATH)
    cam = model.mean @ euler_to_rotation(30.0, 5.0, 0.0).T
    span = np.ptp(cam[:, :2], axis=0).max()
    xy = (cam[:, :2] - cam[:, :2].min(0)) * (56.0 / span) + 4.0
    xy[:, 1] = 63.0 - xy[:, 1]  # y down
    return xy, -cam[:, 2], model.triangles


class TestRasterise:
    def test_two_overlapping_triangles_the_nearer_shows(self):
        xy = np.array([[2, 2], [28, 4], [6, 28], [4, 6], [30, 30], [26, 2]], np.float64)
        tris = np.array([[0, 1, 2], [3, 4, 5]])
        for near, far in ((0, 1), (1, 0)):
            z = np.where(np.arange(6) < 3, 1.0 if near == 0 else 5.0, 5.0 if near == 0 else 1.0)
            r = rasterise(xy, z, tris, 32, 32)
            both = _reference(xy, z, tris[[0]], 32, 32)[0] >= 0
            both &= _reference(xy, z, tris[[1]], 32, 32)[0] >= 0
            assert both.sum() > 20 and np.all(r.triangle[both] == near)
            assert np.all(r.depth[both] == 1.0)

    def test_barycentrics_reproduce_the_pixel_centre(self, face_mesh):
        xy, z, tris = face_mesh
        r = rasterise(xy, z, tris, 64, 64)
        assert r.covered.sum() > 0.4 * 64 * 64
        pos = interpolate(r, tris, xy.astype(np.float32))  # (H, W, 2)
        ys, xs = np.mgrid[0:64, 0:64]
        np.testing.assert_allclose(pos[r.covered], np.stack([xs, ys], -1)[r.covered], atol=1e-3)
        np.testing.assert_allclose(r.bary[r.covered].sum(-1), 1.0, atol=1e-6)
        assert np.all(r.bary[r.covered] >= -1e-6) and np.all(r.bary[~r.covered] == 0)
        assert np.all(np.isinf(r.depth[~r.covered])) and np.all(r.triangle[~r.covered] == -1)

    def test_matches_a_per_pixel_reference_on_a_face_mesh(self, face_mesh):
        """Same triangle wherever the nearest surface is unambiguous, same depth everywhere it covers."""
        xy, z, tris = face_mesh
        r = rasterise(xy, z, tris, 64, 64)
        ref_tri, ref_depth = _reference(xy, z, tris, 64, 64)
        assert np.array_equal(r.covered, ref_tri >= 0)
        np.testing.assert_allclose(r.depth[r.covered], ref_depth[r.covered], rtol=1e-5, atol=1e-4)
        same = r.triangle == ref_tri  # where they differ, the two triangles meet at that pixel at one depth
        assert same.mean() > 0.995

    def test_both_windings_drawn_and_degenerate_triangles_skipped(self):
        xy = np.array([[2, 2], [20, 3], [4, 20], [10, 10], [10, 10], [12, 12]], np.float64)
        z = np.zeros(6)
        cw = rasterise(xy, z, np.array([[0, 1, 2]]), 24, 24)
        ccw = rasterise(xy, z, np.array([[0, 2, 1]]), 24, 24)
        assert np.array_equal(cw.covered, ccw.covered) and cw.covered.sum() > 100
        flat = rasterise(xy, z, np.array([[3, 4, 5]]), 24, 24)  # two vertices coincide: zero area
        assert not flat.covered.any()

    def test_outside_the_image_is_clipped(self):
        xy = np.array([[-10, -10], [40, -5], [-5, 40]], np.float64)
        r = rasterise(xy, np.zeros(3), np.array([[0, 1, 2]]), 16, 16)
        assert r.triangle.shape == (16, 16) and r.covered[:8, :8].all()
