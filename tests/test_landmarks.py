import numpy as np
import pytest

from gannotate.errors import SchemeError
from gannotate.landmarks import IBUG66, IBUG68, flip_points, get_scheme, interocular_distance, nme, to_scheme


class TestSchemes:
    @pytest.mark.parametrize("scheme", [IBUG68, IBUG66])
    def test_flip_is_involution(self, scheme, rng):
        p = rng.uniform(0, 200, (3, scheme.n_points, 2)).astype(np.float32)
        np.testing.assert_allclose(flip_points(flip_points(p, 201, scheme), 201, scheme), p, atol=1e-4)
        idx = scheme.flip_array
        np.testing.assert_array_equal(idx[idx], np.arange(scheme.n_points))

    @pytest.mark.parametrize("scheme", [IBUG68, IBUG66])
    def test_flip_maps_eye_to_eye(self, scheme):
        f = scheme.flip_array
        right, left = scheme.groups["right_eye"], scheme.groups["left_eye"]
        assert sorted(f[list(right)]) == sorted(left)
        assert sorted(f[list(scheme.groups["jaw"])]) == sorted(scheme.groups["jaw"])
        a, b = scheme.outer_eye_corners
        assert f[a] == b

    def test_66_is_68_without_inner_mouth_corners(self, rng):
        p = rng.uniform(0, 100, (68, 2))
        q = to_scheme(p, "ibug66")
        assert q.shape == (66, 2)
        np.testing.assert_array_equal(q[60], p[61])
        # the 66 flip table equals the 68 one restricted to kept points
        flipped68 = to_scheme(flip_points(p, 100, IBUG68), "ibug66")
        np.testing.assert_allclose(flip_points(q, 100, IBUG66), flipped68)
        assert IBUG66.flip_index == (*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                                     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, *range(54, 47, -1),
                                     *range(59, 54, -1), 62, 61, 60, 65, 64, 63)

    def test_66_to_68_refused(self, rng):
        with pytest.raises(SchemeError):
            to_scheme(rng.uniform(0, 1, (66, 2)), "ibug68")

    def test_unknown_scheme_lists_valid(self):
        with pytest.raises(Exception, match="ibug68"):
            get_scheme("wflw98")


class TestNME:
    def test_nme_hand_computed(self):
        t = np.zeros((68, 2))
        t[36] = (0, 0)
        t[45] = (50, 0)
        p = t + np.array([3.0, 4.0])  # every point off by 5 px
        assert interocular_distance(t) == pytest.approx(50)
        assert nme(p, t) == pytest.approx(10.0)
        assert nme(p, t, percent=False) == pytest.approx(0.1)
