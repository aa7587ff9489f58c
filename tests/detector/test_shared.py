"""Checks on the real AFW + Helen faces in ../shared (deselected by default)."""

from __future__ import annotations

import pytest

from gannotate.detector.data import split_by_photo, write_list_file
from gannotate.metrics import evaluate_detector

pytestmark = pytest.mark.shared_data


def test_recipe_split_and_shipped_detector_floor(shared_data, tmp_path):
    root = shared_data / "300w_afw_helen_spinkoo"
    train, val = split_by_photo(root / "image_for_pts.txt", root / "images", 0.15, seed=0)
    assert (len(train), len(val)) == (410, 69)
    assert not {str(i) for _, i in train} & {str(i) for _, i in val}
    rep = evaluate_detector(None, write_list_file(tmp_path / "val.txt", val))
    assert rep.summary["n_faces"] == 69 and rep.summary["nme"] <= 8.0
