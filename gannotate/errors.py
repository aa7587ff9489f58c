"""One family of errors, each carrying the context a user needs to fix the input.

Every message says what was expected, what arrived and, where it helps, what to do.
``assert`` stays for internal invariants; user input raises one of these.

The ``gannotate`` command turns these into exit codes (``gannotate.cli.options``): a fatal
:class:`GannotateError` is 3, :class:`NoFacesError` 1, :class:`DatasetCorruptError` 4; the full
table is in docs/reference.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "GannotateError",
    "InputFileError",
    "NoFacesError",
    "LandmarkFileError",
    "ImageFileError",
    "SchemeError",
    "ShapeError",
    "CheckpointError",
    "DatasetError",
    "DatasetCorruptError",
    "check_shape",
    "check_points",
]


class GannotateError(Exception):
    """Base of every error gannotate raises on purpose."""


class InputFileError(GannotateError):
    """A file given to gannotate cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class NoFacesError(GannotateError):
    """An ``--input`` (folder or list file) in which not one face was found: nothing to do.

    Exit code 1 like failed inputs (the input is at fault, not the tool). ``detail`` says what
    was there instead (images without landmark files, bad lines), in the same line.
    """

    def __init__(self, path: str | Path, detail: str = ""):
        self.path = str(path)
        self.detail = detail
        super().__init__(f"no faces found in {self.path}" + (f" ({detail})" if detail else ""))


class LandmarkFileError(InputFileError):
    """A landmark file (.pts, .ljson, list file) is missing, malformed or has the wrong count."""


class ImageFileError(InputFileError):
    """An image file is missing, unreadable or corrupt."""


class SchemeError(GannotateError):
    """Landmarks do not match the expected scheme (e.g. 66 points where 68 are expected)."""

    def __init__(self, expected: str | int, got: str | int, where: str | Path | None = None):
        self.expected = expected
        self.got = got
        self.where = None if where is None else str(where)
        prefix = f"{self.where}: " if self.where else ""
        hint = ""
        if {str(expected), str(got)} in ({"68", "66"}, {"ibug68", "ibug66"}):
            hint = " (convert with gannotate.landmarks.to_scheme(points, 'ibug66'))"
        super().__init__(f"{prefix}expected {expected} landmarks, got {got}{hint}")


class ShapeError(GannotateError):
    """An array argument has the wrong shape."""


class CheckpointError(GannotateError):
    """A checkpoint is missing, unsafe (pickled code) or does not match the model."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(GannotateError):
    """An output dataset (HDF5 or folder) is missing, inconsistent or not writable."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetCorruptError(DatasetError):
    """Committed samples whose bytes no longer match the checksum stored when they were written.

    A separate class (and exit code 4) because the remedy differs from other dataset errors: the
    file opened fine, but some of its content is wrong; ``rows`` names the damaged samples.
    """

    def __init__(self, path: str | Path, rows: Sequence[int], what: str = "images", detail: str | None = None):
        self.rows = [int(r) for r in rows]
        self.what = what
        shown = ", ".join(str(r) for r in self.rows[:10]) + (", ..." if len(self.rows) > 10 else "")
        problem = detail or (f"{what} of {len(self.rows)} sample(s) do not match their stored CRC32 "
                             f"(rows {shown})")
        super().__init__(
            path,
            f"corrupt: {problem}; the file was damaged after writing: re-create it (augment --no-resume) "
            "or restore a copy",
        )


def check_shape(x: np.ndarray | object, spec: str, name: str = "input") -> None:
    """Check ``x.shape`` against a spec such as ``"B K 2"`` (letters match any size, digits must match).

    Raises:
        ShapeError: naming the argument, the spec and the shape that arrived.

    Example:
        >>> check_shape(np.zeros((4, 68, 2)), "B K 2", "points")
    """
    dims: Sequence[str] = spec.split()
    shape = tuple(getattr(x, "shape", ()))
    ok = len(shape) == len(dims) and all(
        not d.isdigit() or int(d) == s for d, s in zip(dims, shape)
    )
    if not ok:
        raise ShapeError(f"{name}: expected shape ({', '.join(dims)}), got {shape}")


def check_points(points: np.ndarray, n_points: int | None = None, name: str = "points") -> np.ndarray:
    """Return ``points`` as float32 (..., K, 2) after checking shape, count and finiteness.

    Raises:
        ShapeError: when the last axis is not 2.
        SchemeError: when ``n_points`` is given and K differs.
        GannotateError: when any coordinate is NaN or infinite.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise ShapeError(f"{name}: expected shape (..., K, 2), got {pts.shape}")
    if n_points is not None and pts.shape[-2] != n_points:
        raise SchemeError(n_points, pts.shape[-2], name)
    if not np.all(np.isfinite(pts)):
        raise GannotateError(f"{name}: contains NaN or infinite coordinates")
    return pts
