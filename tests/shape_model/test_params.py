from __future__ import annotations

import numpy as np
import pytest

from shape_model.errors import ShapeModelError
from shape_model.params import Params


def _params(n=4, e=3, seed=0):
    r = np.random.default_rng(seed)
    return Params(*(r.normal(size=n) for _ in range(6)), expression=r.normal(size=(n, e)))


class TestParams:
    def test_vector_layout(self):
        p = Params(2.0, 10.0, 3.0, 4.0, 30.0, -5.0, np.array([[0.1, 0.2]]))
        np.testing.assert_array_equal(p.to_vector(), np.float32([[2, 10, 3, 4, 30, -5, 0.1, 0.2]]))
        assert p.to_vector().dtype == np.float32

    def test_round_trip(self):
        p = _params()
        q = Params.from_vector(p.to_vector(), n_expression=3)
        np.testing.assert_allclose(q.to_vector(), p.to_vector())
        assert len(q) == 4 and q.n_expression == 3

    def test_single_vector_gives_one_row(self):
        assert len(Params.from_vector(np.zeros(8))) == 1

    def test_wrong_length_names_the_problem(self):
        with pytest.raises(ShapeModelError, match="expected 9 columns"):
            Params.from_vector(np.zeros((2, 8)), n_expression=3)

    def test_indexing_keeps_batch_axis(self):
        p = _params()
        assert len(p[2]) == 1 and p[2].yaw[0] == p.yaw[2]
        assert len(p[-1]) == 1 and p[-1].yaw[0] == p.yaw[-1]
        assert len(p[1:3]) == 2
        assert len(p[np.array([True, False, True, True])]) == 3

    def test_scalars_broadcast_and_bad_lengths_fail(self):
        p = Params(1.0, 0.0, 0.0, 0.0, np.arange(3.0), 0.0, np.zeros((1, 2)))
        assert len(p) == 3 and p.expression.shape == (3, 2)
        with pytest.raises(ShapeModelError, match="rows for 3 shapes"):
            Params(np.ones(2), 0.0, 0.0, 0.0, np.arange(3.0), 0.0, np.zeros((1, 2)))

    def test_concatenate(self):
        p = Params.concatenate([_params(2), _params(3, seed=1)])
        assert len(p) == 5
