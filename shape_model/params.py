"""``Params``: the parameters of a batch of PDM shapes, and their flat-vector form.

Flat layout (what the HDF5 ``params`` dataset stores), P = 6 + E columns:
``[scale, theta, tx, ty, yaw, pitch, expression_0 .. expression_{E-1}]`` with
scale in pixels per model unit (the model's mean shape has unit RMS radius, so scale is the
face's RMS radius in pixels), theta in degrees (in-plane, positive = clockwise on screen with
y down), (tx, ty) the image position of the model origin (the face centroid), yaw and pitch in
degrees (see ``shape_model.pose`` for the sign convention), expression in model units
(divide by ``PointDistributionModel.expression_std`` for standard deviations).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from shape_model.errors import ShapeModelError

__all__ = ["Params", "N_GLOBAL"]

N_GLOBAL = 6  # scale, theta, tx, ty, yaw, pitch
_SCALARS = ("scale", "theta", "tx", "ty", "yaw", "pitch")


@dataclass
class Params:
    """Parameters of N shapes; every field has a leading N axis.

    Attributes:
        scale: (N,) pixels per model unit, > 0.
        theta: (N,) in-plane rotation, degrees.
        tx, ty: (N,) translation of the model origin, pixels.
        yaw, pitch: (N,) head pose, degrees.
        expression: (N, E) expression/identity coefficients, model units.
    """

    scale: np.ndarray
    theta: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    expression: np.ndarray

    def __post_init__(self) -> None:
        expr = np.asarray(self.expression, dtype=np.float64)
        if expr.ndim == 1:
            expr = expr[None]
        if expr.ndim != 2:
            raise ShapeModelError(f"Params.expression: expected (N, E), got shape {expr.shape}")
        scalars = {name: np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64)) for name in _SCALARS}
        for name, v in scalars.items():
            if v.ndim != 1:
                raise ShapeModelError(f"Params.{name}: expected (N,), got shape {v.shape}")
        n = max([expr.shape[0]] + [v.shape[0] for v in scalars.values()])
        for name, v in list(scalars.items()) + [("expression", expr)]:
            if v.shape[0] not in (1, n):
                raise ShapeModelError(f"Params.{name}: {v.shape[0]} rows for {n} shapes (give 1 or {n})")
            setattr(self, name, np.broadcast_to(v, (n,) + v.shape[1:]).copy())

    @property
    def n_expression(self) -> int:
        """E, the number of expression coefficients."""
        return int(self.expression.shape[1])

    def __len__(self) -> int:
        return int(self.expression.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> "Params":
        """Select shapes; an integer keeps the N axis (returns N = 1)."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return Params(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to_vector(self) -> np.ndarray:
        """(N, 6 + E) float32 ``[scale, theta, tx, ty, yaw, pitch, expression...]``."""
        glob = np.stack([getattr(self, name) for name in _SCALARS], axis=1)
        return np.concatenate([glob, self.expression], axis=1).astype(np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray, n_expression: int | None = None) -> "Params":
        """Inverse of ``to_vector``; a (6 + E,) vector gives N = 1.

        Raises:
            ShapeModelError: when the length is not 6 + ``n_expression`` (if given).
        """
        v = np.asarray(vector, dtype=np.float64)
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2 or v.shape[1] < N_GLOBAL:
            raise ShapeModelError(f"Params.from_vector: expected (N, 6 + E), got shape {np.shape(vector)}")
        if n_expression is not None and v.shape[1] != N_GLOBAL + n_expression:
            raise ShapeModelError(
                f"Params.from_vector: expected {N_GLOBAL + n_expression} columns (6 + {n_expression}), got {v.shape[1]}"
            )
        return cls(*(v[:, i] for i in range(N_GLOBAL)), expression=v[:, N_GLOBAL:])

    @classmethod
    def concatenate(cls, items: "list[Params]") -> "Params":
        """Stack several Params along N (all with the same E)."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in items]) for f in fields(cls)})
