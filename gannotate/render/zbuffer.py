"""A vectorised numpy z-buffer: which triangle (and where in it) each pixel of a projected mesh shows.

Convention: vertex ``xy`` in pixels, 0-based pixel centres at integers, y down; ``z`` is depth away from the
viewer (smaller = nearer). Output is per pixel of an (H, W) image.

Why no per-triangle loop: every triangle's bounding box is expanded into candidate pixels with one
``np.repeat``, barycentrics and depth are computed for all candidates at once, and the depth test is a sort
by (pixel, depth) keeping the first of each pixel. A face mesh at 128² gives ~10⁵ candidates (a few ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Raster", "rasterise", "interpolate"]


@dataclass(frozen=True)
class Raster:
    """The z-buffer of one mesh.

    Attributes:
        triangle: (H, W) int32 triangle shown at each pixel, −1 where the mesh does not cover it.
        bary: (H, W, 3) float32 barycentric coordinates of the pixel centre in that triangle.
        depth: (H, W) float32 depth, +inf where uncovered.
    """

    triangle: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.triangle >= 0


def rasterise(xy: np.ndarray, z: np.ndarray, triangles: np.ndarray, height: int, width: int) -> Raster:
    """Z-buffer the triangles (T, 3) of vertices ``xy`` (V, 2), ``z`` (V,) into an (H, W) image.

    Both windings are drawn (the depth test decides what shows), so callers need not know the orientation.
    """
    tri_xy = xy[triangles]  # (T, 3, 2)
    lo = np.ceil(tri_xy.min(axis=1)).astype(np.int64)
    hi = np.floor(tri_xy.max(axis=1)).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    span = np.maximum(hi - lo + 1, 0)  # (T, 2)
    count = span[:, 0] * span[:, 1]
    keep = np.flatnonzero(count > 0)
    count = count[keep]
    tri = np.repeat(keep, count)
    start = np.repeat(np.cumsum(count) - count, count)
    off = np.arange(len(tri)) - start
    sw = span[tri, 0]
    px = lo[tri, 0] + off % sw
    py = lo[tri, 1] + off // sw
    a, b, c = tri_xy[tri, 0], tri_xy[tri, 1], tri_xy[tri, 2]
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    dx, dy = px - a[:, 0], py - a[:, 1]
    l1 = (dx * v1[:, 1] - dy * v1[:, 0]) / den
    l2 = (v0[:, 0] * dy - v0[:, 1] * dx) / den
    l0 = 1.0 - l1 - l2
    eps = -1e-7
    inside = ok & (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    tri, px, py, l0, l1, l2 = tri[inside], px[inside], py[inside], l0[inside], l1[inside], l2[inside]
    zt = z[triangles[tri]]  # (N, 3)
    depth = l0 * zt[:, 0] + l1 * zt[:, 1] + l2 * zt[:, 2]
    pix = py * width + px
    order = np.lexsort((depth, pix))
    pix_sorted = pix[order]
    first = np.ones(len(order), bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    win = order[first]
    triangle = np.full(height * width, -1, np.int32)
    bary = np.zeros((height * width, 3), np.float32)
    zbuf = np.full(height * width, np.inf, np.float32)
    triangle[pix[win]] = tri[win]
    bary[pix[win]] = np.stack([l0[win], l1[win], l2[win]], axis=1)
    zbuf[pix[win]] = depth[win]
    return Raster(triangle.reshape(height, width), bary.reshape(height, width, 3), zbuf.reshape(height, width))


def interpolate(raster: Raster, triangles: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-pixel barycentric interpolation of per-vertex ``values`` (V, C) → (H, W, C) float32 (0 where uncovered)."""
    h, w = raster.triangle.shape
    flat = raster.triangle.reshape(-1)
    idx = np.flatnonzero(flat >= 0)
    out = np.zeros((h * w, values.shape[1]), np.float32)
    corners = values[triangles[flat[idx]]].astype(np.float32)  # (N, 3, C)
    out[idx] = np.einsum("nk,nkc->nc", raster.bary.reshape(-1, 3)[idx], corners)
    return out.reshape(h, w, -1)
