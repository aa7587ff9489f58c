"""Point distribution model: similarity ⊕ yaw/pitch (degrees) ⊕ expression modes.

    points = S(scale, theta, t) · (mean + B_pose · φ(yaw, pitch) + P · c)

- ``mean`` (K, 2): the frontal (yaw = pitch = 0) neutral shape in the model frame (centred,
  about unit RMS radius).
- ``φ``: the monomials ``u^i v^j`` with ``1 <= i + j <= pose_degree`` of ``u = yaw / 90°``,
  ``v = pitch / 90°``, ordered (1,0), (0,1), (2,0), (1,1), (0,2), ...; ``B_pose`` (F, K, 2)
  was learned by regressing aligned training shapes on their estimated head pose, so yaw and
  pitch are real degrees (same sign convention as ``shape_model.pose``).
- ``P`` (E, K, 2): orthonormal expression/identity modes (PCA of what pose leaves), with
  standard deviations ``expression_std`` (E,).
- ``S``: the similarity, kept separate as in menpofit's OrthoPDM. The pose basis and the modes
  are orthogonal to the similarity directions at the mean, and the modes are orthogonal to the
  linear (first-order) pose directions, so a fit splits a shape into the four parts uniquely:
  yaw and pitch are read from directions no expression mode can imitate. (The modes may overlap
  the higher-order pose directions: face width varies between people as well as with yaw.)

Everything is vectorised over N shapes; ``instance`` and ``fit`` of one shape wrap the batch code.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

import numpy as np

from shape_model.errors import ShapeModelError, check_shapes
from shape_model.ibug68 import N_POINTS
from shape_model.params import Params
from shape_model.plausibility import is_plausible
from shape_model.procrustes import align

__all__ = ["PointDistributionModel", "pose_features", "pose_feature_jacobian", "pose_exponents", "ANGLE_UNIT"]

logger = logging.getLogger(__name__)

ANGLE_UNIT = 90.0  # degrees per unit of u, v inside φ (keeps monomials well scaled)
_MARGIN = 0.005  # eye-point margin of the plausibility redraw, in face RMS radii
_CHUNK = 4096  # rows per block in ``instances``
_LIMITS = (90.0, 60.0)  # fitted |yaw|, |pitch| are clipped here (degrees): beyond, the polynomial has no data


def pose_exponents(degree: int) -> np.ndarray:
    """(F, 2) exponents (i, j) of u^i v^j, 1 <= i + j <= degree, by total degree then falling i."""
    return np.array([(d - j, j) for d in range(1, degree + 1) for j in range(d + 1)], dtype=np.int64)


@functools.lru_cache(maxsize=8)
def _exponent_columns(degree: int) -> tuple[np.ndarray, ...]:
    """(i, j, i - 1, j - 1, float i, float j, i == 0, j == 0), each (F,): the gathers φ and dφ are made of."""
    ex = pose_exponents(degree)
    i, j = ex[:, 0], ex[:, 1]
    return i, j, np.maximum(i - 1, 0), np.maximum(j - 1, 0), i.astype(np.float64), j.astype(np.float64), i == 0, j == 0


def _powers(x: np.ndarray, degree: int) -> np.ndarray:
    """(N,) → (N, degree + 1): x⁰, x¹, … by repeated multiplication."""
    out = [np.ones_like(x)]
    for _ in range(degree):
        out.append(out[-1] * x)
    return np.stack(out, axis=-1)


def pose_features(yaw: np.ndarray, pitch: np.ndarray, degree: int) -> np.ndarray:
    """φ(yaw, pitch): (N,) degrees each -> (N, F) monomials of ``yaw / 90°`` and ``pitch / 90°``.

    The monomials are gathered from the powers of u and v in one step each (a fit evaluates φ a few dozen
    times on one or two shapes, so per-monomial array calls were most of its cost).
    """
    i, j = _exponent_columns(degree)[:2]
    pu = _powers(np.asarray(yaw, np.float64) / ANGLE_UNIT, degree)
    pv = _powers(np.asarray(pitch, np.float64) / ANGLE_UNIT, degree)
    return pu[..., i] * pv[..., j]


def pose_feature_jacobian(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    """dφ/d(u, v): (N,) unit angles each -> (N, F, 2)."""
    i, j, i_1, j_1, fi, fj, i0, j0 = _exponent_columns(degree)
    pu, pv = _powers(u, degree), _powers(v, degree)
    du = np.where(i0, 0.0, fi * pu[..., i_1] * pv[..., j])
    dv = np.where(j0, 0.0, fj * pu[..., i] * pv[..., j_1])
    return np.stack([du, dv], axis=-1)


class _PoseSystem:
    """Yaw/pitch least squares ``min ||M (d - B^T φ(u, v))||`` with the expression eliminated.

    ``M = I - Σ_e (1 - m_e) P_e P_e^T`` keeps a fraction ``m_e`` of each mode direction: m = 0 is
    plain least squares (the modes absorb their directions for free), m > 0 is the variable
    projection of a Gaussian prior on the expression. The cost lives in the F-dim span of
    ``M B^T = G R`` (QR), so it is evaluated on F-vectors ``coords = d (M G)``.
    """

    def __init__(self, span: np.ndarray, r: np.ndarray, degree: int) -> None:
        self.span, self.r, self.degree = span, r, degree  # (2K, F) = M G, (F, F)
        self.grid_yaw = np.arange(-90.0, 91.0, 5.0) / ANGLE_UNIT  # starting points for the search (u)
        self.grid_pitch = np.arange(-60.0, 61.0, 10.0) / ANGLE_UNIT  # (v)
        self.n_pitch = len(self.grid_pitch)
        grid = np.stack(np.meshgrid(self.grid_yaw, self.grid_pitch), -1).reshape(-1, 2) * ANGLE_UNIT  # pitch-major
        self.grid_feat = pose_features(grid[:, 0], grid[:, 1], degree) @ r.T  # (G, F)
        self.grid_norm = np.einsum("gf,gf->g", self.grid_feat, self.grid_feat)

    @classmethod
    def build(cls, b: np.ndarray, p: np.ndarray, keep: np.ndarray, degree: int) -> "_PoseSystem":
        """From B (F, 2K), orthonormal P (E, 2K) and the kept fraction m (E,) of each mode."""
        drop = (1.0 - keep)[:, None]
        mb = b - ((b @ p.T) * drop.T) @ p  # (F, 2K) = (M B^T)^T
        g, r = np.linalg.qr(mb.T)  # (2K, F), (F, F)
        mg = g - p.T @ ((p @ g) * drop)  # M G (M is symmetric)
        return cls(mg, r, degree)

    def solve(self, local: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """Global search: the best grid point and the best one > 20° of yaw away, both refined."""
        coords = local @ self.span  # (N, F)
        cost_grid = coords.astype(np.float32) @ (-2.0 * self.grid_feat.T).astype(np.float32)  # (N, G)
        cost_grid += self.grid_norm.astype(np.float32)[None]  # ||coords - grid||² up to a constant
        cost_grid = cost_grid.reshape(len(coords), self.n_pitch, -1)  # (N, pitch, yaw)
        best_pitch = np.argmin(cost_grid, axis=1)  # (N, yaw)
        profile = np.take_along_axis(cost_grid, best_pitch[:, None], axis=1)[:, 0]  # (N, yaw)
        first = np.argmin(profile, axis=1)
        far = np.abs(self.grid_yaw[None] - self.grid_yaw[first][:, None]) > 20.0 / ANGLE_UNIT  # (N, yaw)
        second = np.argmin(np.where(far, profile, np.inf), axis=1)
        n = len(coords)
        yaw_idx = np.concatenate([first, second])
        rows = np.concatenate([np.arange(n), np.arange(n)])
        u = self.grid_yaw[yaw_idx]
        v = self.grid_pitch[best_pitch[rows, yaw_idx]]
        u, v, cost = self.refine(np.concatenate([coords, coords]), u, v, n_iter)
        use2 = cost[n:] < cost[:n]
        return np.where(use2, u[n:], u[:n]), np.where(use2, v[n:], v[:n])

    def refine(
        self, coords: np.ndarray, u: np.ndarray, v: np.ndarray, n_iter: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Levenberg-Marquardt on (u, v) for ||coords - R φ(u, v)||²; returns u, v and the cost."""
        r = self.r
        lu, lv = _LIMITS[0] / ANGLE_UNIT, _LIMITS[1] / ANGLE_UNIT

        def cost(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            res = coords - pose_features(u * ANGLE_UNIT, v * ANGLE_UNIT, self.degree) @ r.T  # (N, F)
            return res, np.einsum("nf,nf->n", res, res)

        res, c = cost(u, v)
        damping = np.full(len(u), 1e-4)
        for _ in range(n_iter):  # a step is kept only where it lowers the cost
            d = pose_feature_jacobian(u, v, self.degree)  # (N, F, 2)
            ju = d[..., 0] @ r.T  # (N, F): dres/du (up to sign) = R dφ/du, one BLAS call each
            jv = d[..., 1] @ r.T
            a, b, cc = np.einsum("nf,nf->n", ju, ju), np.einsum("nf,nf->n", ju, jv), np.einsum("nf,nf->n", jv, jv)
            gu, gv = np.einsum("nf,nf->n", ju, res), np.einsum("nf,nf->n", jv, res)
            lm = damping * (a + cc + 1e-12)  # Levenberg-Marquardt damping on the 2x2 normal equations
            a, cc = a + lm, cc + lm
            det = a * cc - b * b
            u_new = np.clip(u + (cc * gu - b * gv) / det, -lu, lu)
            v_new = np.clip(v + (a * gv - b * gu) / det, -lv, lv)
            res_new, c_new = cost(u_new, v_new)
            better = c_new <= c
            u, v = np.where(better, u_new, u), np.where(better, v_new, v)
            res, c = np.where(better[:, None], res_new, res), np.where(better, c_new, c)
            damping = np.where(better, damping * 0.3, damping * 30.0)
        return u, v, c


class PointDistributionModel:
    """A 2D PDM whose pose parameters are yaw and pitch in degrees.

    Args:
        mean: (K, 2) frontal neutral shape, model frame.
        pose_basis: (F, K, 2) ``B_pose``; F must be the number of monomials of ``pose_degree``.
        components: (E, K, 2) orthonormal expression modes (as 2K-vectors).
        expression_std: (E,) standard deviation of each mode over the training shapes.
        pose_degree: polynomial degree of φ (1 = linear).
        provenance: free-form dict saved with the model (sources, counts, date, command).
    """

    def __init__(
        self,
        mean: np.ndarray,
        pose_basis: np.ndarray,
        components: np.ndarray,
        expression_std: np.ndarray,
        pose_degree: int = 1,
        provenance: dict | None = None,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.pose_basis = np.asarray(pose_basis, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)
        self.expression_std = np.asarray(expression_std, dtype=np.float64)
        self.pose_degree = int(pose_degree)
        self.provenance = dict(provenance or {})
        k = self.mean.shape[0]
        f = len(pose_exponents(self.pose_degree))
        if self.mean.shape != (k, 2) or self.pose_basis.shape != (f, k, 2):
            raise ShapeModelError(
                f"PointDistributionModel: mean {self.mean.shape} / pose_basis {self.pose_basis.shape} do not match "
                f"K={k}, degree {self.pose_degree} (F={f})"
            )
        if self.components.shape[1:] != (k, 2) or self.expression_std.shape != (self.components.shape[0],):
            raise ShapeModelError(
                f"PointDistributionModel: components {self.components.shape} / expression_std "
                f"{self.expression_std.shape} do not match K={k}"
            )
        self._b_flat = self.pose_basis.reshape(f, -1)  # (F, 2K)
        self._p_flat = self.components.reshape(self.n_expression, -1)  # (E, 2K)
        self._w32 = np.concatenate([self.mean.reshape(1, -1), self._b_flat, self._p_flat]).astype(np.float32)
        # Two yaw/pitch systems: least squares (expression free), and one with a Gaussian prior on
        # the expression (λ = the smallest mode variance) that only picks the valley to refine in.
        lam = float(self.expression_std[-1] ** 2) if self.n_expression else 0.0
        ratio = lam / np.maximum(self.expression_std**2, 1e-300)
        self._ls = _PoseSystem.build(self._b_flat, self._p_flat, np.zeros(self.n_expression), self.pose_degree)
        self._map = _PoseSystem.build(self._b_flat, self._p_flat, np.sqrt(ratio / (1 + ratio)), self.pose_degree)

    # ----------------------------------------------------------------- sizes
    @property
    def n_points(self) -> int:
        """K."""
        return int(self.mean.shape[0])

    @property
    def n_expression(self) -> int:
        """E."""
        return int(self.components.shape[0])

    @property
    def n_params(self) -> int:
        """P = 6 + E, the length of ``Params.to_vector`` rows."""
        return 6 + self.n_expression

    def __repr__(self) -> str:
        return (
            f"PointDistributionModel(n_points={self.n_points}, n_expression={self.n_expression}, "
            f"pose_degree={self.pose_degree})"
        )

    # ------------------------------------------------------------- instances
    def shapes_in_model_frame(self, yaw: np.ndarray, pitch: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """mean + B_pose φ(yaw, pitch) + P c: (N,), (N,), (N, E) -> (N, K, 2) float64."""
        phi = pose_features(yaw, pitch, self.pose_degree)  # (N, F)
        flat = self.mean.reshape(1, -1) + phi @ self._b_flat + np.asarray(expression, np.float64) @ self._p_flat
        return flat.reshape(-1, self.n_points, 2)

    def instances(self, params: Params) -> np.ndarray:
        """Shapes of ``params``: (N, K, 2) float32, (x, y) in the frame the params were fitted in.

        Computed in float32 blocks of ``_CHUNK`` rows (one matmul each, working set in cache);
        relative error ~1e-7 of the face size.
        """
        self._check_params(params)
        n, k = len(params), self.n_points
        out = np.empty((n, k, 2), dtype=np.float32)
        rad = np.radians(params.theta)
        cos, sin = (params.scale * np.cos(rad)).astype(np.float32), (params.scale * np.sin(rad)).astype(np.float32)
        tx, ty = params.tx.astype(np.float32), params.ty.astype(np.float32)
        for start in range(0, n, _CHUNK):
            sl = slice(start, start + _CHUNK)
            phi = pose_features(params.yaw[sl], params.pitch[sl], self.pose_degree)  # (n, F)
            coef = np.concatenate([np.ones((len(phi), 1)), phi, params.expression[sl]], axis=1).astype(np.float32)
            local = (coef @ self._w32).reshape(-1, k, 2)  # (n, K, 2) model frame
            c, s_ = cos[sl, None], sin[sl, None]
            out[sl, :, 0] = c * local[..., 0] - s_ * local[..., 1] + tx[sl, None]
            out[sl, :, 1] = s_ * local[..., 0] + c * local[..., 1] + ty[sl, None]
        return out

    def instance(
        self,
        params: Params | None = None,
        *,
        yaw: float = 0.0,
        pitch: float = 0.0,
        expression: np.ndarray | None = None,
        scale: float = 1.0,
        theta: float = 0.0,
        tx: float = 0.0,
        ty: float = 0.0,
    ) -> np.ndarray:
        """One shape, (K, 2) float32: from a one-row ``params`` or from keywords (model frame by default).

        Example:
            >>> model.instance(yaw=30.0)  # the mean face turned 30° to its own left
        """
        if params is None:
            expr = np.zeros(self.n_expression) if expression is None else np.asarray(expression, np.float64)
            params = Params(scale, theta, tx, ty, yaw, pitch, expr[None])
        if len(params) != 1:
            raise ShapeModelError(f"instance: expected one shape's params, got {len(params)} (use instances)")
        return self.instances(params)[0]

    # ------------------------------------------------------------------- fit
    def _solve_pose(self, local: np.ndarray, n_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """(yaw, pitch) / 90° of model-frame deviations ``local`` (N, 2K) from the mean."""
        lu, lv = _LIMITS[0] / ANGLE_UNIT, _LIMITS[1] / ANGLE_UNIT
        if self.pose_degree == 1:  # linear and identifiable: the modes avoid the pose directions
            w = np.linalg.solve(self._ls.r, (local @ self._ls.span).T).T
            return np.clip(w[:, 0], -lu, lu), np.clip(w[:, 1], -lv, lv)
        u, v = self._map.solve(local, n_iter)  # the valley, chosen with the expression prior
        u, v, _ = self._ls.refine(local @ self._ls.span, u, v, n_iter)  # its least-squares bottom
        return u, v

    def fit(self, points: np.ndarray, n_iter: int = 1, pose_iter: int = 4) -> Params:
        """Least-squares parameters of shapes (similarity, yaw/pitch, expression).

        Alternates (1) the exact similarity that best maps the current model shape onto the
        points and (2) the shape parameters of the points mapped back into the model frame, so
        the result does not depend on the input's scale, rotation or translation. In (2) the
        expression is eliminated (variable projection); yaw/pitch start from a grid (two starts
        more than 20° of yaw apart, valley chosen under a Gaussian prior on the expression) and
        are refined to the least-squares minimum by Levenberg-Marquardt; the expression is then
        exact least squares. |yaw| is clipped at 90°, |pitch| at 60°.

        Args:
            points: (N, K, 2) or (K, 2), (x, y) pixels (any similarity frame).
            n_iter: similarity/shape alternations.
            pose_iter: Levenberg-Marquardt steps per yaw/pitch solve (``pose_degree > 1``).

        Returns:
            Params with N rows (N = 1 for a single shape).

        Raises:
            ShapeModelError: wrong point count, NaN/inf, or a degenerate shape (all points equal
                or collinear); never returns NaN.
        """
        pts, _ = check_shapes(points, self.n_points)
        n = pts.shape[0]
        shape = np.broadcast_to(self.mean, pts.shape)
        yaw = pitch = np.zeros(n)
        expr = np.zeros((n, self.n_expression))
        for _ in range(n_iter + 1):
            sim = align(shape, pts)  # model frame -> image
            local = sim.inverse().apply(pts).reshape(n, -1) - self.mean.reshape(1, -1)  # (N, 2K)
            u, v = self._solve_pose(local, pose_iter)
            yaw, pitch = u * ANGLE_UNIT, v * ANGLE_UNIT
            phi = pose_features(yaw, pitch, self.pose_degree)
            expr = (local - phi @ self._b_flat) @ self._p_flat.T  # (N, E), modes are orthonormal
            shape = self.shapes_in_model_frame(yaw, pitch, expr)
        sim = align(shape, pts)
        out = Params(sim.scale, sim.theta, sim.t.real, sim.t.imag, yaw, pitch, expr)
        if not np.isfinite(out.to_vector()).all():
            raise ShapeModelError("fit: produced non-finite parameters (input shapes are likely degenerate)")
        return out

    # ------------------------------------------------------------ edit/sample
    def frontalise(self, params: Params) -> Params:
        """The same faces seen frontally: yaw = pitch = theta = 0; expression, scale, centre kept.

        ``tx, ty`` are the image position of the model origin (the shape's centroid), so the
        frontal face stays where the input face was.
        """
        self._check_params(params)
        n = len(params)
        return replace(params, theta=np.zeros(n), yaw=np.zeros(n), pitch=np.zeros(n))

    def sample(
        self,
        rng: np.random.Generator | int | None,
        n: int,
        yaw_range: tuple[float, float] = (-45.0, 45.0),
        pitch_range: tuple[float, float] = (0.0, 0.0),
        roll_range: tuple[float, float] = (0.0, 0.0),
        expression_scale: float = 1.0,
        base: Params | None = None,
        truncation: float = 2.5,
        plausible_only: bool = True,
        max_rounds: int = 20,
    ) -> Params:
        """Draw ``n`` random parameter sets, all at once.

        yaw, pitch and roll (theta) are uniform in their ranges (degrees, absolute). Expression is
        Gaussian with ``expression_scale × expression_std`` per mode, clipped at ``truncation``
        standard deviations. With ``base`` (1 or n rows), scale, translation and the base
        expression are kept and the Gaussian is added to it (``expression_scale=0`` keeps the
        base face exactly); otherwise scale = 1, t = 0. With ``plausible_only`` (68-point models),
        rows whose shape fails ``plausibility.is_plausible`` (an eye outside the outline, a
        self-crossing jaw) get a fresh expression draw, up to ``max_rounds`` times; rows still
        failing then are kept and counted in a log warning.

        Returns:
            Params with n rows.
        """
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        for name, (a, b) in (("yaw_range", yaw_range), ("pitch_range", pitch_range), ("roll_range", roll_range)):
            if not (np.isfinite(a) and np.isfinite(b) and a <= b):
                raise ShapeModelError(f"sample: {name} must be finite with start <= end, got ({a}, {b})")
        if n < 0 or expression_scale < 0:
            raise ShapeModelError(f"sample: need n >= 0 and expression_scale >= 0, got n={n}, {expression_scale}")
        if base is not None:
            self._check_params(base)
            if len(base) not in (1, n):
                raise ShapeModelError(f"sample: base has {len(base)} rows; give 1 or n={n}")
        yaw = gen.uniform(yaw_range[0], yaw_range[1], n)
        pitch = gen.uniform(pitch_range[0], pitch_range[1], n)
        theta = gen.uniform(roll_range[0], roll_range[1], n)
        sigma = expression_scale * self.expression_std
        base_expr = np.zeros((1, self.n_expression)) if base is None else base.expression
        expr = base_expr + np.clip(gen.standard_normal((n, self.n_expression)), -truncation, truncation) * sigma
        if plausible_only and self.n_points == N_POINTS and n > 0:
            bad = ~is_plausible(self.shapes_in_model_frame(yaw, pitch, expr), yaw, margin=_MARGIN)
            for _ in range(max_rounds):
                if not bad.any():
                    break
                rows = np.flatnonzero(bad)
                z = np.clip(gen.standard_normal((len(rows), self.n_expression)), -truncation, truncation)
                expr[rows] = base_expr[rows if len(base_expr) > 1 else 0] + z * sigma
                shapes = self.shapes_in_model_frame(yaw[rows], pitch[rows], expr[rows])
                bad[rows] = ~is_plausible(shapes, yaw[rows], margin=_MARGIN)
            if bad.any():
                logger.warning("sample: %d of %d shapes still implausible after %d redraws", bad.sum(), n, max_rounds)
        if base is None:
            return Params(np.ones(n), theta, np.zeros(n), np.zeros(n), yaw, pitch, expr)
        return Params(base.scale, theta, base.tx, base.ty, yaw, pitch, expr)

    # ---------------------------------------------------------------- checks
    def _check_params(self, params: Params) -> None:
        if not isinstance(params, Params):
            raise ShapeModelError(f"expected a Params, got {type(params).__name__}")
        if params.n_expression != self.n_expression:
            raise ShapeModelError(
                f"Params have {params.n_expression} expression coefficients; this model has {self.n_expression}"
            )
