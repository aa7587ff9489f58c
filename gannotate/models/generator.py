"""The GANnotation generator: image + K landmark heatmaps → the same face with the target landmarks.

Architecture exactly as the original release's inference model (ESanchezLozano/GANnotation
``model.py``; see reference/anchors.md §1.1), so its checkpoint loads strictly:

- ``down_conv``: 7×7 conv (3 + K → w, no bias) + InstanceNorm(affine) + LeakyReLU(0.2), then two
  4×4 stride-2 convs (w → 2w → 4w, no bias), each + InstanceNorm(affine) + LeakyReLU(0.2);
- ``bottleneck``: N residual blocks, ``x + IN(conv2(LReLU(IN(conv1(x)))))`` with biased 3×3 convs
  and non-affine InstanceNorm (no parameters);
- ``feature_layer``: two 4×4 stride-2 transposed convs (4w → 2w → w, no bias) + IN(affine) + LReLU;
- heads: ``colour_layer`` 7×7 conv → 3 channels + tanh, ``mask_layer`` 7×7 conv → 1 channel + sigmoid.

The output blends the input image and the colour head with the mask:
``out = M·I + (1 − M)·C``, computed as ``C + M·(I − C)`` (the release's ``mask*(x − col) + col``;
the two are equal algebraically, the latter matches the release to the last bit).

With K = 66, w = 64 and 6 blocks the network has 8,621,888 parameters (≈8.62 M).

The same family serves as a **refiner** over a geometric render (``extra_channels`` > 0): the
"image" is then the render P of the source at the target landmarks, the extra channels carry its
validity mask V, and the blend ``M·P + (1 − M)·C`` keeps what the render got right while the
colour head repaints what it could not (revealed cheek, seams, holes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gannotate.errors import ShapeError

__all__ = ["GeneratorConfig", "Generator", "ResidualBlock", "group_heatmaps", "part_groups"]


def part_groups(scheme_groups: dict[str, tuple[int, ...]], n_points: int) -> tuple[int, ...]:
    """Group id per landmark from a scheme's named groups (nose and mouth split: bridge/base, outer/inner)."""
    ids = [-1] * n_points
    names: list[str] = []
    for name, idx in scheme_groups.items():
        idx = list(idx)
        halves = {"nose": 4, "mouth": 12}.get(name)  # nose bridge 27-30 | base 31-35; lips outer | inner
        chunks = [idx[:halves], idx[halves:]] if halves and len(idx) > halves else [idx]
        for chunk in chunks:
            names.append(name)
            for i in chunk:
                ids[i] = len(names) - 1
    if min(ids) < 0:
        raise ValueError("every landmark must belong to a group")
    return tuple(ids)


def group_heatmaps(heatmaps: torch.Tensor, groups: tuple[int, ...]) -> torch.Tensor:
    """(B, K, H, W) → (B, G, H, W): the maximum over each group's landmark maps."""
    g = max(groups) + 1
    index = torch.as_tensor(groups, device=heatmaps.device)
    return torch.stack([heatmaps[:, index == i].amax(dim=1) for i in range(g)], dim=1)


