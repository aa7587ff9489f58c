"""The trained generator behind the :class:`gannotate.render.Renderer` interface.

Why frames matter: training crops every view around its *own* landmarks (paper crop: landmark box
plus a small margin, square; the original release: its anisotropic legacy crop). So the generator
expects the source face in the source's crop, the heatmaps in the *target's* crop, and it draws
its output in the target's crop. ``augment`` hands renderers a looser crop (margin 0.25 of the
box, so turned faces fit), so this renderer maps each face into the generator's frames, runs the
generator, maps the result back with the target frame's inverse, and feathers it over the source
outside the generator's square.

Convention: images (B, H, W, 3) uint8 RGB; points (B, K, 2) float32 (x, y), 0-based pixel centres
in those images. The checkpoint's meta gives ``value_range`` (input), ``output_range``,
``heatmap_mode``/``heatmap_sigma``, ``crop_mode`` and ``scheme``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gannotate.errors import CheckpointError
from gannotate.geometry import Affine, landmark_box, legacy_crop_transform, square_crop_transform
from gannotate.landmarks import get_scheme, to_scheme

log = logging.getLogger(__name__)

__all__ = ["GANRenderer", "PAPER_MARGIN_REL", "generator_frame"]

PAPER_MARGIN_REL = 0.025
"""Paper-crop margin per side as a fraction of the landmark box side, for renderers that do not know
the photo's resolution: training adds 10 photo px to boxes whose median side is ≈400 px on the
AFW/Helen photos (10th–90th percentile: 200–1050 px)."""

_FEATHER_PX = 4  # width of the blend ramp at the edge of the generator's square, in generator pixels


def generator_frame(points: np.ndarray, image_shape: tuple[int, ...], size: int, meta: dict[str, Any]) -> Affine:
    """Photo → generator-input transform for a face with ``points`` (K, 2), per the checkpoint's crop mode."""
    if meta.get("crop_mode") == "legacy":
        return legacy_crop_transform(points, image_shape, size)
    x0, y0, x1, y1 = landmark_box(points)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * float(meta.get("crop_margin_rel", PAPER_MARGIN_REL)))
    return square_crop_transform(((x0 + x1) / 2, (y0 + y1) / 2), side, size)


def _load(checkpoint: Path, device: str) -> tuple[Any, dict]:
    """Our generator format, or else the original release (``{'state_dict'}`` / bare, ``module.``)."""
    from gannotate.models.checkpoint import load_generator, load_original_gannotation

    try:
        return load_generator(checkpoint, device)
    except CheckpointError as ours:
        if "not a gannotate generator checkpoint" not in ours.reason:
            raise
        try:
            generator, meta = load_original_gannotation(checkpoint, device)
        except CheckpointError as theirs:
            raise CheckpointError(checkpoint, f"{ours.reason}; as the original release: {theirs.reason}") from None
        log.warning("%s: original GANnotation release (CC BY-NC 4.0, 66 points, legacy crop)", checkpoint)
        return generator, meta


class GANRenderer:
    """A trained landmark-guided generator as a renderer.

    Args:
        checkpoint: a file from ``gannotate export-generator`` or the original GANnotation release.
        device: torch device string ("cpu", "cuda").
        batch_size: most images per forward pass (memory bound).
    """

    name = "gan"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 16):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.batch_size = int(batch_size)
        self.generator, self.meta = _load(self.checkpoint, device)
        self.generator.eval()
        self.image_size = int(self.meta.get("image_size", 128))
        self.in_range = tuple(float(v) for v in self.meta.get("value_range", (-1.0, 1.0)))
        self.out_range = tuple(float(v) for v in self.meta.get("output_range", (-1.0, 1.0)))
        sigma = self.meta.get("heatmap_sigma")
        self._heatmap_kwargs = {"mode": self.meta.get("heatmap_mode", "exact")}
        if sigma is not None:
            self._heatmap_kwargs["sigma"] = float(sigma)
        self._feather = self._feather_mask(self.image_size)

    @staticmethod
    def _feather_mask(size: int) -> np.ndarray:
        """(S, S) float32: 1 inside, a linear ramp to 0 over the outer ``_FEATHER_PX`` pixels."""
        ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5) / _FEATHER_PX, 0.0, 1.0)
        return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)

    def _to_input(self, crops: np.ndarray) -> Any:
        """(B, S, S, 3) uint8 → (B, 3, S, S) float in the generator's input range."""
        import torch

        lo, hi = self.in_range
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, S, S)
        return x * ((hi - lo) / 255.0) + lo

    def _to_uint8(self, y: Any) -> np.ndarray:
        """(B, 3, S, S) generator output → (B, S, S, 3) uint8."""
        lo, hi = self.out_range
        y = ((y.float() - lo) * (255.0 / (hi - lo))).clamp(0, 255).round().byte()
        return y.permute(0, 2, 3, 1).cpu().numpy()

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """Generate ``images`` (B, H, W, 3) uint8 re-posed from ``source_points`` to ``target_points`` (B, K, 2)."""
        import torch

        from gannotate import heatmaps
        from gannotate.render import _check_batch

        imgs, src, tgt = _check_batch(images, source_points, target_points)
        b, h, w = imgs.shape[:3]
        size = self.image_size
        frames_s = [generator_frame(p, imgs.shape[1:], size, self.meta) for p in src]
        frames_t = [generator_frame(p, imgs.shape[1:], size, self.meta) for p in tgt]
        tgt_g = np.stack([t.apply(p) for t, p in zip(frames_t, tgt)]).astype(np.float32)  # (B, K, 2)
        scheme = self.meta.get("scheme")
        if scheme is not None and get_scheme(scheme).n_points != tgt_g.shape[1]:
            tgt_g = np.ascontiguousarray(to_scheme(tgt_g, scheme))  # e.g. 68 → 66 for the original release
        out = np.empty_like(imgs)
        with torch.no_grad():
            for i in range(0, b, self.batch_size):
                j = min(b, i + self.batch_size)
                crops = np.stack([frames_s[k].warp(imgs[k], size) for k in range(i, j)])  # (n, S, S, 3)
                hm = heatmaps.render(torch.from_numpy(tgt_g[i:j]).to(self.device), size, **self._heatmap_kwargs)
                gen = self._to_uint8(self.generator(self._to_input(crops), hm))  # (n, S, S, 3)
                for k in range(i, j):
                    back = frames_t[k].inverse()
                    face = back.warp(gen[k - i], (w, h), border=cv2.BORDER_CONSTANT).astype(np.float32)
                    alpha = back.warp(self._feather, (w, h), border=cv2.BORDER_CONSTANT)[..., None]
                    out[k] = np.clip(alpha * face + (1.0 - alpha) * imgs[k], 0, 255).round().astype(np.uint8)
        return out
