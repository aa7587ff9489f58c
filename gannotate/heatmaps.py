"""Batched Gaussian landmark heatmaps: one broadcast for all B×K points, on the points' device.

Two renderers share one entry point, :func:`render`:

- ``"exact"`` (default, for new training): a unit-peak isotropic Gaussian centred exactly on the
  sub-pixel point, ``h(u, v) = exp(-((u - x)² + (v - y)²) / (2σ²))``. The default
  ``σ = DEFAULT_SIGMA = 2.5`` px gives a full width at half maximum of ``2.355·σ ≈ 5.9`` px; this is
  our reading of the paper's "≈6 px" Gaussian (we take 6 px as the FWHM, not as σ).
- ``"legacy"``: the original GANnotation release's ``utils.draw_gaussian(map, pt, sigma=1)``,
  reproduced bit-for-bit (to float rounding) so its checkpoint sees the maps it was trained on: points
  rounded to 2 decimals, a 7×7 window of a Gaussian with σ = 0.25·7 = 1.75 px and amplitude 1, its
  peak at ``(⌊x⌋ − 1, ⌊y⌋ − 1)`` (the 1-based Torch/FAN convention applied to 0-based points), the
  release's border clipping quirks included, values clipped to [0, 1].

Both Gaussians are separable, so a map is the outer product of a row profile (B, K, W) and a column
profile (B, K, H): one multiplication per output pixel and no loop over points.

Convention: points are ``(x, y)`` in heatmap pixel coordinates, 0-based, pixel centres at integers
(the same frame as the generator's input crop when the heatmap size equals the image size).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from gannotate.errors import ShapeError

__all__ = ["DEFAULT_SIGMA", "LEGACY_SIGMA", "HEATMAP_MODES", "render", "HeatmapRenderer"]

DEFAULT_SIGMA = 2.5
"""σ (px) of the exact renderer; FWHM = 2·sqrt(2·ln 2)·σ ≈ 5.9 px, the paper's "≈6 px"."""

LEGACY_SIGMA = 1.75
"""Effective σ (px) of the original release's 7×7 kernel (0.25 × window size 7)."""

HEATMAP_MODES = ("exact", "legacy")

_TAIL = 1.1e-19  # ≈ √(float32's smallest normal): a product of two kept values is never denormal
_TAIL_LOG = math.log(_TAIL)
_LEGACY_HALF = 3  # the release calls draw_gaussian(sigma=1): window 6·1 + 1 = 7, half-width 3
_LEGACY_WINDOW = 2 * _LEGACY_HALF + 1

Mode = Literal["exact", "legacy"]


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _exact_profiles(coord: torch.Tensor, n: int, sigma: float) -> torch.Tensor:
    """(B, K) centres → (B, K, n) values of exp(-(u - c)² / 2σ²) at pixel centres u = 0..n-1."""
    grid = torch.arange(n, device=coord.device, dtype=coord.dtype)
    d = grid - coord[..., None]  # (B, K, n)
    # In place (no (B, K, n) temporaries). Tails are clamped and then zeroed below √(min normal):
    # exp into denormals, and products of two tails, run on the CPU's slow path (≈2× the whole render).
    g = d.square_().mul_(-0.5 / (sigma * sigma)).clamp_min_(_TAIL_LOG).exp_()
    if g.requires_grad:  # exp's backward needs its output untouched
        return torch.nn.functional.threshold(g, _TAIL, 0.0)
    return torch.nn.functional.threshold_(g, _TAIL, 0.0)


