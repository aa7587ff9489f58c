"""Look at faces: landmarks drawn with the scheme's polylines, and contact sheets of many faces.

Convention: images (H, W, 3) uint8 RGB; points (K, 2) float32 (x, y), 0-based pixel centres.
Drawing is deterministic (same input, same pixels), so previews can be compared across runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from gannotate.errors import DatasetError, SchemeError
from gannotate.io.hdf5 import DatasetReader
from gannotate.io.images import to_rgb_uint8, write_image
from gannotate.landmarks import Scheme, get_scheme, scheme_for

__all__ = ["GROUP_COLOURS", "draw_landmarks", "contact_sheet", "preview_dataset"]

#: RGB colour per landmark group (groups not listed are drawn in white).
GROUP_COLOURS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 214, 0),
    "right_brow": (255, 96, 32),
    "left_brow": (255, 96, 32),
    "nose": (64, 160, 255),
    "right_eye": (0, 230, 118),
    "left_eye": (0, 230, 118),
    "mouth": (255, 64, 160),
}
_SHIFT = 4  # OpenCV fixed-point bits: draws at 1/16 px so sub-pixel points are not rounded
_WHITE = (255, 255, 255)


def _point_colours(scheme: Scheme | None, k: int) -> np.ndarray:
    """(K, 3) uint8 colour of each point from its group."""
    colours = np.full((k, 3), 255, np.uint8)
    if scheme is not None:
        for group, idx in scheme.groups.items():
            colours[list(idx)] = GROUP_COLOURS.get(group, _WHITE)
    return colours


def _resolve_scheme(scheme: str | Scheme | None, k: int) -> Scheme | None:
    if scheme is not None:
        sch = get_scheme(scheme)
        if sch.n_points != k:
            raise SchemeError(sch.n_points, k, "draw_landmarks")
        return sch
    try:
        return scheme_for(k)
    except SchemeError:
        return None  # unknown K: points only, no polylines


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    scheme: str | Scheme | None = None,
    color: tuple[int, int, int] | None = None,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw ``points`` on a copy of ``image``: the scheme's polylines, then a dot per point.

    Args:
        image: (H, W, 3) uint8 RGB (grayscale/RGBA converted).
        points: (K, 2) (x, y), 0-based pixel centres.
        scheme: polylines and groups to use (default: the scheme with K points, if any).
        color: one RGB colour for everything (default: a colour per group, see ``GROUP_COLOURS``).
        radius, thickness: dot radius and line width in pixels (default: scaled to the image size).

    Returns:
        (H, W, 3) uint8 RGB; the input is not modified.
    """
    out = np.ascontiguousarray(to_rgb_uint8(image).copy())
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    k = len(pts)
    h, w = out.shape[:2]
    size = min(h, w)
    thickness = thickness if thickness is not None else max(1, round(size / 256))
    radius = radius if radius is not None else max(1, round(size / 128))
    sch = _resolve_scheme(scheme, k)
    colours = _point_colours(sch, k) if color is None else np.tile(np.asarray(color, np.uint8), (k, 1))
    if sch is not None and np.all(np.isfinite(pts)):
        fixed = np.round(pts * (1 << _SHIFT)).astype(np.int32)  # (K, 2) fixed point
        for edge in sch.edges:
            c = tuple(int(v) for v in colours[edge[0]])
            cv2.polylines(out, [fixed[list(edge)]], False, c, thickness, cv2.LINE_AA, _SHIFT)
    # dots: one vectorised scatter of a disc around every point (K × D pixels)
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    disc = np.stack([dx[dx**2 + dy**2 <= radius**2 + 0.5], dy[dx**2 + dy**2 <= radius**2 + 0.5]], axis=1)  # (D, 2)
    ok = np.all(np.isfinite(pts), axis=1)
    centres = np.round(pts[ok]).astype(np.int64)
    xy = centres[:, None, :] + disc[None]  # (K', D, 2)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    cols = np.broadcast_to(colours[ok][:, None, :], xy.shape[:2] + (3,))
    out[xy[..., 1][inside], xy[..., 0][inside]] = cols[inside]
    return out


