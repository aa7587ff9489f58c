"""Differentiable augmentation for the discriminator's inputs (DiffAugment, Zhao et al. 2020).

With a few thousand training images a discriminator memorises the real set and its gradients stop
meaning "realistic"; augmenting *both* real and fake inputs of D the same way, differentiably,
keeps it honest (2–4× better FID with 1,000 images in the paper). Our D is conditioned on the
target heatmaps, so a translation moves image and heatmaps together; colour and cutout touch only
the image.

Convention: images (B, 3, H, W) in [-1, 1]; heatmaps (B, K, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["diff_augment"]


def _colour(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]
    rand = lambda: torch.rand(b, 1, 1, 1, generator=g, device=x.device, dtype=x.dtype)  # noqa: E731
    x = x + (rand() - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand() * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand() + 0.5) + mean  # contrast


def _translate(tensors: list[torch.Tensor], ratio: float, g: torch.Generator | None) -> list[torch.Tensor]:
    """Shift every tensor of the list by the same per-sample integer offset, zero-padded."""
    b, _, h, w = tensors[0].shape
    dev = tensors[0].device
    sx = torch.randint(-int(w * ratio), int(w * ratio) + 1, (b,), generator=g, device=dev)
    sy = torch.randint(-int(h * ratio), int(h * ratio) + 1, (b,), generator=g, device=dev)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=tensors[0].dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * sx.to(theta.dtype) / w
    theta[:, 1, 2] = -2.0 * sy.to(theta.dtype) / h
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return [F.grid_sample(t, grid.to(t.dtype), mode="nearest", padding_mode="zeros", align_corners=False) for t in tensors]


def _cutout(x: torch.Tensor, ratio: float, g: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=g, device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=g, device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = ((ys - cy).abs() < ch // 2 + 1) & ((xs - cx).abs() < cw // 2 + 1)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def diff_augment(
    images: torch.Tensor,
    heatmaps: torch.Tensor,
    seed: int | None = None,
    translation: float = 0.125,
    cutout: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour, translation (image and heatmaps together) and cutout, each drawn per sample.

    Args:
        seed: draws from a generator seeded with it (call with the same seed for the real and the
            fake batch only if you want them augmented identically; the usual is different seeds).
    """
    g = None
    if seed is not None:
        g = torch.Generator(device=images.device)
        g.manual_seed(int(seed))
    x = _colour(images, g)
    x, h = _translate([x, heatmaps], translation, g)
    return _cutout(x, cutout, g), h