def _legacy_profiles(coord: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """The release's 1-D kernel placement along one axis: (B, K) coordinates → (B, K, n).

    Mirrors ``draw_gaussian``'s index arithmetic: ``ul = ⌊c − 3⌋``, ``br = ⌊c + 3⌋``; kernel tap
    ``k`` (0..6) lands on pixel ``k + offset`` with ``offset = ul − 1`` when ``ul ≥ 1``, ``0`` when
    ``ul = 0`` and ``ul + 1`` when ``ul < 0`` (the release's border handling), only on pixels
    ``< min(br, n)``; nothing is drawn when ``ul > n`` or ``br < 1`` (checked per axis, and the
    caller multiplies the two axes, so either axis out of range empties the map).
    """
    c = torch.round(coord * 100.0) / 100.0  # Python round(pt, 2); half-to-even like numpy
    ul = torch.floor(c - _LEGACY_HALF)
    br = torch.floor(c + _LEGACY_HALF)
    offset = torch.where(ul >= 1, ul - 1, torch.where(ul == 0, torch.zeros_like(ul), ul + 1))
    grid = torch.arange(n, device=coord.device, dtype=coord.dtype)
    k = grid - offset[..., None]  # (B, K, n) kernel tap index under each pixel
    valid = (k >= 0) & (k < _LEGACY_WINDOW) & (grid < br[..., None])
    valid &= ((ul <= n) & (br >= 1))[..., None]
    # _gaussian(7): exp(-((k + 1 - 4) / (0.25 · 7))² / 2), computed in float64 then stored float32.
    taps = torch.exp(-0.5 * ((k - _LEGACY_HALF) / LEGACY_SIGMA) ** 2)
    return torch.where(valid, taps, torch.zeros_like(taps)).to(dtype)


def _outer(py: torch.Tensor, px: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """(B, K, H) ⊗ (B, K, W) → (B, K, H, W): one broadcast multiplication, into ``out`` if given."""
    if out is None:
        return py[..., :, None] * px[..., None, :]
    return torch.mul(py[..., :, None], px[..., None, :], out=out)


def render(
    points: torch.Tensor,
    size: int | tuple[int, int],
    sigma: float | None = None,
    mode: Mode = "exact",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render one Gaussian heatmap per landmark.

    Args:
        points: (B, K, 2) float tensor, ``(x, y)`` heatmap pixel coordinates, 0-based, pixel
            centres at integers. Points outside the map simply give (partly) empty maps.
        size: ``S`` for S×S maps or ``(H, W)``.
        sigma: Gaussian σ in pixels. ``None`` → :data:`DEFAULT_SIGMA` (exact) or
            :data:`LEGACY_SIGMA` (legacy, which accepts no other value).
        mode: ``"exact"`` (sub-pixel centre, unit peak) or ``"legacy"`` (original release).
        out: optional preallocated (B, K, H, W) tensor to write into (e.g. the heatmap slice of the
            generator's input, or a buffer reused across batches). On CPU most of the cost of a
            fresh 64×68×128² result is the kernel faulting in ~285 MB of new pages, so reusing a
            buffer is about twice as fast (benchmarks/heatmaps.py).

    Returns:
        (B, K, H, W) tensor in [0, 1] on ``points.device`` with ``points.dtype`` (``out`` if given).

    Raises:
        ShapeError: when ``points`` is not (B, K, 2).
        ValueError: unknown mode, non-positive σ, a legacy σ other than 1.75, or an ``out`` of the
            wrong shape.

    Example:
        >>> render(torch.tensor([[[10.25, 20.5]]]), 64).shape
        torch.Size([1, 1, 64, 64])
    """
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ShapeError(f"points: expected shape (B, K, 2), got {tuple(points.shape)}")
    if mode not in HEATMAP_MODES:
        raise ValueError(f"heatmap mode must be one of {HEATMAP_MODES}, got {mode!r}")
    h, w = _size_hw(size)
    dtype = points.dtype if points.is_floating_point() else torch.float32
    if out is not None:
        expected = (points.shape[0], points.shape[1], h, w)
        if tuple(out.shape) != expected:
            raise ValueError(f"out: expected shape {expected}, got {tuple(out.shape)}")
        dtype = out.dtype
    if mode == "legacy":
        if sigma is not None and not math.isclose(sigma, LEGACY_SIGMA):
            raise ValueError(f"legacy heatmaps have σ = {LEGACY_SIGMA} px by construction, got {sigma}")
        # Index arithmetic in float64 (as the release's numpy) where the device supports it.
        work = points.to(torch.float32 if points.device.type == "mps" else torch.float64)
        px = _legacy_profiles(work[..., 0], w, dtype)  # (B, K, W)
        py = _legacy_profiles(work[..., 1], h, dtype)  # (B, K, H)
        return _outer(py, px, out).clamp_(0.0, 1.0)  # (B, K, H, W)
    sigma = DEFAULT_SIGMA if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    # Coordinates need ≥ float32 (bf16 resolves only 0.5 px at x = 100); the maps take ``dtype``.
    pts = points.to(torch.promote_types(points.dtype, torch.float32))
    px = _exact_profiles(pts[..., 0], w, sigma).to(dtype)  # (B, K, W)
    py = _exact_profiles(pts[..., 1], h, sigma).to(dtype)  # (B, K, H)
    return _outer(py, px, out)  # (B, K, H, W)


class HeatmapRenderer(nn.Module):
    """Holds heatmap settings; ``forward(points (B, K, 2)) -> (B, K, H, W)`` calls :func:`render`.

    Args:
        size: map size ``S`` or ``(H, W)``.
        sigma: σ in pixels (``None``: the mode's default).
        mode: ``"exact"`` or ``"legacy"``.
    """

    def __init__(self, size: int | tuple[int, int], sigma: float | None = None, mode: Mode = "exact"):
        super().__init__()
        if mode not in HEATMAP_MODES:
            raise ValueError(f"heatmap mode must be one of {HEATMAP_MODES}, got {mode!r}")
        self.size = _size_hw(size)
        self.mode = mode
        self.sigma = (DEFAULT_SIGMA if mode == "exact" else LEGACY_SIGMA) if sigma is None else float(sigma)
        render(torch.zeros(0, 0, 2), (1, 1), self.sigma, mode)  # fail now on a bad σ, not at first use

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return render(points, self.size, self.sigma, self.mode)

    def extra_repr(self) -> str:
        return f"size={self.size}, sigma={self.sigma}, mode={self.mode!r}"
