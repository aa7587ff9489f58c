"""Read a landmark file of any supported format: ``.pts`` (ours) or menpo ``.ljson`` (via menpo).

Convention: returns (K, 2) float32 (x, y), 0-based pixel centres. menpo holds (y, x) 0-based
points; we swap the axes here, once, at the boundary.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gannotate.errors import LandmarkFileError
from gannotate.io.pts import read_pts

__all__ = ["LANDMARK_EXTENSIONS", "read_landmarks", "read_ljson"]

#: Extensions (lower case, with dot) that hold landmarks, in the order discovery prefers them.
LANDMARK_EXTENSIONS: tuple[str, ...] = (".pts", ".ljson")


def read_ljson(path: str | Path, n_points: int | None = None) -> np.ndarray:
    """Read a menpo LJSON file (v1, v2 or v3; the first group of a v3 file).

    Returns:
        (K, 2) float32, (x, y), 0-based.

    Raises:
        LandmarkFileError: missing or malformed file, missing (null) or non-finite points, wrong count.
    """
    import menpo.io as mio

    p = Path(path)
    if not p.is_file():
        raise LandmarkFileError(p, "landmark file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # menpo warns that v1/v2 are deprecated
            lms = mio.import_landmark_file(p)
    except Exception as e:  # menpo raises ValueError/KeyError/JSONDecodeError for bad files
        raise LandmarkFileError(p, f"not a readable LJSON file ({type(e).__name__}: {e})") from None
    if isinstance(lms, dict) or hasattr(lms, "keys"):
        keys = list(lms.keys())
        if not keys:
            raise LandmarkFileError(p, "LJSON file has no landmark group")
        lms = lms[keys[0]]
    yx = np.asarray(lms.points, dtype=np.float64)
    if yx.ndim != 2 or yx.shape[1] != 2:
        raise LandmarkFileError(p, f"expected 2D points, got shape {yx.shape}")
    if not np.all(np.isfinite(yx)):
        raise LandmarkFileError(p, "some points are null, NaN or infinite")
    if n_points is not None and len(yx) != n_points:
        raise LandmarkFileError(p, f"expected {n_points} points, got {len(yx)}")
    return np.ascontiguousarray(yx[:, ::-1]).astype(np.float32)


def read_landmarks(path: str | Path, n_points: int | None = None) -> np.ndarray:
    """Read ``.pts`` or ``.ljson`` by extension → (K, 2) float32 (x, y), 0-based.

    Raises:
        LandmarkFileError: unknown extension, or whatever the format's reader raises.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".pts":
        return read_pts(p, n_points)
    if ext == ".ljson":
        return read_ljson(p, n_points)
    raise LandmarkFileError(p, f"unknown landmark format {ext!r}; expected one of {list(LANDMARK_EXTENSIONS)}")
