"""Measured targets on the real shapes of ../shared/data (deselected by default)."""

from __future__ import annotations

import numpy as np
import pytest

from shape_model.datasets import aflw2000_split, load_test_shapes, read_aflw2000
from shape_model.ibug68 import OUTER_EYE_CORNERS

pytestmark = pytest.mark.shared_data


def _nme(pred: np.ndarray, gt: np.ndarray) -> float:
    iod = np.linalg.norm(gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return float(100 * np.mean(np.linalg.norm(pred - gt, axis=-1).mean(-1) / iod))


def test_reconstruction_nme_on_held_out_300w(model, shared_data):
    test = load_test_shapes(shared_data)
    assert len(test["common"]) == 554 and len(test["challenging"]) == 135
    common = _nme(model.instances(model.fit(test["common"])), test["common"])
    challenging = _nme(model.instances(model.fit(test["challenging"])), test["challenging"])
    assert common <= 2.0
    assert challenging <= 3.0


def test_fitted_yaw_matches_aflw2000_labels_on_the_held_out_half(model, shared_data):
    shapes, yaw = read_aflw2000(shared_data / "aflw2000_3d_3ddfa")
    _, odd = aflw2000_split(len(shapes))
    sel = odd[np.abs(yaw[odd]) <= 60]
    fitted = model.fit(shapes[sel]).yaw
    assert np.mean(np.abs(fitted - yaw[sel])) <= 8.0
