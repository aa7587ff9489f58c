"""What a generator file says about itself: the typed metadata written by ``export-generator``.

Why typed: the renderer must crop, normalise and condition exactly as training did. A free-form
dict let the trainer write ``crop_margin`` (photo pixels) while the renderer read
``crop_margin_rel`` (fraction of the landmark box), which nothing wrote, so the training margin was
silently ignored. One dataclass, written and read by both sides, makes such a drift a test failure.

No torch here: the GAN renderer reads metadata before it decides to import the network code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

__all__ = ["GeneratorMeta", "PAPER_MARGIN_REL", "GENERATOR_KINDS"]

PAPER_MARGIN_REL = 0.025
"""Paper-crop margin per side as a fraction of the landmark box side: training adds 10 photo px to
boxes whose median side is ≈400 px on the AFW/Helen photos (10th–90th percentile: 200–1050 px)."""

GENERATOR_KINDS = ("paper", "refine")
"""``paper``: input = source image + target heatmaps (GANnotation). ``refine``: input = a geometric
render of the source at the target + its validity mask + target heatmaps; output = M∘render + (1−M)∘C."""


@dataclass(frozen=True)
class GeneratorMeta:
    """Everything needed to use a generator file, plus how it was made.

    Attributes:
        scheme: landmark scheme of the heatmaps ("ibug68", "ibug66").
        image_size: generator input/output side in pixels.
        heatmap_mode: "exact" (ours) or "legacy" (the original release's 7×7 maps).
        heatmap_sigma: Gaussian σ in generator pixels.
        crop_mode: "paper" (square: landmark box + margin) or "legacy" (the release's crop).
        crop_margin_rel: paper-crop margin per side as a fraction of the landmark box's longer side.
        value_range: input image range; output_range: output image range.
        kind: "paper" or "refine" (see :data:`GENERATOR_KINDS`).
        base_renderer: for ``refine``, the registered geometric renderer whose output it refines.
        info: how it was made (step, data summary, loss networks, probe figures, command, licence).
    """

    scheme: str
    image_size: int = 128
    heatmap_mode: str = "exact"
    heatmap_sigma: float = 1.5
    crop_mode: str = "paper"
    crop_margin_rel: float = PAPER_MARGIN_REL
    value_range: tuple[float, float] = (-1.0, 1.0)
    output_range: tuple[float, float] = (-1.0, 1.0)
    kind: str = "paper"
    base_renderer: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in GENERATOR_KINDS:
            raise ValueError(f"kind must be one of {GENERATOR_KINDS}, got {self.kind!r}")
        if self.kind == "refine" and not self.base_renderer:
            raise ValueError("a 'refine' generator must name its base_renderer")
        if self.crop_mode not in ("paper", "legacy"):
            raise ValueError(f"crop_mode must be 'paper' or 'legacy', got {self.crop_mode!r}")
        if not 0.0 <= float(self.crop_margin_rel) < 1.0:
            raise ValueError(f"crop_margin_rel must be in [0, 1), got {self.crop_margin_rel}")
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        object.__setattr__(self, "output_range", tuple(float(v) for v in self.output_range))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what the file stores)."""
        d = asdict(self)
        d["value_range"], d["output_range"] = list(self.value_range), list(self.output_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GeneratorMeta":
        """Read stored metadata; keys that are not fields (older files) are kept in ``info``.

        Raises:
            ValueError: a missing ``scheme`` or an invalid value (the caller names the file).
        """
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names and k != "info"}
        info = dict(d.get("info") or {})
        info.update({k: v for k, v in d.items() if k not in names})
        if "scheme" not in known:
            raise ValueError("metadata lacks 'scheme'")
        return cls(**known, info=info)