@dataclass(frozen=True)
class GeneratorConfig:
    """Generator hyper-parameters.

    Attributes:
        n_points: K, the number of heatmap channels (68 for ibug68, 66 for the original release).
        width: channels after the first conv (w); the bottleneck has 4w.
        n_res: number of residual blocks in the bottleneck.
        image_size: nominal input/output size (any size divisible by 4 runs; saved as metadata).
        extra_channels: conditioning planes besides image and heatmaps (1 for a refiner: the
            render's validity mask; 0 for the paper generator).
        colour_mode: ``absolute`` (the paper) or ``residual``: the colour head adds to the image,
            so an untrained refiner returns its render whatever the mask (identity-initialised:
            the output starts where the render is and can move everywhere, instead of a grey
            colour head that the pixel loss answers by pushing the mask to 1 — the copy basin a
            first trial fell into).
        heatmap_groups: merge the K heatmaps into part groups (max over each group) before the first
            conv. The 7×7 conv over 3 + K channels at full resolution is most of a small refiner's
            cost on a CPU; a refiner gets its geometry from the render, so part maps (eyes, brows,
            nose, mouth, jaw) carry what it needs. None keeps the paper's K channels.
    """

    n_points: int = 68  # K heatmap channels
    width: int = 64  # w: channels of the first conv; 4w in the bottleneck
    n_res: int = 6  # residual blocks
    image_size: int = 128  # nominal H = W
    extra_channels: int = 0  # refiner: + validity mask
    colour_mode: str = "absolute"  # "absolute" (paper: C = tanh(head)) or "residual" (refiner: C = image + tanh(head))
    heatmap_groups: tuple[int, ...] | None = None  # group id per landmark: K maps → max per group

    def __post_init__(self) -> None:
        if self.colour_mode not in ("absolute", "residual"):
            raise ValueError(f"colour_mode must be 'absolute' or 'residual', got {self.colour_mode!r}")
        if self.heatmap_groups is not None:
            groups = tuple(int(g) for g in self.heatmap_groups)
            if len(groups) != self.n_points or sorted(set(groups)) != list(range(max(groups) + 1)):
                raise ValueError(f"heatmap_groups: need one group id per landmark ({self.n_points}), ids 0..G-1")
            object.__setattr__(self, "heatmap_groups", groups)

    @property
    def heatmap_channels(self) -> int:
        """Channels the heatmaps occupy in the input: K, or the number of groups."""
        return self.n_points if self.heatmap_groups is None else max(self.heatmap_groups) + 1

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualBlock(nn.Module):
    """``x + IN(conv2(LReLU(IN(conv1(x)))))``; 3×3 biased convs, non-affine IN (as the release)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn1 = nn.InstanceNorm2d(channels)
        self.prelu = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.bn2 = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.LeakyReLU(0.2, inplace=True)]


class Generator(nn.Module):
    """Landmark-conditioned generator with a colour head and a blending mask.

    Args:
        cfg: a :class:`GeneratorConfig` (default: the paper generator, K = 68).

    Convention: images are float NCHW in the checkpoint's value range (ours: [-1, 1]); heatmaps are
    (B, K, H, W) in [0, 1] in the same pixel frame as the image (see ``gannotate.heatmaps``).
    """

    def __init__(self, cfg: GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        w = cfg.width
        down: list[nn.Module] = [nn.Conv2d(3 + cfg.extra_channels + cfg.heatmap_channels, w, kernel_size=7, padding=3, bias=False)]
        down += _norm_act(w)
        for mult in (1, 2):
            down += [nn.Conv2d(w * mult, w * mult * 2, kernel_size=4, stride=2, padding=1, bias=False)]
            down += _norm_act(w * mult * 2)
        self.down_conv = nn.Sequential(*down)
        self.bottleneck = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(cfg.n_res)])
        up: list[nn.Module] = []
        for mult in (4, 2):
            up += [nn.ConvTranspose2d(w * mult, w * mult // 2, kernel_size=4, stride=2, padding=1, bias=False)]
            up += _norm_act(w * mult // 2)
        self.feature_layer = nn.Sequential(*up)
        self.colour_layer = nn.Sequential(nn.Conv2d(w, 3, kernel_size=7, padding=3, bias=False), nn.Tanh())
        self.mask_layer = nn.Sequential(nn.Conv2d(w, 1, kernel_size=7, padding=3, bias=False), nn.Sigmoid())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) conv weights, zero biases, IN scale 1 / shift 0 (the release's ``init_weights``);
        a residual colour head starts at zero (the refiner starts as its render)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.InstanceNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cfg.colour_mode == "residual":  # identity start: C = image, so Î = image whatever M is
            nn.init.zeros_(self.colour_layer[0].weight)

    def _check(self, image: torch.Tensor, heatmaps: torch.Tensor, extra: torch.Tensor | None) -> None:
        k = self.cfg.n_points
        n_extra = 0 if extra is None else int(extra.shape[1])
        if n_extra != self.cfg.extra_channels:
            raise ShapeError(
                f"this generator takes {self.cfg.extra_channels} extra conditioning channel(s), got {n_extra}"
            )
        if image.ndim != 4 or image.shape[1] != 3:
            raise ShapeError(f"image: expected shape (B, 3, H, W), got {tuple(image.shape)}")
        if heatmaps.ndim != 4 or heatmaps.shape[1] != k:
            raise ShapeError(
                f"heatmaps: expected shape (B, {k}, H, W) for this {k}-point generator, "
                f"got {tuple(heatmaps.shape)}"
            )
        if heatmaps.shape[0] != image.shape[0] or heatmaps.shape[2:] != image.shape[2:]:
            raise ShapeError(
                f"image {tuple(image.shape)} and heatmaps {tuple(heatmaps.shape)} differ in batch or size"
            )
        if image.shape[2] % 4 or image.shape[3] % 4:
            raise ShapeError(f"image size must be divisible by 4, got {tuple(image.shape[2:])}")

    def forward_parts(
        self, image: torch.Tensor, heatmaps: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the network and return every part of the blend.

        Args:
            image: (B, 3, H, W) source image, H and W divisible by 4.
            heatmaps: (B, K, H, W) target-landmark heatmaps in [0, 1].
            extra: (B, E, H, W) conditioning planes (a refiner's validity mask), E = ``extra_channels``.

        Returns:
            ``(out, colour, mask)``: (B, 3, H, W) blended output, (B, 3, H, W) colour head in
            [-1, 1], (B, 1, H, W) mask in [0, 1]; ``out = colour + mask·(image − colour)``.

        Raises:
            ShapeError: on a wrong channel count (e.g. 68 heatmaps for a 66-point model) or size.
        """
        self._check(image, heatmaps, extra)
        maps = heatmaps if self.cfg.heatmap_groups is None else group_heatmaps(heatmaps, self.cfg.heatmap_groups)
        parts = [image] + ([] if extra is None else [extra.to(image.dtype)]) + [maps.to(image.dtype)]
        x = torch.cat(parts, dim=1)  # (B, 3 + E + K, H, W)
        features = self.feature_layer(self.bottleneck(self.down_conv(x)))  # (B, w, H, W)
        colour = self.colour_layer(features)
        if self.cfg.colour_mode == "residual":
            colour = (image + colour).clamp(-1.0, 1.0)
        mask = self.mask_layer(features)
        out = mask * (image - colour) + colour
        return out, colour, mask

    def forward(self, image: torch.Tensor, heatmaps: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) image + (B, K, H, W) heatmaps (+ extra planes) → (B, 3, H, W) image with those landmarks."""
        return self.forward_parts(image, heatmaps, extra)[0]
