"""gannotate.io.images: RGB uint8 in memory whatever the file holds; bad files raise ImageFileError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gannotate.errors import ImageFileError, InputFileError
from gannotate.io.images import read_image, to_rgb_uint8, write_image


@pytest.fixture()
def rgb():
    r = np.random.default_rng(1)
    return r.integers(0, 256, size=(12, 17, 3), dtype=np.uint8)


class TestReadWriteImage:
    @pytest.mark.parametrize("ext", [".png", ".bmp", ".ppm", ".PNG"])
    def test_lossless_round_trip(self, tmp_path, rgb, ext):
        p = write_image(tmp_path / f"a{ext}", rgb)
        np.testing.assert_array_equal(read_image(p), rgb)

    def test_rgb_order_on_disk_is_bgr_for_opencv(self, tmp_path, rgb):
        write_image(tmp_path / "a.png", rgb)
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png"))[..., ::-1], rgb)

    def test_jpeg_close(self, tmp_path):
        flat = np.full((16, 16, 3), (200, 100, 50), np.uint8)
        out = read_image(write_image(tmp_path / "a.jpg", flat))
        assert out.shape == (16, 16, 3) and np.abs(out.astype(int) - flat).max() <= 3

    def test_atomic_leaves_no_temporaries(self, tmp_path, rgb):
        write_image(tmp_path / "a.png", rgb)
        assert [p.name for p in tmp_path.iterdir()] == ["a.png"]

    def test_unknown_extension(self, tmp_path, rgb):
        with pytest.raises(ImageFileError, match="cannot encode"):
            write_image(tmp_path / "a.xyz", rgb)


class TestConversions:
    def test_grayscale(self, tmp_path):
        g = np.arange(60, dtype=np.uint8).reshape(6, 10)
        cv2.imwrite(str(tmp_path / "g.png"), g)
        out = read_image(tmp_path / "g.png")
        assert out.shape == (6, 10, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out[..., 1], g)

    def test_rgba_drops_alpha(self, tmp_path, rgb):
        bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
        cv2.imwrite(str(tmp_path / "a.png"), bgra)
        np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)

    def test_16_bit(self, tmp_path, rgb):
        cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1].astype(np.uint16) * 257)
        out = read_image(tmp_path / "a.png")
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb)

    def test_float_in_unit_range(self):
        out = to_rgb_uint8(np.ones((2, 2, 3), np.float32))
        assert out.dtype == np.uint8 and out.max() == 255


class TestBadImages:
    def test_missing(self, tmp_path):
        with pytest.raises(ImageFileError, match="not found") as e:
            read_image(tmp_path / "nope.jpg")
        assert "nope.jpg" in str(e.value) and isinstance(e.value, InputFileError)

    def test_corrupt(self, tmp_path):
        (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage" * 10)
        with pytest.raises(ImageFileError, match="not a readable image"):
            read_image(tmp_path / "bad.jpg")

    def test_empty(self, tmp_path):
        (tmp_path / "e.png").write_bytes(b"")
        with pytest.raises(ImageFileError, match="empty"):
            read_image(tmp_path / "e.png")
