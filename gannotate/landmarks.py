"""Landmark schemes as data: point counts, mirror permutations, named groups, metrics.

Convention: points are float32 ``(..., K, 2)`` arrays, ``(x, y)``, 0-based pixel coordinates with
pixel centres at integers. A horizontally mirrored image of width ``W`` has ``x' = (W - 1) - x``
and its points re-ordered by ``scheme.flip_index``.

``IBUG68`` (300W) is written once; ``IBUG66`` (the original GANnotation release) is derived from
it by dropping the two inner-mouth corners (0-based 60 and 64).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from gannotate.errors import GannotateError, SchemeError

__all__ = [
    "Scheme",
    "IBUG68",
    "IBUG66",
    "SCHEMES",
    "get_scheme",
    "scheme_for",
    "to_scheme",
    "flip_points",
    "interocular_distance",
    "nme",
    "nme_box_inner",
    "INNER_51",
]


def _r(a: int, b: int) -> list[int]:
    """Inclusive range, counting down when ``a > b`` (the tables read like the literature's)."""
    step = 1 if b >= a else -1
    return list(range(a, b + step, step))


@dataclass(frozen=True)
class Scheme:
    """A landmark scheme.

    Attributes:
        name: registry key, e.g. ``"ibug68"``.
        n_points: K.
        flip_index: (K,) permutation; ``mirrored[i] = points[flip_index[i]]`` after x' = W-1-x.
        groups: named index arrays (jaw, brows, nose, eyes, mouth, ...).
        outer_eye_corners: the two indices whose distance normalises NME (300W / HRNet).
        edges: polylines (index sequences) used to draw the face; closed ones repeat the first index.
    """

    name: str
    n_points: int
    flip_index: tuple[int, ...]
    groups: Mapping[str, tuple[int, ...]]
    outer_eye_corners: tuple[int, int]
    edges: tuple[tuple[int, ...], ...] = field(default=())
    parent: str | None = None  # the scheme this one was derived from by :meth:`without`
    keep: tuple[int, ...] = ()  # indices into ``parent`` that give this scheme's points

    def __post_init__(self) -> None:
        if sorted(self.flip_index) != list(range(self.n_points)):
            raise ValueError(f"{self.name}: flip_index is not a permutation of 0..{self.n_points - 1}")

    @property
    def flip_array(self) -> np.ndarray:
        """The flip permutation as an int64 array, for fancy indexing."""
        return np.asarray(self.flip_index, dtype=np.int64)

    def without(self, drop: Sequence[int], name: str) -> "Scheme":
        """Derive a scheme that omits the points ``drop`` (indices into this scheme)."""
        drop_set = set(int(i) for i in drop)
        keep = [i for i in range(self.n_points) if i not in drop_set]
        new_of_old = {old: new for new, old in enumerate(keep)}
        flip = []
        for old in keep:
            partner = self.flip_index[old]
            if partner in drop_set:
                raise ValueError(f"dropping {sorted(drop_set)} breaks the mirror pair of point {old}")
            flip.append(new_of_old[partner])
        groups = {g: tuple(new_of_old[i] for i in idx if i in new_of_old) for g, idx in self.groups.items()}
        edges = tuple(tuple(new_of_old[i] for i in e if i in new_of_old) for e in self.edges)
        corners = (new_of_old[self.outer_eye_corners[0]], new_of_old[self.outer_eye_corners[1]])
        return Scheme(name, len(keep), tuple(flip), groups, corners, edges, parent=self.name, keep=tuple(keep))

    def keep_index_from(self, parent: "Scheme") -> np.ndarray:
        """Indices into ``parent`` that give this scheme's points (itself, or a scheme it derives from)."""
        if self.name == parent.name:
            return np.arange(parent.n_points)
        if self.parent == parent.name:
            return np.asarray(self.keep)
        raise SchemeError(parent.name, self.name)


_FLIP68 = (
    _r(16, 0) + _r(26, 17) + [27, 28, 29, 30] + _r(35, 31)
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + _r(54, 48) + _r(59, 55) + _r(64, 60) + _r(67, 65)
)

IBUG68 = Scheme(
    name="ibug68",
    n_points=68,
    flip_index=tuple(_FLIP68),
    groups={
        "jaw": tuple(_r(0, 16)),
        "right_brow": tuple(_r(17, 21)),   # subject's right = image left in a frontal photo
        "left_brow": tuple(_r(22, 26)),
        "nose": tuple(_r(27, 35)),
        "right_eye": tuple(_r(36, 41)),
        "left_eye": tuple(_r(42, 47)),
        "mouth": tuple(_r(48, 67)),
    },
    outer_eye_corners=(36, 45),
    edges=(
        tuple(_r(0, 16)), tuple(_r(17, 21)), tuple(_r(22, 26)), tuple(_r(27, 30)), tuple(_r(31, 35)),
        tuple(_r(36, 41)) + (36,), tuple(_r(42, 47)) + (42,),
        tuple(_r(48, 59)) + (48,), tuple(_r(60, 67)) + (60,),
    ),
)

IBUG66 = IBUG68.without([60, 64], name="ibug66")

SCHEMES: dict[str, Scheme] = {s.name: s for s in (IBUG68, IBUG66)}


def get_scheme(name: str | Scheme) -> Scheme:
    """Look a scheme up by name; unknown names fail with the list of valid ones."""
    if isinstance(name, Scheme):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise GannotateError(f"unknown landmark scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


def scheme_for(n_points: int) -> Scheme:
    """The scheme with ``n_points`` points (68 → ibug68, 66 → ibug66)."""
    for s in SCHEMES.values():
        if s.n_points == n_points:
            return s
    raise SchemeError("/".join(str(s.n_points) for s in SCHEMES.values()), n_points)


def to_scheme(points: np.ndarray, target: str | Scheme) -> np.ndarray:
    """Convert ``(..., K, 2)`` points to ``target`` (68 → 66 drops the inner-mouth corners).

    Raises:
        SchemeError: when no conversion exists (66 → 68 would have to invent two points).
    """
    pts = np.asarray(points)
    dst = get_scheme(target)
    src = scheme_for(pts.shape[-2])
    if src.name == dst.name:
        return pts
    return pts[..., dst.keep_index_from(src), :]


def flip_points(points: np.ndarray, width: int, scheme: str | Scheme | None = None) -> np.ndarray:
    """Mirror ``(..., K, 2)`` points for an image of ``width`` pixels: x' = (W - 1) - x, then re-order.

    Example:
        >>> p2 = flip_points(flip_points(p, 640), 640)   # involution: p2 == p
    """
    pts = np.asarray(points)
    sch = scheme_for(pts.shape[-2]) if scheme is None else get_scheme(scheme)
    if pts.shape[-2] != sch.n_points:
        raise SchemeError(sch.n_points, pts.shape[-2])
    out = pts[..., sch.flip_array, :].copy()
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def interocular_distance(points: np.ndarray) -> np.ndarray:
    """Outer-eye-corner distance of ``(..., K, 2)`` points → ``(...)`` (the 300W/HRNet normaliser)."""
    pts = np.asarray(points, dtype=np.float64)
    a, b = scheme_for(pts.shape[-2]).outer_eye_corners
    return np.linalg.norm(pts[..., a, :] - pts[..., b, :], axis=-1)


INNER_51 = np.arange(17, 68)
"""0-based indices of the 51 inner points of ibug68 (brows, nose, eyes, mouth): no jaw contour."""


def nme_box_inner(pred: np.ndarray, truth: np.ndarray, percent: bool = True) -> np.ndarray:
    """The large-pose NME of the field: mean error of the 51 inner points / √(w·h) of the truth's box.

    Why: the outer-eye distance shrinks towards zero as a head turns to profile, so inter-ocular NME
    explodes there; the box of all 68 truth points does not. The jaw contour is left out because its
    convention (visible silhouette vs the 3D jaw) differs between annotation sets at large yaw
    (3DDFA's AFLW2000-3D practice).

    Args:
        pred, truth: ``(..., 68, 2)``.

    Returns:
        ``(...)`` float64.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or t.shape[-2] != 68:
        raise SchemeError(68, t.shape[-2] if t.ndim >= 2 else t.shape)
    wh = t.max(axis=-2) - t.min(axis=-2)  # (..., 2)
    norm = np.sqrt(np.maximum(wh[..., 0] * wh[..., 1], 1e-12))
    err = np.linalg.norm(p[..., INNER_51, :] - t[..., INNER_51, :], axis=-1).mean(axis=-1) / norm
    return err * (100.0 if percent else 1.0)


def nme(pred: np.ndarray, truth: np.ndarray, percent: bool = True) -> np.ndarray:
    """Normalised mean error per face: mean point-to-point error / outer-eye distance of ``truth``.

    Args:
        pred, truth: ``(..., K, 2)`` with the same K.
        percent: multiply by 100 (the field reports NME in percent).

    Returns:
        ``(...)`` float64.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise SchemeError(t.shape[-2] if t.ndim >= 2 else t.shape, p.shape[-2] if p.ndim >= 2 else p.shape)
    err = np.linalg.norm(p - t, axis=-1).mean(axis=-1) / np.maximum(interocular_distance(t), 1e-9)
    return err * (100.0 if percent else 1.0)
