"""The trained generator behind the renderer protocol: the paper's generator or a refiner.

Why frames matter: training crops every view around its *own* landmarks (paper crop: landmark box
plus a small margin, square; the original release: its anisotropic legacy crop). So the generator
expects the source face in the source's crop, the heatmaps in the *target's* crop, and it draws
its output in the target's crop. ``augment`` hands renderers a looser crop (margin 0.25 of the
box, so turned faces fit), so this renderer maps each face into the generator's frames, runs the
generator, maps the result back with the target frame's inverse, and feathers it over the rest.

A ``refine`` generator (``GeneratorMeta.kind``) first asks its base geometric renderer (profile or
warp) for the render P and validity V in the augment crop, then crops P, V and the heatmaps in the
target's frame; outside the generator's square the output is P itself.

CPU inference runs in bf16 autocast where the CPU has native bf16 (AMX / AVX-512 bf16), which is
several times faster than fp32 there; ``precision="fp32"`` turns it off.

Convention: images (B, H, W, 3) uint8 RGB; points (B, K, 2) float32 (x, y), 0-based pixel centres.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gannotate.errors import CheckpointError, GannotateError
from gannotate.geometry import Affine, landmark_box, legacy_crop_transform, square_crop_transform
from gannotate.landmarks import get_scheme, to_scheme
from gannotate.generator_meta import GeneratorMeta
from gannotate.render.base import GeometricRenderer, Renderer, RendererOption, RenderOutput, check_batch, make_renderer, register_renderer
from shape_model.build import model_sha256

log = logging.getLogger(__name__)

__all__ = ["GANRenderer", "generator_frame", "shipped_generator", "cpu_has_bf16", "SHIPPED_GENERATOR"]

SHIPPED_GENERATOR = Path(__file__).resolve().parent.parent / "assets" / "generator_refine.pt"
_FEATHER_PX = 4  # width of the blend ramp at the edge of the generator's square, in generator pixels


def shipped_generator() -> Path | None:
    """The generator that ships with the package, or None when this build has none."""
    return SHIPPED_GENERATOR if SHIPPED_GENERATOR.is_file() else None


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AMX or AVX-512 bf16), where autocast pays off."""
    try:
        import torch

        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - older torch: no capability probe, stay in fp32
        return False
    if "AMX" in cap.upper():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def generator_frame(points: np.ndarray, image_shape: tuple[int, ...], size: int, meta: GeneratorMeta) -> Affine:
    """Photo → generator-input transform for a face with ``points`` (K, 2), per the file's crop mode."""
    if meta.crop_mode == "legacy":
        return legacy_crop_transform(points, image_shape, size)
    x0, y0, x1, y1 = landmark_box(points)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * float(meta.crop_margin_rel))
    return square_crop_transform(((x0 + x1) / 2, (y0 + y1) / 2), side, size)


def _load(checkpoint: Path, device: str) -> tuple[Any, GeneratorMeta]:
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


