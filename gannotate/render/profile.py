"""The profile renderer: 3D face profiling (the 300W-LP recipe) with the Surrey Face Model.

Per face: fit the dense 3D face to the source's 68 points (identity, expression, scaled-orthographic pose,
jaw by landmark marching). Per target: turn the source's fit by the pose change between source and target
(read from the 2D shape model) and refit scale, translation and expression with the identity held, starting
from that rotation and freeing it (way "fit"; way "rotate" holds it, and is measured in the benchmark).
Z-buffer the target mesh; each pixel reads the source where that surface point was seen (inside the face's
annotated outline) as well as the target needs it (squarely enough for what the target reveals; at any angle
where it reveals no more), or where its mirror vertex was seen, or a smooth fill. Outside the landmark hull the image
(hair, ears, neck, background) moves with the head through anchor rings whose depth starts at the face border
(3DDFA's trick) and recedes with the side of the head, so the far side's band closes as it turns away. A last
2D correction, exact at the landmarks and zero a little outside the face, puts every landmark on its target.

Everything is expressed as a :class:`~gannotate.render.base.Geometry` with three layers — direct texture,
mirrored texture, background — whose weights are smooth per-vertex quantities interpolated over the mesh, plus
a low-pass ``fill`` for what neither layer covers. So ``render == lookup(geometry)`` and the torch refiner can
run the same resampling differentiably; there is no hard switch between layers anywhere.

Convention: images uint8 ``(B, H, W, 3)`` RGB; points float32 ``(B, 68, 2)`` ``(x, y)``, 0-based pixel centres.

Licence: the Surrey Face Model is free for non-commercial use only (``gannotate/assets/SFM_LICENCE.md``); its
licence line goes into every dataset rendered with it (:attr:`ProfileRenderer.dataset_attrs`). The face model's
file, licence and fit settings live in ``gannotate.face3d`` and the fits in ``shape_model.face3d``: planning
(``gannotate.targets3d``) fits the same face without a renderer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from gannotate.errors import GannotateError, check_points
from gannotate.face3d import FACE_MODEL_ATTRS, MODEL_PATH, SOURCE_FIT, TARGET_FIT
from gannotate.render.base import (GeometricRenderer, Geometry, RenderOutput, check_batch, covered_valid, lookup,
                                   register_renderer)
from gannotate.render.warp import warp_maps
from gannotate.render.zbuffer import interpolate, rasterise
from shape_model.errors import ShapeModelError
from shape_model.face3d import Face3DFit, Face3DModel, FitConfig, fit_face3d, fit_target, load_face3d

__all__ = ["ProfileRenderer", "ProfileConfig", "SourceFace"]

_HULL = np.r_[np.arange(0, 17), np.arange(26, 16, -1)]  # jaw then brows: the face region's outline
_EYES = (36, 45)


@dataclass(frozen=True)
class ProfileConfig:
    """Renderer settings."""

    fit: FitConfig = SOURCE_FIT
    target_fit: FitConfig = TARGET_FIT  # identity held
    # "fit" starts where "rotate" ends up and frees the rotation: it was kept for 30 of 32 benchmark targets and
    # the kept residual equalled its own to 0.01% NME, so the hot path fits that way only (half the fit time)
    target_ways: tuple[str, ...] = ("fit",)
    max_residual: float = 0.25          # a source fit worse than this NME is refused (named failure)
    face_ramp_mm: float = 6.0           # face texture fades out over this width across the landmark hull
    frontal_lo: float = 0.08            # cos(view, normal) below which a surface point counts as unseen ...
    frontal_hi: float = 0.40            # ... and above which it counts as well seen (smooth in between)
    depth_tol_mm: float = 3.0           # z-buffer tolerance of the source visibility test
    smooth_passes: int = 3              # mesh-neighbour averaging of the visibility weights (soft seams)
    rings: tuple[tuple[float, float], ...] = ((1.3, 0.8), (1.8, 0.4))  # (radius, follow) background anchors
    neck_damping: float = 0.6           # anchors below the face (neck, collar) follow the head this much less
    side_depth: float = 1.0             # beyond the face's sides the head recedes this many px per px outward
    edge_margin: float = 0.15           # anchors closer than this (fraction of the crop) to its edge move less
    correction_radius: float = 1.3      # the final 2D correction is zero at this multiple of the hull
    fill_sigma: float = 0.12            # low-pass σ of the hole fill, as a fraction of the face size
    outline_margin: float | None = 0.03  # texture is read this far (fraction of the face size) past the face's
                                         # outline (None: wherever the source saw the surface, as before it)
    reveal: tuple[float, float] | None = (0.05, 0.25)  # a surface point the target faces this much more (cos of
                                         # the view angle) than the source did needs the mirror or the fill;
                                         # below it the source's own texture serves (None: by the source alone)
    hidden_reveal: tuple[float, float] | None = (0.0, 0.08)  # a surface point the photo shows only behind
                                         # something nearer (the far cheek behind the nose) keeps the photo's
                                         # pixel while the target faces it at most this much more than the
                                         # source did; beyond, the mirror or the fill (None: never)
    edge_sigma: float | None = 1.0      # px: the face's own silhouette blends into the background over this
                                         # Gaussian σ, as a lens would (None: a hard pixel staircase, as before it)
    cache_size: int = 256               # source fits kept (targets of one face share its fit)


@dataclass(frozen=True)
class SourceFace:
    """Everything about a source face that its targets share.

    Attributes:
        fit: the 3D fit; cam: (V, 3) camera-frame vertices (px); pose: (3,) PDM yaw, pitch, roll (degrees).
        attrs: (V, 7) per-vertex [u_direct, v_direct, u_mirror, v_mirror, w_direct, w_mirror, face].
        anchors: the background's control mesh in this crop.
        normals: (V, 3) unit vertex normals in the model's frame (a view turns them by its rotation).
        shown: (V,) where the photo shows each vertex at all, however obliquely (unoccluded, inside the
            outline, smoothed over the mesh): the direct texture a target that reveals no more may use.
        inside: (V,) where its source position lies inside the face's annotated outline (1 without an outline).
    """

    fit: Face3DFit
    cam: np.ndarray
    pose: np.ndarray
    attrs: np.ndarray
    points: np.ndarray
    anchors: _Anchors
    normals: np.ndarray
    shown: np.ndarray
    inside: np.ndarray


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _vertex_normals(cam: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals, oriented so the face's front has negative z when frontal."""
    a, b, c = cam[triangles[:, 0]], cam[triangles[:, 1]], cam[triangles[:, 2]]
    n_tri = np.concatenate([np.cross(b - a, c - a)] * 3)  # each triangle's normal, once per corner
    corners = triangles.T.reshape(-1)  # corner 0 of every triangle, then corner 1, then 2
    # bincount sums each vertex's normals in that order, as np.add.at did corner by corner (the same floats), 3x faster
    n = np.stack([np.bincount(corners, weights=n_tri[:, j], minlength=len(cam)) for j in range(3)], axis=-1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _piecewise_field(src: np.ndarray, dst: np.ndarray, query: np.ndarray, radius: float) -> np.ndarray:
    """Displacement at ``query`` (N, 2) of the piecewise-affine field taking ``src`` (K, 2) to ``dst``.

    The field is exact at the K points and zero on a ring ``radius`` × the hull around them (and beyond).
    """
    from scipy.spatial import Delaunay  # here, not at import: keeps `gannotate --help` fast

    centre = src.mean(axis=0)
    hull = src[_hull_indices(src)]
    ring = centre + radius * (hull - centre)
    ctrl = np.concatenate([src, ring])
    disp = np.concatenate([dst - src, np.zeros_like(ring)])
    tri = Delaunay(ctrl, qhull_options="QJ")
    simplex = tri.find_simplex(query)
    inside = np.flatnonzero(simplex >= 0)
    out = np.zeros_like(query)
    if len(inside):
        # barycentrics and the blend written out per coordinate: the same sums, in the same order, as
        # einsums over gathered (N, 3, 2) transforms and corners, without building those
        s = simplex[inside]
        t = tri.transform  # (S, 3, 2): rows 0-1 the inverse of each simplex's edge matrix, row 2 its origin
        d0 = query[inside, 0] - t[s, 2, 0]
        d1 = query[inside, 1] - t[s, 2, 1]
        b0 = t[s, 0, 0] * d0 + t[s, 0, 1] * d1
        b1 = t[s, 1, 0] * d0 + t[s, 1, 1] * d1
        b2 = 1.0 - (b0 + b1)
        corner = tri.simplices[s]  # (N, 3)
        out[inside] = b0[:, None] * disp[corner[:, 0]] + b1[:, None] * disp[corner[:, 1]] + b2[:, None] * disp[corner[:, 2]]
    return out


def _hull_indices(points: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull

    try:
        return ConvexHull(points).vertices
    except Exception:  # noqa: BLE001 - scipy raises QhullError for degenerate input
        return np.arange(len(points))


def _border_frame(h: int, w: int, n: int = 6) -> np.ndarray:
    """Fixed control points along the image border (pixel edges), so the crop edge never moves or tears."""
    t = np.linspace(0.0, 1.0, n, endpoint=False)
    x0, y0, x1, y1 = -0.5, -0.5, w - 0.5, h - 0.5
    top = np.stack([x0 + t * (x1 - x0), np.full(n, y0)], 1)
    right = np.stack([np.full(n, x1), y0 + t * (y1 - y0)], 1)
    bottom = np.stack([x1 - t * (x1 - x0), np.full(n, y1)], 1)
    left = np.stack([np.full(n, x0), y1 - t * (y1 - y0)], 1)
    return np.concatenate([top, right, bottom, left])


def _inside_outline(points: np.ndarray, uv: np.ndarray, h: int, w: int, margin: float) -> np.ndarray:
    """(V,) 1 where a vertex's source position ``uv`` lies inside the face's annotated outline (jaw and brows),
    falling to 0 ``margin`` × the face size outside it.

    Why: where the 3D face is wider than the face in the photo (a chin or jaw fitted past the annotated one,
    the far side of a turned face), a vertex the source "saw" reads background, and a render turned towards
    it shows background colour on the face; outside the outline the texture is not the face's.
    """
    size = float(np.ptp(points, axis=0).max())
    ramp = max(margin * size, 1.0)
    pad = int(np.ceil(2 * ramp)) + 2
    mask = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    cv2.fillPoly(mask, [np.round(points[_HULL] + pad).astype(np.int32)], 255)
    outside = cv2.distanceTransform(255 - mask, cv2.DIST_L2, 5)  # px to the outline, 0 inside
    q = (uv + pad).astype(np.float32)
    d = cv2.remap(outside, q[:, 0:1], q[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
    return 1.0 - _smoothstep(d.astype(np.float64), 0.0, ramp)


def _edge_falloff(points: np.ndarray, h: int, w: int, margin: float) -> np.ndarray:
    """(N,) 1 well inside the image, falling to 0 at its border (and outside): anchors there stay put."""
    d = np.minimum.reduce([points[:, 0] + 0.5, w - 0.5 - points[:, 0], points[:, 1] + 0.5, h - 0.5 - points[:, 1]])
    return _smoothstep(d, 0.0, margin * max(h, w))


@dataclass(frozen=True)
class _AnchorMesh:
    """A ready-made control mesh for :func:`gannotate.render.warp.warp_maps` (its ``Mesh`` protocol)."""

    vertices: np.ndarray
    simplices: np.ndarray
    n_face: int
    target_vertices: np.ndarray

    def targets(self, _target_points: np.ndarray) -> np.ndarray:
        return self.target_vertices


def _mesh_smoother(triangles: np.ndarray, n_vertices: int) -> Any:
    """Row-normalised (V, V) sparse neighbour-averaging matrix (self included)."""
    from scipy.sparse import coo_matrix, identity

    i = np.concatenate([triangles[:, 0], triangles[:, 1], triangles[:, 2], triangles[:, 1], triangles[:, 2], triangles[:, 0]])
    j = np.concatenate([triangles[:, 1], triangles[:, 2], triangles[:, 0], triangles[:, 0], triangles[:, 1], triangles[:, 2]])
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices)).tocsr()
    adj.data[:] = 1.0
    adj = adj + identity(n_vertices, format="csr")
    deg = np.asarray(adj.sum(axis=1)).ravel()
    return (adj.multiply(1.0 / deg[:, None])).tocsr()


@dataclass(frozen=True)
class _Anchors:
    """The background's control points in a source crop and their triangulation (shared by its targets).

    Attributes:
        source: (n + R·n + F, 2) outline landmarks, anchor rings, border frame; simplices: their Delaunay.
        rings: (R, n, 2) ring anchors; offsets: (R, n, 3) each anchor's offset from its outline landmark in the
            source's camera frame (px), receding beyond the face's sides (:func:`_anchors`); sideways: (R, n, 2)
            the part of each offset along the head's left-right axis;
        gains: (R, n) how much each follows the head (ring follow × neck damping × crop-edge falloff);
        frame: (F, 2) fixed border points.
    """

    source: np.ndarray
    simplices: np.ndarray
    rings: np.ndarray
    offsets: np.ndarray
    sideways: np.ndarray
    gains: np.ndarray
    frame: np.ndarray


def _anchors(points: np.ndarray, lateral: np.ndarray, h: int, w: int, cfg: ProfileConfig) -> _Anchors:
    """The background's anchors around a source face; ``lateral``: (2,) the head's left-right axis in the image.

    Why depth: what lies just beyond the face's side in a photo (temple, ear, the glasses' arm, hair) is the
    side of the head, which curves away from the viewer. Offsets kept in the image plane would turn into a
    band that narrows by cos(yaw) on both sides, so the far side kept a squeezed copy of the source's cheek
    edge and glasses arm beside the turned face; receding ``side_depth`` px per px of sideways offset, the far
    side's band closes as the head turns away and the near side's opens.
    """
    from scipy.spatial import Delaunay

    outline = points[_HULL].astype(np.float64)
    centre = outline.mean(axis=0)
    rings, gains = [], []
    for radius, follow in cfg.rings:
        a = centre + radius * (outline - centre)
        down = np.clip((a - centre)[:, 1] / np.maximum(np.linalg.norm(a - centre, axis=1), 1e-9), 0.0, 1.0)
        rings.append(a)
        gains.append(follow * (1.0 - cfg.neck_damping * down) * _edge_falloff(a, h, w, cfg.edge_margin))
    ring_arr = np.stack(rings)
    frame = _border_frame(h, w)
    source = np.concatenate([outline, ring_arr.reshape(-1, 2), frame])
    simplices = Delaunay(source, qhull_options="QJ").simplices
    flat = ring_arr - outline
    axis = lateral / max(float(np.linalg.norm(lateral)), 1e-12)
    along = flat @ axis
    offsets = np.concatenate([flat, cfg.side_depth * np.abs(along)[..., None]], axis=-1)
    return _Anchors(source, simplices, ring_arr, offsets, along[..., None] * axis, np.stack(gains), frame)


def _turned_rings(anchors: _Anchors, lin: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """(R, n, 2) where each anchor goes if it moves with the head: its 3D offset from its outline landmark
    carried by ``lin`` ((2, 3) source camera → target image) and added to that landmark's target ``outline``.

    A turn past 45° would carry a receding far-side anchor across its landmark into the face (the side of
    the head turned further than out of view); such an anchor stops on the outline instead, so the
    background's mesh never folds over. With ``side_depth = 0`` no anchor has depth and all move as the
    rotation carries them, as before the depth existed.
    """
    offsets = anchors.offsets @ lin.T
    outward = anchors.sideways @ lin[:, :2].T  # the sideways part of each offset, turned: away from the face
    outward /= np.maximum(np.linalg.norm(outward, axis=-1, keepdims=True), 1e-12)
    inward = np.minimum(np.einsum("rnc,rnc->rn", offsets, outward), 0.0) * (anchors.offsets[..., 2] > 0)
    return outline + offsets - inward[..., None] * outward


@dataclass
class ProfileRenderer(GeometricRenderer):
    """3D face-profiling renderer (see the module doc); a :class:`~gannotate.render.base.GeometricRenderer`."""

    cfg: ProfileConfig = field(default_factory=ProfileConfig)
    model_path: Path = MODEL_PATH
    name: str = "profile"
    process_parallel: ClassVar[bool] = True  # numpy on the CPU: augment --workers N renders in N processes
    dataset_attrs: ClassVar[dict[str, str]] = FACE_MODEL_ATTRS
    _cache: "OrderedDict[bytes, SourceFace | Face3DFit | GannotateError]" = field(default_factory=OrderedDict, repr=False)
    _model: Face3DModel | None = field(default=None, repr=False)
    _pdm: Any = field(default=None, repr=False)
    _smoother: Any = field(default=None, repr=False)
    _face_tris: np.ndarray | None = field(default=None, repr=False)
    _lowpass_cache: "OrderedDict[bytes, np.ndarray]" = field(default_factory=OrderedDict, repr=False)
    last_fit_residuals: list[dict[str, float]] = field(default_factory=list, repr=False)

    # ---------------------------------------------------------------- set-up
    @property
    def model(self) -> Face3DModel:
        if self._model is None:
            try:
                self._model = load_face3d(self.model_path)
            except ShapeModelError as e:
                raise GannotateError(f"profile renderer: {e}") from e
            self._smoother = _mesh_smoother(self._model.triangles, self._model.n_vertices)
        return self._model

    @property
    def pdm(self) -> Any:
        if self._pdm is None:
            from shape_model.build import load_model

            self._pdm = load_model(None)
        return self._pdm

    def _poses(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) PDM yaw, pitch, roll of (N, 68, 2) points (the plan's pose convention), one vectorised fit."""
        p = self.pdm.fit(np.asarray(points, np.float64))
        return np.stack([np.asarray(p.yaw, np.float64), np.asarray(p.pitch, np.float64), np.asarray(p.theta, np.float64)], -1).reshape(-1, 3)

    def _face_triangles(self) -> np.ndarray:
        """Triangles with any face weight: the outer ring (hair, ears) is never textured, so never drawn."""
        if self._face_tris is None:
            face = self.model.hull_distance[self.model.triangles] > -self.cfg.face_ramp_mm / 3
            self._face_tris = self.model.triangles[face.any(axis=1)]
        return self._face_tris

    # ---------------------------------------------------------------- source
    def prepare(self, image: np.ndarray, points: np.ndarray) -> None:
        """Check the source face fits the 3D model; raise GannotateError if it cannot be fitted.

        Only the fit and its residual check run here (cached on the points): augment's parent process calls
        this to name refused faces before its workers render them, and only a renderer that renders the
        face needs the rest (texture coordinates, visibility, background anchors: :meth:`_source`).
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[-1] != 3:
            raise GannotateError(f"profile: expected an (H, W, 3) image, got {img.shape}")
        self._entry(check_points(points, 68, "points").astype(np.float64), img.shape[0], img.shape[1])

    def _entry(self, points: np.ndarray, h: int, w: int) -> tuple[bytes, SourceFace | Face3DFit]:
        """The cache entry of a source: its key and its :class:`SourceFace` or, when only checked, its 3D fit."""
        key = points.astype(np.float32).tobytes() + bytes(f"{h}x{w}", "ascii")
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = self._fit_checked(points)
            except GannotateError as e:
                hit = e
            self._cache[key] = hit
            while len(self._cache) > self.cfg.cache_size:
                self._cache.popitem(last=False)
        if isinstance(hit, GannotateError):
            raise GannotateError(str(hit))
        return key, hit

    def _source(self, points: np.ndarray, h: int, w: int) -> SourceFace:
        pts = points.astype(np.float64)
        key, hit = self._entry(pts, h, w)
        if isinstance(hit, Face3DFit):
            hit = self._cache[key] = self._source_face(hit, pts, h, w)
        return hit

    def _fit_checked(self, points: np.ndarray) -> Face3DFit:
        model, cfg = self.model, self.cfg
        try:
            fit = fit_face3d(model, points, cfg.fit)
        except ShapeModelError as e:
            raise GannotateError(f"profile: cannot fit the 3D face: {e}") from e
        if not np.isfinite(fit.residual) or fit.residual > cfg.max_residual:
            raise GannotateError(
                f"profile: 3D face fit residual {100 * fit.residual:.1f}% NME exceeds {100 * cfg.max_residual:.0f}%"
                " (implausible landmarks?)"
            )
        return fit

    def _source_face(self, fit: Face3DFit, points: np.ndarray, h: int, w: int) -> SourceFace:
        model, cfg = self.model, self.cfg
        cam = fit.camera_vertices(model)
        uv = cam[:, :2] + _piecewise_field(fit.landmarks_2d(model), points, cam[:, :2], cfg.correction_radius)
        normals = _vertex_normals(cam, model.triangles)
        facing = -normals[:, 2]
        w_dir, shown = self._seen(cam, facing, fit.scale, h, w)
        inside = np.ones(len(cam))
        if cfg.outline_margin is not None:
            inside = _inside_outline(points, uv, h, w, cfg.outline_margin)
            w_dir, shown = w_dir * inside, shown * inside
        sym = model.symmetry
        face = _smoothstep(model.hull_distance, -cfg.face_ramp_mm / 3, cfg.face_ramp_mm * 2 / 3)
        attrs = np.concatenate(
            [uv, uv[sym], w_dir[:, None], ((1.0 - w_dir) * w_dir[sym])[:, None], face[:, None]], axis=1
        ).astype(np.float32)
        anchors = _anchors(points, fit.rotation[:2, 0], h, w, cfg)
        return SourceFace(fit, cam, self._poses(points[None])[0], attrs, points.astype(np.float32), anchors,
                          normals @ fit.rotation, shown, inside)

    def _seen(self, cam: np.ndarray, facing: np.ndarray, scale: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """(V,) how well the source saw each vertex (frontality × z-buffer visibility, smoothed over the mesh)
        and (V,) whether it saw it at all (the visibility alone: 1 where seen, softened into the occluded)."""
        cfg = self.cfg
        front = _smoothstep(facing, cfg.frontal_lo, cfg.frontal_hi)
        pad = 2
        ras = rasterise(cam[:, :2] + pad, cam[:, 2], self.model.triangles, h + 2 * pad, w + 2 * pad)
        ix = np.clip(np.round(cam[:, 0] + pad).astype(int), 0, w + 2 * pad - 1)
        iy = np.clip(np.round(cam[:, 1] + pad).astype(int), 0, h + 2 * pad - 1)
        zbuf = ras.depth[iy, ix]
        vis = (cam[:, 2] <= zbuf + cfg.depth_tol_mm * scale).astype(np.float64)
        seen, shown = front * vis, vis
        for _ in range(self.cfg.smooth_passes):
            seen, shown = self._smoother @ seen, self._smoother @ shown
        return np.minimum(seen, front), np.maximum(shown, vis)

    def _target_weights(self, src: SourceFace, rotation: np.ndarray) -> np.ndarray:
        """(V, 7) the source's per-vertex attributes with the direct and mirror weights this target needs.

        Why: the source's weights alone judge a surface by how squarely the photo saw it, so a render that
        turns nothing still swapped the steep sides of the nose and cheek for the mirror or the fill (a seam
        along them). Texture seen obliquely is as good as the target needs wherever the target faces it no
        more squarely than the photo did; only what a turn reveals needs the mirror or the fill. The target's
        view of each surface is the source's normals turned by the target's ``rotation`` (its expression's own
        bending left out: 0.05 ms a sample against 1.2 ms for the target mesh's own normals, and the weights are soft).
        """
        if self.cfg.reveal is None:
            return src.attrs
        lo, hi = self.cfg.reveal
        facing = -src.normals @ np.asarray(rotation, np.float64)[2]  # cos of each view angle: target, source
        seen_at = -src.normals @ src.fit.rotation[2]
        kept = src.shown * (1.0 - _smoothstep(facing - seen_at, lo, hi))
        if self.cfg.hidden_reveal is not None:
            # what the photo shows in front of a hidden point (the nose's side, in front of the far cheek) is what a
            # target that turns no nearer to it shows there too: a mirror or fill would draw a seam beside the nose
            h_lo, h_hi = self.cfg.hidden_reveal
            kept = kept + src.inside * (1.0 - src.shown) * (1.0 - _smoothstep(facing - seen_at, h_lo, h_hi))
        attrs = src.attrs.copy()
        w_dir = np.maximum(attrs[:, 4], kept.astype(np.float32))
        w_src = src.attrs[:, 4]
        attrs[:, 4] = w_dir
        attrs[:, 5] = (1.0 - w_dir) * w_src[self.model.symmetry]
        return attrs

    # ---------------------------------------------------------------- target
    def _sample_geometry(
        self, image: np.ndarray, src: SourceFace, target: np.ndarray, target_pose: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """One sample: grids (3, H, W, 2), weights (3, H, W), valid (H, W), fill (H, W, 3), residual."""
        model, cfg = self.model, self.cfg
        h, w = image.shape[:2]
        tgt = target.astype(np.float64)
        fit, residuals = fit_target(model, src.fit, src.pose, tgt, target_pose, cfg.target_fit, cfg.target_ways)
        self.last_fit_residuals.append(residuals)
        cam = fit.camera_vertices(model)
        attrs = self._target_weights(src, fit.rotation)
        pre = cam[fit.correspondence, :2].copy()
        cam[:, :2] += _piecewise_field(pre, tgt, cam[:, :2], cfg.correction_radius)
        tris = self._face_triangles()
        ras = rasterise(cam[:, :2], cam[:, 2], tris, h, w)
        att = interpolate(ras, tris, attrs)  # (H, W, 7)
        covered = ras.covered
        face = att[..., 6] * self._coverage(covered)
        bg_x, bg_y, bg_valid = self._background(src, fit, tgt, h, w)
        grids = np.empty((3, h, w, 2), np.float32)
        grids[2, ..., 0], grids[2, ..., 1] = bg_x, bg_y
        grids[0], grids[1] = grids[2], grids[2]  # uncovered pixels: keep the unused grids tame
        np.copyto(grids[0], att[..., 0:2], where=covered[..., None])
        np.copyto(grids[1], att[..., 2:4], where=covered[..., None])
        weights = np.empty((3, h, w), np.float32)
        np.multiply(face, att[..., 4], out=weights[0])
        np.multiply(face, att[..., 5], out=weights[1])
        np.subtract(1.0, face, out=weights[2])
        fill = cv2.remap(self._lowpass(image, src.points), grids[0, ..., 0], grids[0, ..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        valid = weights[0] + weights[2] * bg_valid
        iod = max(float(np.linalg.norm(tgt[_EYES[0]] - tgt[_EYES[1]])), 1e-6)
        residual = float(np.linalg.norm(pre - tgt, axis=1).mean() / iod)
        return grids, weights, np.clip(valid, 0, 1), fill.astype(np.float32), residual

    def _coverage(self, covered: np.ndarray) -> np.ndarray:
        """(H, W) float32 how much of each pixel the face mesh covers: 0 outside, 1 inside, a soft edge along its
        silhouette (:attr:`ProfileConfig.edge_sigma`).

        Why: where the turned face's cheek meets the background, the mesh covers whole pixels or none, and the
        render showed a hard staircase along the far cheek and jaw that no photograph has. The soft edge lies
        inside the mesh (the covered share is blurred, then kept to covered pixels): the face never reaches
        pixels its grids do not describe.
        """
        cov = covered.astype(np.float32)
        if self.cfg.edge_sigma is None:
            return cov
        return cv2.GaussianBlur(cov, (0, 0), self.cfg.edge_sigma) * cov

    def _background(self, src: SourceFace, fit: Face3DFit, target: np.ndarray, h: int, w: int) -> tuple[np.ndarray, ...]:
        """Warp grid for hair/ears/neck/background: landmarks exact, anchor rings turned in 3D with the head.

        Each anchor starts at the depth of its face-border landmark (3DDFA's trick), recedes with the side of
        the head (:func:`_anchors`) and keeps its 3D offset from that landmark as the head turns, so the far
        side's band closes and the near side's opens; the landmark itself goes exactly to its target. Anchors fade to
        standing still towards the crop's edge, which never moves. The source side (anchors, triangulation)
        is the source's (:func:`_anchors`); only the anchors' targets are per sample.
        """
        anchors = src.anchors
        lin = fit.scale / src.fit.scale * fit.rotation[:2] @ src.fit.rotation.T  # (2, 3): source camera → target image
        rings = anchors.rings + anchors.gains[..., None] * (_turned_rings(anchors, lin, target[_HULL]) - anchors.rings)
        ctrl_t = np.concatenate([target[_HULL], rings.reshape(-1, 2), anchors.frame])
        mesh = _AnchorMesh(anchors.source, anchors.simplices, len(_HULL), ctrl_t)
        return warp_maps(src.points.astype(np.float64), target, h, w, mesh=mesh)  # type: ignore[arg-type]

    def _lowpass(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 smooth skin colour: normalised blur of the face inside the landmark hull (cached)."""
        key = points.tobytes() + image[::7, ::7].tobytes() + bytes(str(image.shape), "ascii")
        hit = self._lowpass_cache.get(key)
        if hit is None:
            hit = self._lowpass_cache[key] = self._compute_lowpass(image, points)
            while len(self._lowpass_cache) > 16:
                self._lowpass_cache.popitem(last=False)
        return hit

    def _compute_lowpass(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.float32)
        cv2.fillConvexPoly(mask, np.round(points[_hull_indices(points)]).astype(np.int32), 1.0)
        size = float(np.ptp(points, axis=0).max())
        sigma = max(self.cfg.fill_sigma * size, 1.0)
        num = cv2.GaussianBlur(image.astype(np.float32) * mask[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(mask, (0, 0), sigma)[..., None]
        mean = (image.astype(np.float32) * mask[..., None]).sum((0, 1)) / max(mask.sum(), 1.0)
        return np.where(den > 1e-3, num / np.maximum(den, 1e-6), mean).astype(np.float32)

    # ---------------------------------------------------------------- protocol
    def _batch(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> tuple[Geometry, np.ndarray]:
        imgs, src, tgt = check_batch(images, source_points, target_points)
        if src.shape[1] != 68:
            raise GannotateError(f"profile: needs 68 ibug points, got {src.shape[1]}")
        b, h, w = imgs.shape[:3]
        grids = np.empty((b, 3, h, w, 2), np.float32)
        weights = np.empty((b, 3, h, w), np.float32)
        valid = np.empty((b, h, w), np.float32)
        fill = np.empty((b, h, w, 3), np.float32)
        residual = np.empty(b, np.float32)
        self.last_fit_residuals = []
        faces = [self._source(src[i], h, w) for i in range(b)]  # every source first: a bad face fails the batch early
        poses = self._poses(tgt)
        for i in range(b):
            grids[i], weights[i], valid[i], fill[i], residual[i] = self._sample_geometry(imgs[i], faces[i], tgt[i], poses[i])
        return Geometry(grids, weights, valid, fill), residual

    def geometry(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> Geometry:
        """Three layers per sample — direct, mirrored, background — with a low-pass fill for holes."""
        return self._batch(images, source_points, target_points)[0]

    def render_full(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> RenderOutput:
        """Images, validity masks (uint8, 255 = seen by the source) and pre-correction landmark NME."""
        geo, residual = self._batch(images, source_points, target_points)
        valid = covered_valid(geo, coverage)
        return RenderOutput(lookup(np.asarray(images), geo), np.round(valid * 255).astype(np.uint8), residual)

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """Render a batch: ``images`` (B, H, W, 3) uint8, points (B, 68, 2) → (B, H, W, 3) uint8."""
        return lookup(np.asarray(images), self.geometry(images, source_points, target_points))


@register_renderer(
    "profile",
    options=(),
    help="3D face profiling, the 300W-LP recipe (turns the head; non-commercial face model)",
)
def _make_profile() -> ProfileRenderer:
    return ProfileRenderer()