def _fit(image: np.ndarray, points: np.ndarray | None, cell: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale ``image`` to fit a cell×cell square (aspect kept, centred on black); move points alike."""
    img = to_rgb_uint8(image)
    h, w = img.shape[:2]
    s = cell / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=interp)
    ox, oy = (cell - nw) // 2, (cell - nh) // 2
    canvas = np.zeros((cell, cell, 3), np.uint8)
    canvas[oy:oy + nh, ox:ox + nw] = small
    if points is None:
        return canvas, None
    p = np.asarray(points, dtype=np.float64)
    moved = (p + 0.5) * np.array([nw / w, nh / h]) - 0.5 + np.array([ox, oy])  # pixel-centre aware
    return canvas, moved


def _outlined_text(tile: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text with a black outline, readable on any face.

    The outline is the thin text drawn one pixel around, not a thicker stroke: OpenCV 5 widens each glyph's
    advance with the stroke, so a thick outline drifts off its text along the line.
    """
    x, y = org
    for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
        cv2.putText(tile, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _WHITE, 1, cv2.LINE_AA)


def contact_sheet(
    images: Sequence[np.ndarray],
    points: Sequence[np.ndarray] | None = None,
    ncols: int | None = None,
    cell: int = 128,
    labels: Sequence[str] | None = None,
    scheme: str | Scheme | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Tile faces into one image, each fitted into a ``cell``² square with its landmarks drawn.

    Args:
        images: N images (H_i, W_i, 3) uint8 RGB, any sizes.
        points: N (K, 2) 0-based point sets in each image's pixels (``None``: images only).
        ncols: columns (default: ⌈√N⌉).
        cell: side of each square in pixels.
        labels: N short captions drawn in each cell's top-left corner.
        scheme: passed to :func:`draw_landmarks`.
        gap: pixels between cells (dark grey).

    Returns:
        (rows·(cell+gap)−gap, ncols·(cell+gap)−gap, 3) uint8 RGB.
    """
    n = len(images)
    if n == 0:
        raise ValueError("contact_sheet: no images")
    if points is not None and len(points) != n:
        raise ValueError(f"contact_sheet: {n} images but {len(points)} point sets")
    if labels is not None and len(labels) != n:
        raise ValueError(f"contact_sheet: {n} images but {len(labels)} labels")
    ncols = max(1, min(n, ncols or math.ceil(math.sqrt(n))))
    nrows = math.ceil(n / ncols)
    step = cell + gap
    sheet = np.full((nrows * step - gap, ncols * step - gap, 3), 40, np.uint8)
    font_scale = cell / 320
    for i in range(n):
        tile, pts = _fit(images[i], None if points is None else points[i], cell)
        if pts is not None:
            tile = draw_landmarks(tile, pts, scheme)
        if labels is not None and labels[i]:
            _outlined_text(tile, str(labels[i]), (3, 3 + round(24 * font_scale)), font_scale)
        r, c = divmod(i, ncols)
        sheet[r * step:r * step + cell, c * step:c * step + cell] = tile
    return sheet


def preview_dataset(
    h5_path: str | Path,
    out_png: str | Path,
    n: int = 16,
    seed: int = 0,
    ncols: int | None = None,
    cell: int = 128,
    worst: bool = False,
) -> Path:
    """Write a contact sheet of ``n`` samples of a dataset, drawn with their landmarks.

    Samples are picked by ``seed`` without replacement and shown in index order, each labelled
    ``#index yaw°``. Same file and seed → same PNG. With ``worst``: the ``n`` samples of lowest quality
    (:func:`gannotate.metrics.quality.quality`), worst first, labelled ``#index yaw° q``.

    Returns:
        ``out_png``.

    Raises:
        DatasetError: the dataset cannot be read or is empty.
    """
    with DatasetReader(h5_path) as r:
        if len(r) == 0:
            raise DatasetError(h5_path, "dataset has no samples to preview")
        if worst:
            from gannotate.metrics.quality import worst_rows

            take, q = worst_rows(h5_path, n)
            labels = [f"#{i} {r.pose[i, 0]:+.0f} q{v:.2f}" for i, v in zip(take, q)]
        else:
            take = np.sort(np.random.default_rng(seed).choice(len(r), size=min(n, len(r)), replace=False))
            labels = [f"#{i} {r.pose[i, 0]:+.0f}" for i in take]
        images = list(r.images[take])
        points = list(r.landmarks[take])
        sheet = contact_sheet(images, points, ncols=ncols, cell=cell, labels=labels, scheme=r.scheme)
    return write_image(out_png, sheet)
