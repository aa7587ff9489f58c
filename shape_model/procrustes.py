"""Similarity (Procrustes) alignment of 2D shapes, one-to-one and over a collection.

Convention: shapes are (N, K, 2) arrays of (x, y). A similarity maps ``p -> s R(theta) p + t``
with ``R(theta) = [[cos, -sin], [sin, cos]]``; in image coordinates (y down) a positive theta turns
the shape clockwise on screen. Everything is vectorised over N through complex arithmetic
(a 2D similarity is multiplication by the complex number ``s * exp(i theta)``), so there is no
per-shape or per-point Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Similarity2D", "align", "generalised_procrustes", "normalise_shape"]


@dataclass(frozen=True)
class Similarity2D:
    """A batch of similarities ``p -> a * p + t`` with complex ``a = s exp(i theta)``.

    Attributes:
        a: (N,) complex128, scale times rotation.
        t: (N,) complex128, translation ``tx + i ty``.
    """

    a: np.ndarray
    t: np.ndarray

    @property
    def scale(self) -> np.ndarray:
        """(N,) float64 scale factor s > 0."""
        return np.abs(self.a)

    @property
    def theta(self) -> np.ndarray:
        """(N,) float64 rotation in degrees (positive = clockwise on screen, y down)."""
        return np.degrees(np.angle(self.a))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, K, 2) (or (K, 2) broadcast over N) points; returns (N, K, 2) float64."""
        z = _to_complex(points)
        return _to_real(self.a[:, None] * z + self.t[:, None])

    def inverse(self) -> "Similarity2D":
        """The inverse similarities ``p -> (p - t) / a``."""
        inv = 1.0 / self.a
        return Similarity2D(inv, -self.t * inv)


def _to_complex(points: np.ndarray) -> np.ndarray:
    """(..., K, 2) float -> (..., K) complex128, a zero-copy view when possible."""
    p = np.ascontiguousarray(points, dtype=np.float64)
    return p.view(np.complex128)[..., 0]


def _to_real(z: np.ndarray) -> np.ndarray:
    """(..., K) complex -> (..., K, 2) float64 view."""
    z = np.ascontiguousarray(z, dtype=np.complex128)
    return z.view(np.float64).reshape(z.shape + (2,))


def align(source: np.ndarray, target: np.ndarray) -> Similarity2D:
    """Least-squares similarity taking each source shape onto its target.

    Args:
        source: (N, K, 2) or (K, 2) shapes to move.
        target: (N, K, 2) or (K, 2) shapes to move onto (broadcast against ``source``).

    Returns:
        Similarity2D with N = the broadcast batch size; ``T.apply(source) ≈ target``.
        A source with no spread (all points equal) gets ``a = 1`` (no scale) rather than NaN;
        callers that care check degeneracy first (``errors.check_shapes``).
    """
    src = np.asarray(source, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    if src.ndim == 2:
        src = src[None]
    if tgt.ndim == 2:
        tgt = tgt[None]
    src, tgt = np.broadcast_arrays(src, tgt)
    ms = src.mean(axis=1)  # (N, 2)
    mt = tgt.mean(axis=1)
    cs = src - ms[:, None]
    ct = tgt - mt[:, None]
    den = np.einsum("nkd,nkd->n", cs, cs)
    re = np.einsum("nkd,nkd->n", cs, ct)  # Σ conj(zs) zt, real and imaginary parts
    im = np.einsum("nk,nk->n", cs[..., 0], ct[..., 1]) - np.einsum("nk,nk->n", cs[..., 1], ct[..., 0])
    ok = den > 0
    safe = np.where(ok, den, 1.0)
    a = np.where(ok, (re + 1j * im) / safe, 1.0 + 0j)
    t = (mt[:, 0] + 1j * mt[:, 1]) - a * (ms[:, 0] + 1j * ms[:, 1])
    return Similarity2D(a, t)


def normalise_shape(shape: np.ndarray) -> np.ndarray:
    """Centre a (K, 2) shape at the origin and scale it to unit RMS radius (float64)."""
    c = np.asarray(shape, dtype=np.float64) - np.mean(shape, axis=0)
    return c / np.sqrt(np.mean(np.sum(c**2, axis=-1)))


def generalised_procrustes(
    shapes: np.ndarray, n_iter: int = 50, tol: float = 1e-10, reference: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Procrustes analysis: align every shape to their common mean.

    The mean is kept centred with unit RMS radius and its rotation pinned to the first mean
    estimate (the reference, or the first shape), so the frame does not drift between iterations.

    Args:
        shapes: (N, K, 2) shapes.
        n_iter: maximum number of align-then-average rounds.
        tol: stop when the mean moves less than this (RMS, model units).
        reference: optional (K, 2) starting mean that fixes the orientation of the frame.

    Returns:
        (mean (K, 2), aligned (N, K, 2)) float64, both in the unit-RMS model frame.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    mean = normalise_shape(shapes[0] if reference is None else reference)
    anchor = mean
    aligned = shapes
    for _ in range(n_iter):
        aligned = align(shapes, mean).apply(shapes)
        new = normalise_shape(aligned.mean(axis=0))
        new = align(new, anchor).apply(new)[0]  # pin rotation (and keep unit size/centre)
        new = normalise_shape(new)
        moved = np.sqrt(np.mean(np.sum((new - mean) ** 2, axis=-1)))
        mean = new
        if moved < tol:
            break
    aligned = align(shapes, mean).apply(shapes)
    return mean, aligned
