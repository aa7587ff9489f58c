from __future__ import annotations

import numpy as np
import pytest

from shape_model.build import DEFAULT_MODEL_PATH, build_model, load_model, model_sha256, save_model
from shape_model.errors import ShapeModelError
from shape_model.pose import estimate_pose


@pytest.fixture(scope="module")
def synthetic_shapes(model):
    """Shapes drawn from the shipped model plus pixel noise (no ../shared needed)."""
    r = np.random.default_rng(5)
    p = model.sample(r, 300, yaw_range=(-50, 50), pitch_range=(-15, 15), roll_range=(-20, 20), plausible_only=False)
    p.scale[:] = r.uniform(50, 150, len(p))
    return model.instances(p).astype(np.float64) + r.normal(0, 0.2, (len(p), 68, 2)), np.c_[p.yaw, p.pitch]


class TestBuildModel:
    def test_builds_a_calibrated_model(self, synthetic_shapes):
        shapes, pose = synthetic_shapes
        m = build_model(shapes, pose, pose_degree=3, variance=0.95, provenance={"source": "test"})
        assert m.n_points == 68 and 1 <= m.n_expression < 60
        assert m.provenance["source"] == "test" and m.provenance["explained_variance"] >= 0.95
        for yaw in (-30.0, 0.0, 30.0):
            assert estimate_pose(m.instance(yaw=yaw))[0] == pytest.approx(yaw, abs=5.0)
        comps = m.components.reshape(m.n_expression, -1)
        np.testing.assert_allclose(comps @ comps.T, np.eye(m.n_expression), atol=1e-8)

    def test_contour_flags_and_linear_degree(self, synthetic_shapes):
        shapes, pose = synthetic_shapes
        valid = np.arange(len(shapes)) % 3 != 0
        m = build_model(shapes, pose, pose_degree=1, contour_valid=valid, calibrate=False)
        assert m.pose_degree == 1 and m.provenance["n_contour_valid"] == int(valid.sum())

    def test_bad_arguments(self, synthetic_shapes):
        shapes, _ = synthetic_shapes
        with pytest.raises(ShapeModelError, match="variance"):
            build_model(shapes, variance=1.5)
        with pytest.raises(ShapeModelError, match="NaN"):
            build_model(np.full((10, 68, 2), np.nan))
        with pytest.raises(ShapeModelError, match="modes_orthogonal_to"):
            build_model(shapes, modes_orthogonal_to="nothing")


class TestSaveLoad:
    def test_shipped_model_loads_without_shared_data(self):
        m = load_model()
        assert DEFAULT_MODEL_PATH.stat().st_size < 200_000
        prov = m.provenance
        assert {"sources", "counts", "date", "command", "held_out"} <= set(prov)
        assert m.n_params == 6 + m.n_expression

    def test_round_trip(self, tmp_path, model):
        path = save_model(model, tmp_path / "m.npz", provenance={"extra": 1})
        back = load_model(path)
        np.testing.assert_array_equal(back.components, model.components.astype(np.float32))
        assert back.provenance["extra"] == 1 and back.pose_degree == model.pose_degree
        p = model.sample(0, 5)
        np.testing.assert_allclose(back.instances(p), model.instances(p), atol=1e-5)
        assert model_sha256(path) == model_sha256(path) and len(model_sha256(path)) == 64

    def test_bad_files(self, tmp_path):
        with pytest.raises(ShapeModelError, match="cannot read"):
            load_model(tmp_path / "missing.npz")
        np.savez(tmp_path / "other.npz", a=np.zeros(3))
        with pytest.raises(ShapeModelError, match="not a shape model"):
            load_model(tmp_path / "other.npz")
