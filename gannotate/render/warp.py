"""The warp renderer: a model-free 2D piecewise-affine warp over the landmarks.

A Delaunay triangulation of the K landmarks plus two rings of extrapolated points and a fixed
frame, so each target landmark lands exactly where its face part goes and the background follows
smoothly. It needs no model, is fast, and reads like a real photo to about ±15–20° of yaw change;
it cannot turn a head (the hidden cheek is stretched, not revealed).

Convention: images are uint8 ``(B, H, W, 3)`` RGB; points are float32 ``(B, K, 2)`` ``(x, y)``,
0-based pixel coordinates with pixel centres at integers, in the frame of the given images.

Why piecewise affine and not a thin-plate spline: both interpolate the landmarks exactly, but the
piecewise-affine warp needs one triangle-index raster and one ``cv2.remap`` per image, while a TPS
evaluates K radial kernels at every pixel (measured in ``benchmarks/augment.py``: 25-45x slower at
128² and 256², growing with H·W·K). The TPS also has no notion of occlusion: when a cheek folds
behind the nose at large yaw it smears both, whereas the triangle order below lets the part that
turns towards the camera cover the part that turns away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from gannotate.render.base import (GeometricRenderer, Geometry, RenderOutput, check_batch, covered_valid, lookup,
                                   register_renderer)

__all__ = ["WarpRenderer", "Mesh", "build_mesh", "warp_one", "warp_maps", "DEFAULT_RINGS"]

DEFAULT_RINGS: tuple[tuple[float, float], ...] = ((1.3, 0.7), (1.8, 0.3))
_SHIFT = 4  # fixed-point bits for cv2.fillConvexPoly: sub-pixel triangle edges



@dataclass(frozen=True)
class Mesh:
    """The source side of a warp: control points and their triangulation, shared by every target of a face.

    Control points, in order: the K landmarks; points along the landmarks' convex hull (so short hull
    edges stay Delaunay edges and the face's own triangles tile exactly the landmark hull); one ring
    per ``(radius, follow)`` (the hull scaled by ``radius`` about the landmarks' mean); and a fixed
    frame around the image grown by half its size.

    Attributes:
        vertices: (V, 2) float64 source control points.
        simplices: (T, 3) Delaunay triangles (indices into ``vertices``).
        n_face: vertices before this index lie on or inside the landmark hull.
        hull: (Hh,) landmark indices of the hull, in order.
        edge: (E,) hull edge of each hull-edge point; frac: (E, 1) its position along that edge.
        rings: ((radius, follow), ...); frame: (8, 2) corners and edge midpoints.
    """

    vertices: np.ndarray
    simplices: np.ndarray
    n_face: int
    hull: np.ndarray
    edge: np.ndarray
    frac: np.ndarray
    rings: tuple[tuple[float, float], ...]
    frame: np.ndarray

    def targets(self, target_points: np.ndarray) -> np.ndarray:
        """(V, 2) target control points for (K, 2) target landmarks.

        Hull-edge points are interpolated linearly (the warp is unchanged there); each ring moves by
        ``follow`` times the displacement of the hull vertex it came from, so hair and forehead
        follow the face and the motion fades out towards the frame, which stays put.
        """
        k = len(self.hull)
        tgt = np.asarray(target_points, np.float64)
        nxt = np.roll(self.hull, -1)
        ta, tb = tgt[self.hull][self.edge], tgt[nxt][self.edge]
        disp = tgt[self.hull] - self.vertices[self.hull]  # (Hh, 2)
        parts = [tgt, ta + self.frac * (tb - ta)]
        start = self.n_face
        for _, follow in self.rings:
            parts.append(self.vertices[start:start + k] + follow * disp)
            start += k
        parts.append(self.frame)
        return np.concatenate(parts)


def build_mesh(
    source_points: np.ndarray,
    height: int,
    width: int,
    rings: tuple[tuple[float, float], ...] = DEFAULT_RINGS,
    edge_step: float = 0.04,
) -> Mesh:
    """Control points and Delaunay triangulation for one face (see :class:`Mesh`).

    Args:
        source_points: (K, 2) landmarks (x, y) in an image of ``height`` × ``width``.
        rings: ((radius, follow), ...).
        edge_step: longest hull-edge segment, as a fraction of the face's extent.
    """
    from scipy.spatial import ConvexHull, Delaunay  # here, not at import: keeps `gannotate --help` fast

    src = np.asarray(source_points, np.float64)
    try:
        hull = ConvexHull(src).vertices
    except Exception:  # noqa: BLE001 - collinear points: fall back to all points (scipy raises QhullError)
        hull = np.arange(len(src))
    a, b = src[hull], src[np.roll(hull, -1)]
    extent = float(np.ptp(src, axis=0).max()) or 1.0
    n_sub = np.ceil(np.linalg.norm(b - a, axis=1) / (edge_step * extent)).astype(int)  # segments per edge
    edge = np.repeat(np.arange(len(hull)), np.maximum(n_sub - 1, 0))
    frac = np.concatenate([np.arange(1, k) / k for k in n_sub])[:, None] if len(edge) else np.zeros((0, 1))
    centre = src.mean(axis=0)
    parts = [src, a[edge] + frac * (b[edge] - a[edge])]
    parts += [centre + radius * (src[hull] - centre) for radius, _ in rings]
    inner = np.concatenate(parts)
    pad = 0.5 * max(height, width)
    lo = np.minimum(inner.min(0), [-0.5, -0.5]) - pad
    hi = np.maximum(inner.max(0), [width - 0.5, height - 0.5]) + pad
    mx, my = (lo + hi) / 2
    frame = np.array(
        [[lo[0], lo[1]], [mx, lo[1]], [hi[0], lo[1]], [hi[0], my], [hi[0], hi[1]], [mx, hi[1]], [lo[0], hi[1]], [lo[0], my]]
    )
    vertices = np.concatenate([inner, frame])
    simplices = Delaunay(vertices, qhull_options="QJ").simplices  # (T, 3); QJ keeps every vertex
    return Mesh(vertices, simplices, len(src) + len(edge), hull, edge, frac, tuple(rings), frame)


def _signed_area(tri: np.ndarray) -> np.ndarray:
    """Signed area of (T, 3, 2) triangles (positive = counter-clockwise in x-right, y-down axes)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def warp_one(
    image: np.ndarray,
    source_points: np.ndarray,
    target_points: np.ndarray,
    rings: tuple[tuple[float, float], ...] = DEFAULT_RINGS,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Piecewise-affine warp of one image so that ``source_points`` move to ``target_points``.

    Every output pixel finds its target triangle in a rasterised triangle-index map, maps through
    that triangle's affine (target → source) and samples the input bilinearly with one ``cv2.remap``.

    Fold-overs (a triangle whose target orientation flips, or shrinks much more than its
    neighbours, as the far cheek does at large yaw) are handled like a painter: background
    triangles (touching a ring or frame point) first, then the face's own triangles; within each
    group in order of their signed area ratio target/source, flipped ones first, then compressed
    ones, so the parts that turn towards the camera are drawn last and occlude those turning away.

    Args:
        image: (H, W, 3) uint8 RGB.
        source_points, target_points: (K, 2) float (x, y), 0-based pixel centres.
        rings: (radius, follow) per extrapolated ring; see :class:`Mesh`.
        mesh: ``build_mesh(source_points, H, W, rings)``, when the caller reuses it across targets.

    Returns:
        (H, W, 3) uint8.
    """
    h, w = image.shape[:2]
    map_x, map_y, _ = warp_maps(source_points, target_points, h, w, rings, mesh)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_maps(
    source_points: np.ndarray,
    target_points: np.ndarray,
    height: int,
    width: int,
    rings: tuple[tuple[float, float], ...] = DEFAULT_RINGS,
    mesh: Mesh | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The warp's geometry: (H, W) float32 source x and y per output pixel, and its validity.

    Validity is 1 where the output shows source pixels at no more than their own density: the
    background and face triangles that keep or shrink their area; a face triangle stretched by a
    factor r > 1 (the hidden cheek pulled into view) gets 1/r, a flipped one 0.
    """
    h, w = height, width
    mesh = mesh or build_mesh(source_points, h, w, rings)
    simplices, n_face = mesh.simplices, mesh.n_face
    s_tri, t_tri = mesh.vertices[simplices], mesh.targets(target_points)[simplices]  # (T, 3, 2)
    s_area, t_area = _signed_area(s_tri), _signed_area(t_tri)
    ok = (np.abs(t_area) > 1e-6) & (np.abs(s_area) > 1e-9)
    ratio = np.where(ok, t_area / np.where(ok, s_area, 1.0), -np.inf)
    # affine per triangle, target → source: [x y 1] @ coef = [xs ys]
    t_h = np.concatenate([t_tri, np.ones((len(t_tri), 3, 1))], axis=2)  # (T, 3, 3)
    t_h[~ok] = np.eye(3)  # degenerate target triangles are never drawn; keep solve() happy
    coef = np.linalg.solve(t_h, s_tri)  # (T, 3, 2)

    index = np.full((h, w), -1, np.int32)
    fixed = np.round(t_tri * (1 << _SHIFT)).astype(np.int32)  # (T, 3, 2) fixed-point vertices
    face = (simplices < n_face).all(axis=1)  # triangles inside the landmark hull
    order = np.lexsort((ratio, face))  # background first, then the face; within each by area ratio
    drawn = order[ok[order]]
    for t, corners in zip(drawn.tolist(), fixed[drawn]):  # a loop over triangles: cv2 draws one polygon per call
        cv2.fillConvexPoly(index, corners, t, lineType=cv2.LINE_8, shift=_SHIFT)

    xs = np.arange(w, dtype=np.float32)[None, :]  # pixel centres, broadcast over rows / columns
    ys = np.arange(h, dtype=np.float32)[:, None]
    covered = index >= 0
    tri = np.maximum(index, 0)
    # each pixel's affine, one contiguous (H, W) plane per coefficient: xs·a + ys·b + c per coordinate
    a_x, a_y, b_x, b_y, c_x, c_y = np.take(coef.astype(np.float32).reshape(-1, 6).T, tri, axis=1)
    map_x = np.where(covered, xs * a_x + ys * b_x + c_x, xs)
    map_y = np.where(covered, xs * a_y + ys * b_y + c_y, ys)
    tri_valid = np.where(face, np.where(ratio > 0, np.minimum(1.0, 1.0 / np.maximum(ratio, 1e-6)), 0.0), 1.0)
    valid = np.where(covered, tri_valid.astype(np.float32)[tri], np.float32(1.0))
    return map_x, map_y, valid


@dataclass(frozen=True)
class WarpRenderer(GeometricRenderer):
    """Model-free renderer: piecewise-affine warp (see :func:`warp_one`); a :class:`GeometricRenderer`.

    Attributes:
        rings: (radius, follow) per extrapolated ring around the face.
    """

    rings: tuple[tuple[float, float], ...] = DEFAULT_RINGS
    name: str = "warp"
    process_parallel: ClassVar[bool] = True  # numpy on the CPU: augment --workers N renders in N processes

    def geometry(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> Geometry:
        """One layer per sample: the warp's sampling grid (weight 1) and its validity (see :func:`warp_maps`)."""
        imgs, src, tgt = check_batch(images, source_points, target_points)
        b, h, w = imgs.shape[:3]
        grids = np.empty((b, 1, h, w, 2), np.float32)
        valid = np.empty((b, h, w), np.float32)
        meshes: dict[bytes, Mesh] = {}  # targets of one face share its triangulation
        for i in range(b):
            key = src[i].tobytes()
            if key not in meshes:
                meshes[key] = build_mesh(src[i], h, w, self.rings)
            mx, my, valid[i] = warp_maps(src[i], tgt[i], h, w, self.rings, meshes[key])
            grids[i, 0, ..., 0], grids[i, 0, ..., 1] = mx, my
        return Geometry(grids, np.ones((b, 1, h, w), np.float32), valid)

    def render_full(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> RenderOutput:
        """Warped images and their validity masks (uint8, 255 = valid); the warp is exact, so no residual."""
        geo = self.geometry(images, source_points, target_points)
        return RenderOutput(lookup(np.asarray(images), geo), np.round(covered_valid(geo, coverage) * 255).astype(np.uint8))

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """Warp a batch: ``images`` (B, H, W, 3) uint8, points (B, K, 2) → (B, H, W, 3) uint8 (= lookup of the geometry)."""
        return self.render_full(images, source_points, target_points).images


@register_renderer("warp", options=(), help="2D piecewise-affine warp (no model, exact landmarks; good to about ±20° of turn)")
def _make_warp() -> WarpRenderer:
    return WarpRenderer()