class GANRenderer(Renderer):
    """A trained landmark-guided generator (paper or refiner) as a renderer.

    Args:
        checkpoint: a file from ``gannotate export-generator``, the shipped refiner, or the original
            GANnotation release.
        device: torch device string ("cpu", "cuda").
        batch_size: most images per forward pass (memory bound).
        precision: "auto" (bf16 autocast on CPUs with native bf16 and on CUDA, else fp32), "bf16", "fp32".
    """

    name = "gan"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 16, precision: str = "auto"):
        if precision not in ("auto", "bf16", "fp32"):
            raise GannotateError(f"precision must be auto, bf16 or fp32, got {precision!r}")
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.batch_size = int(batch_size)
        self.generator, self.meta = _load(self.checkpoint, device)
        self.generator.eval()
        self.image_size = int(self.meta.image_size)
        self.in_range = self.meta.value_range
        self.out_range = self.meta.output_range
        self._heatmap_kwargs = {"mode": self.meta.heatmap_mode, "sigma": float(self.meta.heatmap_sigma)}
        self._feather = self._feather_mask(self.image_size)
        self.base: GeometricRenderer | None = None
        # the weights are part of what a dataset is: resuming or merging with other weights is refused
        self.dataset_attrs = {"generator_sha256": model_sha256(self.checkpoint)}
        if self.meta.kind == "refine":
            base = make_renderer(str(self.meta.base_renderer))
            if not isinstance(base, GeometricRenderer):
                raise CheckpointError(self.checkpoint, f"base renderer {self.meta.base_renderer!r} is not geometric")
            self.base = base
            self.dataset_attrs = {**self.dataset_attrs, **base.dataset_attrs}
        on_cuda = str(device).startswith("cuda")
        self.bf16 = precision == "bf16" or (precision == "auto" and (on_cuda or cpu_has_bf16()))
        if not on_cuda:
            import torch

            self.generator = self.generator.to(memory_format=torch.channels_last)

    @staticmethod
    def _feather_mask(size: int) -> np.ndarray:
        """(S, S) float32: 1 inside, a linear ramp to 0 over the outer ``_FEATHER_PX`` pixels."""
        ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5) / _FEATHER_PX, 0.0, 1.0)
        return np.minimum(ramp[:, None], ramp[None, :]).astype(np.float32)

    def _autocast(self) -> Any:
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        kind = "cuda" if str(self.device).startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=torch.bfloat16)

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

    def prepare(self, image: np.ndarray, points: np.ndarray) -> None:
        """A refiner's base renderer may refuse a face (profile: no plausible 3D fit); raise as it does."""
        if self.base is not None:
            self.base.prepare(image, points)

    def render_full(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> RenderOutput:
        """Images; a refiner adds its base render's validity mask and residual, so datasets keep them.

        A paper generator knows neither (it invents every pixel), so its datasets have no masks. ``coverage``
        goes to the base render: its mask, which the refiner reads, then calls a fill past the photo unseen.
        """
        out, base = self.render_refined(images, source_points, target_points, coverage)
        if base is None:
            return RenderOutput(out)
        return RenderOutput(out, base.valid, base.residual)

    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """Generate ``images`` (B, H, W, 3) uint8 re-posed from ``source_points`` to ``target_points`` (B, K, 2)."""
        return self.render_refined(images, source_points, target_points)[0]

    def render_refined(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> tuple[np.ndarray, RenderOutput | None]:
        """Images, and for a refiner its base render's :class:`RenderOutput` (mask, residual), else None."""
        import torch

        from gannotate import heatmaps

        imgs, src, tgt = check_batch(images, source_points, target_points)
        b, h, w = imgs.shape[:3]
        size = self.image_size
        base_out = None
        if self.base is not None:
            base_out = self.base.render_full(imgs, src, tgt, coverage)  # the render P and its V, crop frame
            base_imgs, valid = base_out.images, base_out.valid
        frames_s = [generator_frame(p, imgs.shape[1:], size, self.meta) for p in src]
        frames_t = [generator_frame(p, imgs.shape[1:], size, self.meta) for p in tgt]
        tgt_g = np.stack([t.apply(p) for t, p in zip(frames_t, tgt)]).astype(np.float32)  # (B, K, 2)
        if get_scheme(self.meta.scheme).n_points != tgt_g.shape[1]:
            tgt_g = np.ascontiguousarray(to_scheme(tgt_g, self.meta.scheme))  # e.g. 68 → 66 for the original release
        out = np.empty_like(imgs)
        with torch.no_grad(), self._autocast():
            for i in range(0, b, self.batch_size):
                j = min(b, i + self.batch_size)
                hm = heatmaps.render(torch.from_numpy(tgt_g[i:j]).to(self.device), size, **self._heatmap_kwargs)
                if self.base is None:
                    crops = np.stack([frames_s[k].warp(imgs[k], size) for k in range(i, j)])  # (n, S, S, 3)
                    extra = None
                else:
                    crops = np.stack([frames_t[k].warp(base_imgs[k], size) for k in range(i, j)])
                    v = np.stack([frames_t[k].warp(valid[k], size, border=cv2.BORDER_CONSTANT) for k in range(i, j)])
                    extra = torch.from_numpy(v.astype(np.float32) / 255.0)[:, None].to(self.device)
                x = self._to_input(crops)
                if not str(self.device).startswith("cuda"):
                    x, hm = x.contiguous(memory_format=torch.channels_last), hm.contiguous(memory_format=torch.channels_last)
                y = self.generator(x, hm) if extra is None else self.generator(x, hm, extra)
                gen = self._to_uint8(y)  # (n, S, S, 3)
                for k in range(i, j):
                    back = frames_t[k].inverse()
                    under = imgs[k] if self.base is None else base_imgs[k]
                    face = back.warp(gen[k - i], (w, h), border=cv2.BORDER_CONSTANT).astype(np.float32)
                    alpha = back.warp(self._feather, (w, h), border=cv2.BORDER_CONSTANT)[..., None]
                    out[k] = np.clip(alpha * face + (1.0 - alpha) * under, 0, 255).round().astype(np.uint8)
        return out, base_out


def _weights_identity(generator: str | None = None, **_: Any) -> dict[str, str]:
    """``generator_sha256`` of the weights a spec names (as ``dataset_attrs`` records it), without loading them."""
    path = Path(generator) if generator is not None else shipped_generator()
    return {"generator_sha256": model_sha256(path)} if path is not None and path.is_file() else {}


@register_renderer(
    "gan",
    options=(
        RendererOption("generator", "Generator file for --renderer gan [default: the shipped refiner].", kind="path"),
        RendererOption("device", "Torch device for --renderer gan [default: cpu].", kind="device"),
        RendererOption("batch_size", "Most images per forward pass.", kind="int", cli=False),  # the job's --batch-size
        RendererOption("precision", "auto, bf16 or fp32.", cli=False),
    ),
    help="trained generator (default: the shipped refiner over the profile render)",
    identity=_weights_identity,
)
def _make_gan(generator: str | None = None, device: str = "cpu", batch_size: int = 16, precision: str = "auto") -> GANRenderer:
    path = Path(generator) if generator is not None else shipped_generator()
    if path is None:
        raise GannotateError(
            "renderer 'gan' needs a trained generator: this build ships none; "
            "pass --generator PATH (a file from `gannotate export-generator` or `gannotate train export-refiner`) or use another --renderer"
        )
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    return GANRenderer(path, device=device, batch_size=int(batch_size), precision=precision)
