"""The texture lookup of a geometric render in torch: batched and differentiable.

:func:`gannotate.render.base.lookup` samples an image at a :class:`~gannotate.render.base.Geometry`
with OpenCV; the refiner's consistency losses need the same lookup applied to a *generated* image
with gradients flowing back into it, so this module runs it with ``grid_sample``: bilinear, pixel
centres at integers (``align_corners=True`` after mapping pixels to [-1, 1]), border replication
(OpenCV's ``BORDER_REPLICATE``), layers blended by their weights.

What it cannot reuse is a renderer's ``fill`` (a colour computed from the *source* image for
holes): for a generated image the weights are renormalised where they cover the pixel, and the
first layer is read where none does, so holes show stretched texture that the refiner repaints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pixel_to_unit", "lookup_torch"]


def pixel_to_unit(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 2) pixel coordinates (x, y), centres at integers → ``grid_sample``'s [-1, 1] (align_corners=True)."""
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=grid.dtype, device=grid.device)
    return grid * scale - 1.0


def lookup_torch(
    images: torch.Tensor,
    grids: torch.Tensor,
    weights: torch.Tensor,
    renormalise: bool = True,
    fill: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample ``images`` (B, C, H, W) at ``grids`` (B, L, H', W', 2) pixel coords, blended by ``weights`` (B, L, H', W').

    Args:
        renormalise: divide by the weights' sum where it is positive and read layer 0 where it is
            zero (for generated inputs, which have no hole fill); False returns the plain weighted sum.
        fill: (B, C, H', W') colour for the weight the layers leave (``Geometry.fill``, in the
            images' value range); given, the result is Σ w·sample + (1 − Σ w)·fill, as ``lookup``.

    Returns:
        (B, C, H', W') in the dtype of ``images``.
    """
    b, c, h, w = images.shape
    n_layers, ho, wo = grids.shape[1:4]
    unit = pixel_to_unit(grids.to(images.dtype), h, w).reshape(b, n_layers * ho, wo, 2)
    samples = F.grid_sample(images, unit, mode="bilinear", padding_mode="border", align_corners=True)
    samples = samples.reshape(b, c, n_layers, ho, wo)
    wts = weights.to(images.dtype)
    out = (samples * wts[:, None]).sum(2)
    if fill is not None:
        return out + (1.0 - wts.sum(1, keepdim=True)) * fill.to(images.dtype)
    if not renormalise:
        return out
    total = wts.sum(1, keepdim=True)  # (B, 1, H', W')
    covered = total > 1e-3
    return torch.where(covered, out / total.clamp_min(1e-3), samples[:, :, 0])
