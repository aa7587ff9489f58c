"""A dense 3D face (the Surrey Face Model) fitted to 68 landmarks: load, fit, project (numpy only).

    X_cam = s · R · (mean + S α + E β) + [tx, ty, 0]

with S the identity (shape) basis in σ units, E the expression blendshapes, R a rotation in the camera-like
frame of ``shape_model.pose`` (x right, y down, z away from the viewer; the face looks along −z) and a
scaled-orthographic camera (image x, y = the first two rows). Euler angles follow ``pose.rotation_to_euler``.

Why a fitter of our own and not eos-py's ``fit_shape_and_pose``: the renderer needs the jaw contour
correspondences the fit chose (eos's Python call does not return them), a fit with the identity (and
optionally the rotation) held fixed for the target, and no C++ wheel at runtime. The fit is alternating
linear least squares (pose by affine + nearest scaled rotation; identity and expression by ridge regression),
with the jaw chosen per pose by *landmark marching* (3DDFA / 300W-LP): each jaw landmark slides along a
horizontal line of vertices to the outermost one in the image, so on the side turning away it follows the
cheek's silhouette and on the side turning towards the camera it stays on the jaw line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from shape_model.errors import ShapeModelError

__all__ = ["Face3DModel", "Face3DFit", "FitConfig", "load_face3d", "fit_face3d", "fit_target", "turned", "euler_to_rotation",
           "JAW_CONTOUR"]

JAW_CONTOUR = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16])  # jaw points chosen per pose
_EYES = (36, 45)


@dataclass(frozen=True)
class Face3DModel:
    """The compact SFM (see ``recipes/build_face3d_model.py``); arrays in the camera-like frame, millimetres.

    Attributes:
        mean: (V, 3); shape_basis: (V, 3, P) mm per σ; expression_basis: (V, 3, E) blendshape offsets.
        triangles: (T, 3); landmarks: (68,) vertex per iBUG point, −1 for contour points.
        symmetry: (V,) mirror vertex; hull_distance: (V,) mm inside (+) the frontal landmark hull.
        lines: one (n_j,) vertex array per entry of ``JAW_CONTOUR`` (marching candidates, frontal contour first);
        line_dirs: (16, 3) outward direction of each jaw point in the model frame.
    """

    mean: np.ndarray
    shape_basis: np.ndarray
    expression_basis: np.ndarray
    triangles: np.ndarray
    landmarks: np.ndarray
    symmetry: np.ndarray
    hull_distance: np.ndarray
    licence: str
    lines: tuple[np.ndarray, ...] = field(repr=False)
    line_dirs: np.ndarray = field(repr=False)
    fit_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    def subset(self) -> "Face3DModel":
        """The model restricted to the vertices the fit reads (landmarks + marching lines), indices remapped.

        Why: a fit iteration then touches ~10% of the mesh (the fit drops from ~8 ms to ~2 ms).
        """
        idx = self.fit_index
        local = np.full(self.n_vertices, -1, np.int64)
        local[idx] = np.arange(len(idx))
        lm = np.where(self.landmarks >= 0, local[np.maximum(self.landmarks, 0)], -1)
        return Face3DModel(
            self.mean[idx], self.shape_basis[idx], self.expression_basis[idx], np.zeros((0, 3), np.int64), lm,
            np.zeros(0, np.int64), self.hull_distance[idx], self.licence, tuple(local[c] for c in self.lines),
            self.line_dirs, np.arange(len(idx)),
        )

    @property
    def n_vertices(self) -> int:
        return len(self.mean)

    def vertices(self, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """(V, 3) model-frame vertices for identity ``alpha`` (≤ P,) and expression ``beta`` (E,)."""
        b = np.asarray(beta, np.float64)
        e = self.expression_basis
        return self.identity_vertices(alpha) + (e.reshape(-1, e.shape[2]) @ b).reshape(-1, 3)  # 2D: one BLAS call

    def identity_vertices(self, alpha: np.ndarray) -> np.ndarray:
        """(V, 3) read-only neutral face of identity ``alpha``, cached for the last few identities.

        Why: a target fit holds the source's identity, so every iteration of every target of a face would
        otherwise recompute the same (V·3 × P) product (a third of the renderer's fit time).
        """
        a = np.asarray(alpha, np.float64)
        cache = self.__dict__.setdefault("_identity_cache", {})
        key = a.tobytes()
        hit = cache.get(key)
        if hit is None:
            basis = self.shape_basis[:, :, : len(a)]
            hit = self.mean + (basis.reshape(-1, basis.shape[2]) @ a).reshape(-1, 3)
            hit.setflags(write=False)
            if len(cache) >= 8:  # clear, not evict one: a single call, safe while loader threads fit faces too
                cache.clear()
            cache[key] = hit
        return hit


@dataclass(frozen=True)
class FitConfig:
    """Fitting settings (defaults measured on 300W faces: see benchmarks/profile_renderer.py)."""

    n_shape: int = 30          # identity components used (of 63)
    shape_reg: float = 30.0    # ridge on α (mm² per σ²): keeps unseen depth near the mean
    expr_reg: float = 60.0     # ridge on β (mm² per unit blendshape)
    n_iter: int = 6            # alternations of correspondence / pose / shape
    jaw_weight: float = 0.5    # jaw contour points are less certain than the inner ones


@dataclass(frozen=True)
class Face3DFit:
    """A fitted face: identity, expression, pose, and which vertex each landmark matched.

    Attributes:
        alpha: (n_shape,); beta: (E,); rotation: (3, 3) model → camera; scale: px per mm; t: (2,) px.
        correspondence: (68,) vertex index per landmark (jaw points as chosen for this pose).
        residual: landmark NME of the fit (fraction of the outer-eye-corner distance of the points).
    """

    alpha: np.ndarray
    beta: np.ndarray
    rotation: np.ndarray
    scale: float
    t: np.ndarray
    correspondence: np.ndarray
    residual: float

    def camera_vertices(self, model: Face3DModel) -> np.ndarray:
        """(V, 3) vertices in the image frame: x, y in pixels, z (depth, away from the viewer) in pixels."""
        return self._to_camera(model.vertices(self.alpha, self.beta))

    def landmarks_2d(self, model: Face3DModel, vertices: np.ndarray | None = None) -> np.ndarray:
        """(68, 2) projected correspondences.

        ``vertices``: the fit's ``model.vertices(alpha, beta)`` when the caller has them (one face turned many
        times): then only the 68 corresponding vertices are projected, with the same numbers.
        """
        if vertices is None:
            return self.camera_vertices(model)[self.correspondence, :2]
        return self._to_camera(vertices[self.correspondence])[:, :2]

    def _to_camera(self, vertices: np.ndarray) -> np.ndarray:
        v = self.scale * vertices @ self.rotation.T
        v[:, :2] += self.t
        return v


def load_face3d(path: str | Path) -> Face3DModel:
    """Read the compact model file (cached per path and modification time)."""
    p = Path(path)
    if not p.exists():
        raise ShapeModelError(f"{p}: 3D face model not found; build it with recipes/build_face3d_model.py")
    return _load_cached(str(p), p.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime_ns: int) -> Face3DModel:
    d = np.load(path)
    mean = d["mean"].astype(np.float64)
    lm = d["landmarks"].astype(np.int64)
    lines, dirs = _marching_lines(mean, lm, d["contour_right"], d["contour_left"], d["hull_distance"])
    fit_index = np.unique(np.concatenate([lm[lm >= 0], *lines]))
    full = Face3DModel(
        mean=mean,
        shape_basis=d["shape_basis"].astype(np.float64),
        expression_basis=d["expression_basis"].astype(np.float64),
        triangles=d["triangles"].astype(np.int64),
        landmarks=lm,
        symmetry=d["symmetry"].astype(np.int64),
        hull_distance=d["hull_distance"].astype(np.float64),
        licence=str(d["licence"]),
        lines=lines,
        line_dirs=dirs,
        fit_index=fit_index,
    )
    return _with_subset(full)


def _with_subset(model: Face3DModel) -> Face3DModel:
    object.__setattr__(model, "_subset", model.subset())
    return model


def _marching_lines(
    mean: np.ndarray, lm: np.ndarray, contour_r: np.ndarray, contour_l: np.ndarray, hull: np.ndarray, band: float = 4.0
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Candidate vertices per jaw landmark: a horizontal band from the frontal contour inwards (not the nose).

    The frontal jaw points are spaced evenly along the model's contour from eye height to the chin.
    """
    eye_y = mean[lm[list(_EYES)], 1].mean()
    chin = mean[lm[8]]
    centre = mean[lm[[27, 28, 29, 30, 33, 51, 57]]].mean(0)
    lines, dirs = [], []
    for side, contour, idx in ((-1, contour_r, np.arange(0, 8)), (1, contour_l, np.arange(16, 8, -1))):
        c = contour[mean[contour, 1] >= eye_y]
        poly = np.concatenate([mean[c], chin[None]])  # eye height → chin
        seg = np.linalg.norm(np.diff(poly[:, :2], axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        for n, j in enumerate(idx):
            s = arc[-1] * n / 8.0
            q = np.array([np.interp(s, arc, poly[:, 0]), np.interp(s, arc, poly[:, 1])])
            x, y = mean[:, 0] * side, mean[:, 1]
            sel = (np.abs(y - q[1]) < band) & (x <= side * q[0] + 1.0) & (x >= 0.35 * side * q[0]) & (hull > -6.0)
            cand = np.flatnonzero(sel)
            if len(cand) == 0:  # pragma: no cover - the SFM always has vertices there
                cand = np.array([np.argmin(np.linalg.norm(mean[:, :2] - q, axis=1))])
            lines.append((int(j), cand))
            d = np.array([q[0] - centre[0], q[1] - centre[1], 0.0])
            dirs.append((int(j), d / np.linalg.norm(d)))
    order = {j: k for k, j in enumerate(JAW_CONTOUR)}
    lines.sort(key=lambda e: order[e[0]])
    dirs.sort(key=lambda e: order[e[0]])
    return tuple(c for _, c in lines), np.stack([d for _, d in dirs])


def euler_to_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) model → camera rotation with ``pose.rotation_to_euler(R) == (yaw, pitch, roll)`` (degrees)."""
    y, p, r = np.radians([yaw, pitch, roll])
    d = np.array([np.sin(y) * np.cos(p), -np.sin(p), -np.cos(y) * np.cos(p)])  # forward (out of the face)
    e = np.array([np.cos(r), np.sin(r), 0.0])
    e[2] = -(e[0] * d[0] + e[1] * d[1]) / d[2] if abs(d[2]) > 1e-9 else 0.0
    e /= np.linalg.norm(e)
    z = -d
    return np.stack([e, np.cross(z, e), z], axis=1)


def _jaw_choice(model: Face3DModel, verts: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(16,) vertex per jaw contour point: the outermost of its line in the image (landmark marching)."""
    flat, seg, starts = _flat_lines(model)
    r2 = rotation[:2]
    score = np.einsum("nc,nc->n", verts[flat] @ r2.T, (model.line_dirs @ r2.T)[seg])
    best = np.maximum.reduceat(score, starts)
    hit = np.flatnonzero(score >= best[seg])
    seg_hit = seg[hit]  # ascending: the lines lie one after another
    first = np.flatnonzero(np.concatenate([[True], seg_hit[1:] != seg_hit[:-1]]))  # each line's first hit
    return flat[hit[first]]


def _flat_lines(model: Face3DModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The marching lines as one flat index array, its segment ids and segment starts (cached on the model)."""
    cached = getattr(model, "_flat", None)
    if cached is None:
        sizes = np.array([len(c) for c in model.lines])
        cached = (np.concatenate(model.lines), np.repeat(np.arange(len(sizes)), sizes), np.cumsum(sizes) - sizes)
        object.__setattr__(model, "_flat", cached)
    return cached


def _scaled_rotation(x: np.ndarray, X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Weighted affine camera x ≈ A X + t, projected to the nearest scaled rotation → (R, s, t)."""
    sw = np.sqrt(w)[:, None]
    design = np.concatenate([X, np.ones((len(X), 1))], axis=1) * sw
    sol, *_ = np.linalg.lstsq(design, x * sw, rcond=None)  # (4, 2)
    a = sol[:3].T  # (2, 3)
    u, sv, vt = np.linalg.svd(a, full_matrices=False)
    r2 = u @ vt
    rot = np.concatenate([r2, np.cross(r2[0], r2[1])[None]], axis=0)
    if np.linalg.det(rot) < 0:  # pragma: no cover - cross product keeps det = +1
        rot[2] *= -1
    return rot, float(sv.mean()), _translation(x, X, rot, float(sv.mean()), w)


def _refine_pose(
    x: np.ndarray, X: np.ndarray, rot: np.ndarray, scale: float, t: np.ndarray, w: np.ndarray, n_iter: int = 2
) -> tuple[np.ndarray, float, np.ndarray]:
    """Gauss-Newton on (rotation, scale, translation): the affine start is not the best scaled rotation."""
    sw = np.sqrt(w)
    jac = np.zeros((len(X), 2, 6))  # per point and image axis: d/d(rotation vector, scale, tx, ty)
    jac[:, 0, 4] = jac[:, 1, 5] = 1.0
    for _ in range(n_iter):
        p = X @ rot.T  # (K, 3)
        res = x - (scale * p[:, :2] + t)
        jac[:, 0, 1], jac[:, 0, 2] = scale * p[:, 2], scale * -p[:, 1]
        jac[:, 1, 0], jac[:, 1, 2] = scale * -p[:, 2], scale * p[:, 0]
        jac[:, :, 3] = p[:, :2]
        wj = (jac * sw[:, None, None]).reshape(-1, 6)
        step = np.linalg.solve(wj.T @ wj + 1e-9 * np.eye(6), wj.T @ (res * sw[:, None]).reshape(-1))
        rot = _rodrigues(step[:3]) @ rot
        scale, t = scale + float(step[3]), t + step[4:]
    return rot, scale, t


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    """(3,) rotation vector → (3, 3) rotation."""
    theta = float(np.linalg.norm(omega))
    if theta < 1e-12:
        return np.eye(3)
    k = np.array([[0, -omega[2], omega[1]], [omega[2], 0, -omega[0]], [-omega[1], omega[0], 0]]) / theta
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)


def _translation(x: np.ndarray, X: np.ndarray, rot: np.ndarray, scale: float, w: np.ndarray) -> np.ndarray:
    return ((x - scale * X @ rot[:2].T) * w[:, None]).sum(0) / w.sum()


def _scale_translation(x: np.ndarray, X: np.ndarray, rot: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares scale and translation with the rotation fixed."""
    p = X @ rot[:2].T
    pm, xm = (p * w[:, None]).sum(0) / w.sum(), (x * w[:, None]).sum(0) / w.sum()
    pc, xc = p - pm, x - xm
    scale = float((w[:, None] * pc * xc).sum() / max((w[:, None] * pc * pc).sum(), 1e-12))
    return scale, xm - scale * pm


def fit_face3d(
    model: Face3DModel,
    points: np.ndarray,
    cfg: FitConfig = FitConfig(),
    alpha: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    start_rotation: np.ndarray | None = None,
) -> Face3DFit:
    """Fit the 3D face to (68, 2) landmarks (x, y) in pixels.

    A free fit (no ``alpha``, ``rotation``, ``beta`` or ``start_rotation``) is kept on the model for the last
    few faces: augment fits each source once for its plan (the 3D turn) and once for its renderer (the
    texture), in the same process, and both get the same numbers from one fit.

    Args:
        alpha: a fixed identity (the source's, when fitting a target); None fits it.
        rotation: a fixed (3, 3) rotation (the source's turned by the planned pose change); None fits it.
        beta: a starting expression.
        start_rotation: a starting rotation for a free-rotation fit (else an affine start).

    Raises:
        ShapeModelError: non-finite or degenerate (collinear, zero-size) landmarks.
    """
    if alpha is None and rotation is None and beta is None and start_rotation is None:
        x = np.asarray(points, np.float64)
        cache = model.__dict__.setdefault("_free_fits", {})
        key = (x.tobytes(), x.shape, cfg)
        hit = cache.get(key)
        if hit is None:
            hit = _fit_face3d(model, x, cfg, None, None, None, None)
            for value in vars(hit).values():  # shared by every caller: none may change it
                if isinstance(value, np.ndarray):
                    value.setflags(write=False)
            if len(cache) >= 16:  # clear, not evict one: a single call, safe while loader threads fit faces too
                cache.clear()
            cache[key] = hit
        return hit
    return _fit_face3d(model, points, cfg, alpha, rotation, beta, start_rotation)


def _fit_face3d(
    model: Face3DModel,
    points: np.ndarray,
    cfg: FitConfig,
    alpha: np.ndarray | None,
    rotation: np.ndarray | None,
    beta: np.ndarray | None,
    start_rotation: np.ndarray | None,
) -> Face3DFit:
    x = np.asarray(points, np.float64)
    if x.shape != (68, 2) or not np.isfinite(x).all():
        raise ShapeModelError(f"3D fit: expected (68, 2) finite points, got {x.shape}")
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if sv[1] < 1e-3 * max(sv[0], 1e-9) or sv[0] < 1e-6:
        raise ShapeModelError("3D fit: degenerate landmarks (collinear or zero size)")
    full = model
    model = getattr(full, "_subset", full)
    fix_alpha = alpha is not None
    a = np.zeros(cfg.n_shape) if alpha is None else np.asarray(alpha, np.float64)
    b = np.zeros(model.expression_basis.shape[2]) if beta is None else np.asarray(beta, np.float64)
    corr = model.landmarks.copy()
    fixed = corr >= 0
    w = np.where(fixed, 1.0, cfg.jaw_weight)
    w[[60, 64]] = 0.3  # interpolated mapping (see the recipe)
    verts = model.vertices(a, b)
    if rotation is None and start_rotation is None:
        rot, scale, t = _scaled_rotation(x[fixed], verts[corr[fixed]], w[fixed])
    elif rotation is None:
        rot = np.asarray(start_rotation, np.float64)
        scale, t = _scale_translation(x[fixed], verts[corr[fixed]], rot, w[fixed])
    else:
        rot = np.asarray(rotation, np.float64)
        scale, t = _scale_translation(x[fixed], verts[corr[fixed]], rot, w[fixed])
    for _ in range(cfg.n_iter):
        corr[JAW_CONTOUR] = _jaw_choice(model, verts, rot)
        X = verts[corr]
        if rotation is None:
            rot, scale, t = _refine_pose(x, X, rot, scale, t, w)
        else:
            scale, t = _scale_translation(x, X, rot, w)
        a, b = _solve_shape(model, x, corr, w, rot, scale, t, a, cfg, fix_alpha)
        verts = model.vertices(a, b)
    corr[JAW_CONTOUR] = _jaw_choice(model, verts, rot)
    proj = scale * verts[corr] @ rot[:2].T + t
    iod = max(float(np.linalg.norm(x[_EYES[0]] - x[_EYES[1]])), 1e-6)
    residual = float(np.linalg.norm(proj - x, axis=1).mean() / iod)
    return Face3DFit(a, b, rot, scale, t, full.fit_index[corr] if model is not full else corr, residual)


def fit_target(
    model: Face3DModel,
    source_fit: Face3DFit,
    source_pose: np.ndarray,
    target_points: np.ndarray,
    target_pose: np.ndarray,
    cfg: FitConfig,
    ways: tuple[str, ...] = ("rotate", "fit"),
) -> tuple[Face3DFit, dict[str, float]]:
    """The target's fit with the source's identity: the better (smaller NME) of the requested ways.

    "rotate": the source's rotation turned by the PDM pose change (``target_pose - source_pose``), rotation
    held; scale, shift, expression fitted. "fit": the same start with the rotation free as well.
    Returns the kept fit and the residual of every way tried.
    """
    if not ways or set(ways) - {"rotate", "fit"}:
        raise ValueError(f"fit_target: ways must be a non-empty subset of ('rotate', 'fit'), got {ways}")
    euler = _euler(source_fit.rotation) + (np.asarray(target_pose, np.float64) - np.asarray(source_pose, np.float64))
    rot = euler_to_rotation(*euler)
    a, b = source_fit.alpha, source_fit.beta
    fits = {}
    if "rotate" in ways:
        fits["rotate"] = fit_face3d(model, target_points, cfg, alpha=a, rotation=rot, beta=b)
    if "fit" in ways:
        fits["fit"] = fit_face3d(model, target_points, cfg, alpha=a, beta=b, start_rotation=rot)
    best = min(fits.values(), key=lambda f: f.residual)
    return best, {k: f.residual for k, f in fits.items()}


def _euler(rot: np.ndarray) -> np.ndarray:
    from shape_model.pose import rotation_to_euler

    return rotation_to_euler(rot[None])[0]


def turned(model: Face3DModel, fit: Face3DFit, rotation: np.ndarray, vertices: np.ndarray | None = None) -> Face3DFit:
    """The fitted face under another (3, 3) rotation — same identity, expression, scale and shift — with its jaw
    landmarks marched to the new silhouette, as a real head turning in front of the camera shows them.

    ``vertices``: the fit's ``model.vertices(alpha, beta)``, when the caller turns one fit many times.
    """
    verts = model.vertices(fit.alpha, fit.beta) if vertices is None else vertices
    corr = np.array(fit.correspondence, copy=True)
    corr[JAW_CONTOUR] = _jaw_choice(model, verts, np.asarray(rotation, np.float64))
    return replace(fit, rotation=np.asarray(rotation, np.float64), correspondence=corr)


def _solve_shape(
    model: Face3DModel,
    x: np.ndarray,
    corr: np.ndarray,
    w: np.ndarray,
    rot: np.ndarray,
    scale: float,
    t: np.ndarray,
    alpha: np.ndarray,
    cfg: FitConfig,
    fix_alpha: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares for (α, β) given the pose; residuals in model millimetres (÷ scale)."""
    r2 = rot[:2]
    n_a = 0 if fix_alpha else len(alpha)
    base = model.identity_vertices(alpha)[corr] if fix_alpha else model.mean[corr]
    basis = model.expression_basis[corr]  # (K, 3, E)
    if n_a:
        basis = np.concatenate([model.shape_basis[corr][:, :, :n_a], basis], axis=2)  # (K, 3, n_a+E)
    target = (x - t) / scale - base @ r2.T  # (K, 2) mm
    design = np.einsum("ij,kjm->kim", r2, basis)  # (K, 2, M)
    sw = np.sqrt(w)[:, None, None]
    design = (design * sw).reshape(-1, design.shape[2])
    rhs = (target * sw[..., 0]).reshape(-1)
    reg = np.concatenate([np.full(n_a, cfg.shape_reg), np.full(basis.shape[2] - n_a, cfg.expr_reg)])
    normal, proj = design.T @ design + np.diag(reg), design.T @ rhs
    # blendshapes are one-sided expressions (β ≥ 0): a small active set, not a clip after the fact
    free = np.ones(len(reg), bool)
    sol = np.zeros(len(reg))
    for _ in range(4):
        sol[:] = 0.0
        sol[free] = np.linalg.solve(normal if free.all() else normal[np.ix_(free, free)], proj[free])
        neg = ~free.copy()
        neg[n_a:] |= sol[n_a:] < 0
        if (neg == ~free).all():
            break
        free = ~neg
    beta = np.clip(sol[n_a:], 0.0, 1.5)
    return (sol[:n_a] if n_a else alpha), beta
