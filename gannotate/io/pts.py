"""300W ``.pts`` landmark files: 1-based on disk, 0-based (x, y) float32 in memory.

Convention: 300W stores Matlab-style coordinates (top-left pixel centre = (1, 1)); we subtract 1
on read and add 1 on write, here and nowhere else.

Accepted on read: with or without the ``version: 1`` / ``n_points: K`` / ``{`` ... ``}`` header,
CRLF line ends, blank lines, ``#`` comments, extra whitespace. Written: always with the header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gannotate.errors import LandmarkFileError
from gannotate.io.atomic import atomic_write_text

__all__ = ["read_pts", "write_pts", "format_pts"]


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the lines that matter (no blanks/comments)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LandmarkFileError(path, "landmark file not found") from None
    except OSError as e:
        raise LandmarkFileError(path, f"cannot read landmark file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LandmarkFileError(path, "not a text file (cannot decode as utf-8)") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.split("#", 1)[0].strip()
        if s:
            out.append((i, s))
    return out


def read_pts(path: str | Path, n_points: int | None = None) -> np.ndarray:
    """Read a 300W ``.pts`` file.

    Args:
        path: the file.
        n_points: expected K (e.g. ``scheme.n_points``); ``None`` accepts any K ≥ 1.

    Returns:
        (K, 2) float32, (x, y), 0-based pixel centres.

    Raises:
        LandmarkFileError: missing file, malformed header, non-numeric or non-finite value (with its
            line number), a count that disagrees with the header or with ``n_points``.
    """
    p = Path(path)
    lines = _content_lines(p)
    declared: int | None = None
    body: list[tuple[int, str]] = []
    for no, s in lines:
        key = s.split(":", 1)[0].strip().lower() if ":" in s else ""
        if key == "version":
            continue
        if key == "n_points":
            try:
                declared = int(s.split(":", 1)[1])
            except ValueError:
                raise LandmarkFileError(p, f"bad n_points header {s!r}", no) from None
            continue
        if s == "{":
            continue
        if s == "}":
                    continue
        body.append((no, s))
    if not body:
        raise LandmarkFileError(p, "no points in landmark file")
    values = np.empty((len(body), 2), dtype=np.float64)
    for row, (no, s) in enumerate(body):
        parts = s.replace(",", " ").split()
        if len(parts) != 2:
            raise LandmarkFileError(p, f"expected 2 numbers 'x y', got {s!r}", no)
        try:
            values[row] = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise LandmarkFileError(p, f"non-numeric coordinate in {s!r}", no) from None
        if not np.all(np.isfinite(values[row])):
            raise LandmarkFileError(p, f"coordinate is NaN or infinite: {s!r}", no)
    k = len(body)
    if declared is not None and declared != k:
        raise LandmarkFileError(p, f"header says n_points: {declared} but the file has {k} points")
    if n_points is not None and k != n_points:
        raise LandmarkFileError(p, f"expected {n_points} points, got {k}")
    return (values - 1.0).astype(np.float32)


def format_pts(points: np.ndarray) -> str:
    """The text of a 300W ``.pts`` file (header, 1-based, 6 decimals) for (K, 2) 0-based points."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points: expected shape (K, 2), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points: contains NaN or infinite coordinates")
    body = "\n".join(f"{x:.6f} {y:.6f}" for x, y in pts + 1.0)
    return f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n"


def write_pts(path: str | Path, points: np.ndarray) -> Path:
    """Write (K, 2) 0-based (x, y) points as a 300W ``.pts`` (header, 1-based), atomically.

    Six decimals keep a float32 round trip exact to < 1e-5 px for images up to ~10^4 px.
    """
    return atomic_write_text(path, format_pts(points))
