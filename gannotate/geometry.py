"""2D transforms as small immutable objects, and the crops built from them.

Convention: points are ``(..., K, 2)`` float ``(x, y)`` in 0-based pixel coordinates with pixel
centres at integers (OpenCV's convention too, so ``cv2.warpAffine`` needs no half-pixel fix).
A transform maps *source* pixel coordinates to *destination* pixel coordinates. Images are uint8
HWC RGB numpy arrays.

A crop *is* a transform: ``crop.apply(points)`` and ``crop.warp(image, size)`` use the same
object, and ``crop.inverse().apply(pred)`` maps results back to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from gannotate.errors import GannotateError, check_points
from gannotate.landmarks import Scheme, flip_points

__all__ = [
    "Affine",
    "face_region",
    "REGION_GROW",
    "similarity",
    "fit_similarity",
    "translation",
    "scaling",
    "rotation",
    "landmark_box",
    "square_crop_transform",
    "paper_crop_transform",
    "legacy_crop_transform",
    "Crop",
    "crop_face",
    "hflip_transform",
    "flip",
]


@dataclass(frozen=True)
class Affine:
    """A 2D affine map stored as a (3, 3) homogeneous matrix acting on column vectors (x, y, 1).

    Example:
        >>> t = similarity(scale=2.0, theta_deg=30.0, tx=5.0, ty=-1.0)
        >>> np.allclose(t.inverse().apply(t.apply(p)), p)
        True
    """

    matrix: np.ndarray  # (3, 3) float64

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape == (2, 3):
            m = np.vstack([m, [0.0, 0.0, 1.0]])
        if m.shape != (3, 3):
            raise GannotateError(f"Affine: expected a (3, 3) or (2, 3) matrix, got {m.shape}")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @property
    def matrix_2x3(self) -> np.ndarray:
        """The top two rows, as ``cv2.warpAffine`` wants them (float64, source → destination)."""
        return np.array(self.matrix[:2], dtype=np.float64)

    @property
    def scale(self) -> float:
        """Geometric-mean scale factor (sqrt |det|): how many destination pixels per source pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` points; keeps the input's float dtype (float32 stays float32)."""
        pts = np.asarray(points)
        out = pts.astype(np.float64) @ self.matrix[:2, :2].T + self.matrix[:2, 2]
        return out.astype(pts.dtype if np.issubdtype(pts.dtype, np.floating) else np.float32)

    def inverse(self) -> "Affine":
        """The inverse map (same class)."""
        return Affine(np.linalg.inv(self.matrix))

    def compose_before(self, other: "Affine") -> "Affine":
        """``self`` then ``other``: ``a.compose_before(b).apply(x) == b.apply(a.apply(x))``."""
        return Affine(other.matrix @ self.matrix)

    def coverage(self, photo_shape: Sequence[int], size: int | tuple[int, int]) -> np.ndarray | None:
        """(H, W) float32: how much of each output pixel :meth:`warp` takes from inside a photo of ``photo_shape``.

        1 inside, 0 where the output shows only ``warp``'s border padding, with a one-pixel ramp between; None when
        the whole output lies inside the photo (the common case, so callers skip any fill). The photo spans
        [−0.5, W − 0.5] × [−0.5, H − 0.5]: pixel centres at integers.
        """
        w, h = (size, size) if isinstance(size, (int, np.integer)) else size
        ph, pw = int(photo_shape[0]), int(photo_shape[1])
        inv = self.inverse()
        corners = inv.apply(np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]]))
        if corners.min() >= -0.5 and (corners[:, 0] <= pw - 0.5).all() and (corners[:, 1] <= ph - 0.5).all():
            return None
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        p = inv.apply(np.stack([xs, ys], -1))  # (h, w, 2) each output pixel's centre in the photo
        inside = np.minimum(np.minimum(p[..., 0] + 0.5, pw - 0.5 - p[..., 0]), np.minimum(p[..., 1] + 0.5, ph - 0.5 - p[..., 1]))
        return np.clip(inside * self.scale + 0.5, 0.0, 1.0).astype(np.float32)  # photo pixels → output pixels

    def warp(
        self,
        image: np.ndarray,
        size: int | tuple[int, int],
        border: int = cv2.BORDER_REPLICATE,
        interpolation: int = cv2.INTER_LINEAR,
    ) -> np.ndarray:
        """Resample ``image`` (H, W[, C]) into a ``size`` output (int → square, or (width, height))."""
        w, h = (size, size) if isinstance(size, (int, np.integer)) else size
        if interpolation == cv2.INTER_LINEAR and self.scale < 0.5:
            # strong downscale: warpAffine has no area filter, so blur first to avoid aliasing
            sigma = 0.25 / self.scale
            image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
        return cv2.warpAffine(image, self.matrix_2x3, (int(w), int(h)), flags=interpolation, borderMode=border)


def similarity(scale: float = 1.0, theta_deg: float = 0.0, tx: float = 0.0, ty: float = 0.0) -> Affine:
    """x' = s·R(θ)·x + t, θ counter-clockwise in degrees as seen with y pointing down (i.e. clockwise on screen)."""
    c, s = np.cos(np.deg2rad(theta_deg)), np.sin(np.deg2rad(theta_deg))
    return Affine(np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty], [0, 0, 1.0]]))


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Affine:
    """The similarity (scale, rotation, shift; no reflection) taking ``src`` (K, 2) closest to ``dst`` (K, 2).

    Least squares (Umeyama's closed form): places one landmark set on another by points they share.
    """
    a, b = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(b0.T @ a0)
    d = np.array([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = (u * d) @ vt
    scale = float((s * d).sum() / max((a0 ** 2).sum(), 1e-12))
    m = np.eye(3)
    m[:2, :2] = scale * rot
    m[:2, 2] = mb - scale * rot @ ma
    return Affine(m)


def translation(tx: float, ty: float) -> Affine:
    return similarity(1.0, 0.0, tx, ty)


def scaling(sx: float, sy: float | None = None) -> Affine:
    return Affine(np.diag([sx, sx if sy is None else sy, 1.0]))


def rotation(theta_deg: float, centre: Sequence[float] = (0.0, 0.0)) -> Affine:
    """Rotation by ``theta_deg`` about ``centre`` (x, y)."""
    cx, cy = float(centre[0]), float(centre[1])
    return translation(-cx, -cy).compose_before(similarity(1.0, theta_deg)).compose_before(translation(cx, cy))


def landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box ``(x0, y0, x1, y1)`` of ``(K, 2)`` points."""
    pts = check_points(points)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def square_crop_transform(
    centre: Sequence[float], side: float, size: int
) -> Affine:
    """Map the square of ``side`` source pixels centred at ``centre`` onto a ``size``×``size`` crop.

    Pixel edges map to pixel edges: the source interval [c - side/2, c + side/2] lands on
    [-0.5, size - 0.5], so the crop covers exactly ``size`` whole pixels.
    """
    if side <= 0:
        raise GannotateError(f"crop side must be positive, got {side}")
    s = size / side
    cx, cy = float(centre[0]), float(centre[1])
    return Affine(np.array([[s, 0, (size - 1) / 2 - s * cx], [0, s, (size - 1) / 2 - s * cy], [0, 0, 1.0]]))


def paper_crop_transform(points: np.ndarray, size: int = 128, margin: float = 10.0) -> Affine:
    """The paper's crop: landmark box + ``margin`` px on each side, made square, scaled to ``size``.

    The margin is in source pixels, as in the paper; the square keeps the aspect ratio (the original
    release does not: see :func:`legacy_crop_transform`).
    """
    x0, y0, x1, y1 = landmark_box(points)
    side = max(x1 - x0, y1 - y0) + 2.0 * margin
    return square_crop_transform(((x0 + x1) / 2, (y0 + y1) / 2), side, size)


def legacy_crop_transform(
    points: np.ndarray, image_shape: Sequence[int], size: int = 128, tight: int = 16
) -> Affine:
    """The original GANnotation release's crop (``utils.crop``), for its checkpoint.

    Box + ``int(tight·delta/100)`` px (8 px if delta < 20), delta = mean of box width and height;
    rounded, clipped to the image, and resized to ``size``×``size`` with separate x/y scales.
    """
    x0, y0, x1, y1 = landmark_box(points)
    delta = 0.5 * ((x1 - x0) + (y1 - y0))
    m = 8 if delta < 20 else int(tight * delta / 100)
    h, w = int(image_shape[0]), int(image_shape[1])
    bx0, by0 = max(0, int(round(x0 - m))), max(0, int(round(y0 - m)))
    bx1, by1 = min(w, int(round(x1 + m))), min(h, int(round(y1 + m)))
    sx, sy = size / max(bx1 - bx0, 1), size / max(by1 - by0, 1)
    # cv2.resize of the box maps pixel edges to pixel edges: x' = (x - bx0 + 0.5)·sx - 0.5
    return Affine(np.array([[sx, 0, (0.5 - bx0) * sx - 0.5], [0, sy, (0.5 - by0) * sy - 0.5], [0, 0, 1.0]]))


@dataclass(frozen=True)
class Crop:
    """A cropped face: the ``image`` (size, size, 3) uint8, its ``points`` in the crop, and ``transform`` photo → crop.

    ``coverage`` (size, size) float32 says how much of each pixel came from the photo (None: all of it; see
    :meth:`Affine.coverage`), where a crop extends past the photo's edge.
    """

    image: np.ndarray
    points: np.ndarray
    transform: Affine
    coverage: np.ndarray | None = None

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map points from the crop back to the photo."""
        return self.transform.inverse().apply(points)


def crop_face(
    image: np.ndarray, points: np.ndarray, size: int = 128, margin: float = 10.0, mode: str = "paper"
) -> Crop:
    """Crop a face around its landmarks.

    Args:
        image: (H, W, 3) uint8 RGB.
        points: (K, 2) float, 0-based pixel centres, in ``image``.
        size: output side in pixels.
        margin: paper mode: source pixels added around the landmark box.
        mode: ``"paper"`` (square, margin px) or ``"legacy"`` (original release, anisotropic).
    """
    pts = check_points(points)
    if mode == "paper":
        t = paper_crop_transform(pts, size, margin)
    elif mode == "legacy":
        t = legacy_crop_transform(pts, image.shape, size)
    else:
        raise GannotateError(f"unknown crop mode {mode!r}; choose 'paper' or 'legacy'")
    return Crop(t.warp(image, size), t.apply(pts), t)


def hflip_transform(width: int) -> Affine:
    """x' = (W - 1) - x (points must also be re-ordered by the scheme's flip table)."""
    return Affine(np.array([[-1.0, 0, width - 1.0], [0, 1.0, 0], [0, 0, 1.0]]))


def flip(image: np.ndarray, points: np.ndarray, scheme: Scheme | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its ``(..., K, 2)`` points (re-ordered so left stays left)."""
    return np.ascontiguousarray(image[:, ::-1]), flip_points(points, image.shape[1], scheme)


#: Where face-region metrics look: the landmark box with its side grown by this fraction (about the centre).
REGION_GROW = 0.10


def face_region(points: np.ndarray, shape: tuple[int, int], grow: float = REGION_GROW) -> np.ndarray:
    """(B, K, 2) points → (B, H, W) bool: pixels whose centres lie in the landmark box grown by ``grow`` of its side.

    One definition for every face-region measure (progressive gap, the refiner's probe), so their
    numbers are comparable.
    """
    pts = np.asarray(points, np.float64)
    lo, hi = pts.min(-2), pts.max(-2)  # (B, 2)
    c, half = (lo + hi) / 2.0, (hi - lo) * (1.0 + grow) / 2.0
    ys, xs = np.arange(shape[0]), np.arange(shape[1])
    inx = np.abs(xs[None, :] - c[:, None, 0]) <= half[:, None, 0]  # (B, W)
    iny = np.abs(ys[None, :] - c[:, None, 1]) <= half[:, None, 1]  # (B, H)
    return iny[:, :, None] & inx[:, None, :]  # (B, H, W)
