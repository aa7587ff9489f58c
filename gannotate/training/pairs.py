"""Training pairs for the refiner: a geometric render with large-pose damage, and the real image it should be.

Two kinds, both from data the project already has (no multi-view captures):

* **render-and-back** (from single photos, Rotate-and-Render's idea): render the photo I (landmarks s)
  to a pose s_r 20–60° of yaw away — the texture that turns out of view is really lost — then
  render that back to s. The refiner sees the doubly rendered face and must give back I. Drawing
  the turn *away* from 20° up matters: a first trial drew yaw in ±35°, most pairs were nearly
  lossless, and the refiner learned to copy its input.
* **clip pairs** (talking-head clips, 300-VW layout): frames a and b of one person; render a to b's
  landmarks, the target is frame b. Both are cropped with b's crop, so the background lines up.

For the paper's consistency losses every pair also stores a third shape s_n with the base render of
X at s_n, and two geometries (:class:`gannotate.render.base.Geometry` grids, float16) that the
trainer applies *differentiably* to generated images: s_n → s_y (triple consistency: G(G(X, s_n), s_y)
against G(X, s_y)) and s_y → s_x (self-consistency: G(G(X, s_y), s_x) against X).

File layout (``pairs.h5``; N pairs, S = size, L = geometry layers of the renderer)::

    x, y, p, p_n         (N, S, S, 3) uint8   source X, real target Y, render of X at s_y, at s_n
    v, v_n               (N, S, S)    uint8   their validity masks (255 = seen by the source; what X shows from
                                              past its photo's edge, the crop's fill, counts as unseen)
    v_ny, v_yx           (N, S, S)    uint8   validity of the two stored geometries
    pts_x, pts_y, pts_n  (N, K, 2)    float32 crop pixels, 0-based
    grid_ny, grid_yx     (N, L, S, S, 2) float16 source pixel positions; w_ny, w_yx (N, L, S, S) float16
    kind (N,) uint8 (0 render-and-back, 1 clip); yaw_change (N,) float32 degrees; group (N,) int32
    attrs: renderer, size, margin, seed, counts, sources, licence of the face model where one was used
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import h5py
import numpy as np

from gannotate.augment import crop_for_augment
from gannotate.errors import DatasetError, GannotateError
from gannotate.fill import fill_past_photo, stack_coverage
from gannotate.geometry import Affine
from gannotate.io.atomic import atomic_path
from gannotate.plan import PlanConfig, plan_face
from gannotate.render.base import GeometricRenderer, carried_coverage, make_renderer, render_full_covered

__all__ = [
    "PairConfig",
    "PhotoCrop",
    "PairSet",
    "build_pairs",
    "photo_pairs",
    "clip_pairs",
    "load_photo_crops",
    "load_clip_frames",
    "save_sources",
    "load_sources",
    "KIND_RENDER_BACK",
    "KIND_CLIP",
]

log = logging.getLogger(__name__)

KIND_RENDER_BACK, KIND_CLIP = 0, 1
_BATCH = 32


@dataclass(frozen=True)
class PairConfig:
    """How pairs are drawn.

    Attributes:
        size, margin: the crop, as ``augment`` makes it (square, landmark box + margin·side per side).
        away: |yaw change| range in degrees of the render-and-back detour.
        per_photo: render-and-back pairs per photo (each with its own detour).
        frames_per_clip, pairs_per_clip: frames decoded per clip, pairs drawn among them.
        n_yaw: yaw range of the third shape s_n for photos (clips use a third frame).
        expression: expression jitter (model std) of the shapes drawn for photos.
        renderer: the geometric renderer that makes the damage (and that the refiner will refine).
        turn: how the photos' targets turn the head (``gannotate.plan.TURNS``): the refiner should learn on the
            targets ``augment`` will give it.
        seed: everything random follows from it.
    """

    size: int = 128
    margin: float = 0.25
    away: tuple[float, float] = (20.0, 60.0)
    per_photo: int = 4
    frames_per_clip: int = 60
    pairs_per_clip: int = 150
    n_yaw: tuple[float, float] = (-45.0, 45.0)
    expression: float = 0.3
    max_yaw: float = 75.0
    renderer: str = "warp"
    turn: str = "shape-model"
    seed: int = 0


class PhotoCrop(NamedTuple):
    """One photo as ``augment`` crops it: ``coverage`` (S, S) float32 how much of each pixel the photo covers
    (None: all; see :class:`gannotate.geometry.Crop`). Plain ``(key, image, points)`` tuples are read as None."""

    key: str
    image: np.ndarray
    points: np.ndarray
    coverage: np.ndarray | None = None


def _photo_crops(photos: Iterable[Any]) -> list[PhotoCrop]:
    return [PhotoCrop(*p) for p in photos]


@dataclass
class _Pair:
    """One pair before rendering; ``coverage_x`` / ``coverage_y``: how much of X / Y their photo covers (None: all).

    A render-and-back pair's X is made from Y at render time, so only ``coverage_y`` is known here.
    """

    x: np.ndarray
    y: np.ndarray
    pts_x: np.ndarray
    pts_y: np.ndarray
    pts_n: np.ndarray
    kind: int
    yaw_change: float
    group: int
    coverage_x: np.ndarray | None = None
    coverage_y: np.ndarray | None = None


def _target(model: Any, pts: np.ndarray, key: str, yaw: float, cfg: PairConfig) -> np.ndarray:
    """One PDM target at ``yaw`` for a face with ``pts`` (the plan's machinery, so targets look like augment's)."""
    plan_cfg = PlanConfig(n=1, yaw=(yaw, yaw), expression=cfg.expression, seed=cfg.seed, turn=cfg.turn)
    plan = plan_face(model, pts, key, plan_cfg)
    return plan.points[0]


def photo_pairs(faces: Iterable[PhotoCrop | tuple[str, np.ndarray, np.ndarray]], model: Any, cfg: PairConfig,
                group0: int = 0) -> Iterator[_Pair]:
    """Render-and-back pairs: for each (key, crop, points), ``per_photo`` detours 20–60° away.

    The detour's sign is random but never past ``max_yaw``: a face already turned right turns
    further right only while it stays plottable, else back through frontal.
    """
    rng = np.random.default_rng([cfg.seed, 1])
    for g, (key, image, pts, coverage) in enumerate(_photo_crops(faces)):
        yaw0 = float(np.asarray(model.fit(pts[None].astype(np.float64)).yaw).reshape(-1)[0])
        for k in range(cfg.per_photo):
            d = rng.uniform(*cfg.away) * rng.choice([-1.0, 1.0])
            if abs(yaw0 + d) > cfg.max_yaw:
                d = -d
            s_r = _target(model, pts, f"{key}#r{k}", yaw0 + d, cfg)
            s_n = _target(model, pts, f"{key}#n{k}", rng.uniform(*cfg.n_yaw), cfg)
            yield _Pair(image, image, s_r, pts, s_n, KIND_RENDER_BACK, float(d), group0 + g, coverage_y=coverage)


def clip_pairs(clips: Iterable[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], cfg: PairConfig, group0: int = 0) -> Iterator[_Pair]:
    """Pairs (a → b, third frame n) within each clip, cropped with b's crop so the background lines up.

    Args:
        clips: (name, [(frame image, points), ...] in frame order) per clip.
    """
    rng = np.random.default_rng([cfg.seed, 2])
    for g, (_name, frames) in enumerate(clips):
        n = len(frames)
        if n < 3:
            continue
        made = 0
        for _ in range(cfg.pairs_per_clip * 4):
            if made >= cfg.pairs_per_clip:
                break
            a, b, c = rng.choice(n, 3, replace=False)  # frames are spread over the clip: distinct = far apart
            img_b, pts_b = frames[b]
            crop = crop_for_augment(img_b, pts_b, cfg.size, cfg.margin)
            t: Affine = crop.transform
            x, cov_x = fill_past_photo(t.warp(frames[a][0], cfg.size), t, frames[a][0].shape)  # padded as y is
            yield _Pair(x, crop.image, t.apply(frames[a][1]), crop.points, t.apply(frames[c][1]), KIND_CLIP, 0.0, group0 + g,
                        coverage_x=cov_x, coverage_y=crop.coverage)
            made += 1


def load_photo_crops(pairs: Iterable[tuple[Path, Path]], size: int, margin: float) -> list[PhotoCrop]:
    """A :class:`PhotoCrop` per ``(landmark file, image file)`` pair; unreadable faces are logged and skipped."""
    from gannotate.io.folders import FaceRef, load_face

    out = []
    for lm, img in pairs:
        try:
            image, pts = load_face(FaceRef(key=str(lm), image_path=Path(img), landmark_path=Path(lm)), 68)
            crop = crop_for_augment(image, pts, size, margin, min_face=40.0)
        except GannotateError as e:
            log.warning("%s: skipped (%s)", lm, e)
            continue
        out.append(PhotoCrop(str(lm), crop.image, crop.points, crop.coverage))
    return out


def load_clip_frames(root: str | Path, frames_per_clip: int) -> list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Up to ``frames_per_clip`` plausibly annotated frames per clip, spread evenly over each clip.

    Clip landmarks are automatic; frames whose shape is far from the clip's (``plausible_frames``)
    are dropped before drawing, as the GANnotation training cache does.
    """
    from gannotate.io.videos import discover_clips, iter_frames
    from gannotate.training.cache import plausible_frames

    clips = []
    for clip in discover_clips(root):
        numbers = clip.frame_numbers()
        pick = sorted({numbers[int(i)] for i in np.linspace(0, len(numbers) - 1, min(frames_per_clip, len(numbers)))})
        try:
            frames = [(img, pts) for _, img, pts in iter_frames(clip, pick, 68)]
        except GannotateError as e:
            log.warning("%s: skipped (%s)", clip.name, e)
            continue
        if len(frames) >= 3:
            ok = plausible_frames(np.stack([p for _, p in frames]))
            frames = [f for f, keep in zip(frames, ok) if keep]
        clips.append((clip.name, frames))
    return clips


def save_sources(path: str | Path, photos: list[PhotoCrop | tuple[str, np.ndarray, np.ndarray]],
                 clips: list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]], quality: int = 92) -> Path:
    """Photo crops and clip frames as JPEG bytes in one ``.npz``: what a remote machine needs to build pairs.

    Why: a GPU slot gets only the repository tree (tens of MiB), not ../shared; 400 photo crops
    and 18 × 60 clip frames pack into about 20 MiB this way, and pairs are rebuilt there. The coverage of
    the few crops that reach past their photo travels beside them (uint8).
    """
    import cv2

    def jpg(img: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise GannotateError("JPEG encoding failed")
        return buf.reshape(-1)

    photos = _photo_crops(photos)
    cut = [i for i, p in enumerate(photos) if p.coverage is not None]
    size = photos[0].image.shape[:2] if photos else (0, 0)
    arrays: dict[str, Any] = {
        "photo_keys": np.array([p.key for p in photos]),
        "photo_points": np.stack([p.points for p in photos]).astype(np.float32),
        "photo_jpeg": np.array([jpg(p.image) for p in photos], dtype=object),
        "photo_coverage_rows": np.array(cut, np.int64),
        "photo_coverage": np.array([np.round(photos[i].coverage * 255) for i in cut], np.uint8).reshape(-1, *size),
        "clip_names": np.array([n for n, _ in clips]),
        "clip_lengths": np.array([len(f) for _, f in clips], np.int64),
        "clip_points": np.concatenate([np.stack([p for _, p in f]) for _, f in clips]).astype(np.float32),
        "clip_jpeg": np.array([jpg(i) for _, f in clips for i, _ in f], dtype=object),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def load_sources(path: str | Path) -> tuple[list[PhotoCrop], list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]]]:
    """Read :func:`save_sources` output back as ``(photos, clips)`` (object arrays: loaded with ``allow_pickle``,
    a file this project wrote itself; one written before coverage travelled gives crops without it)."""
    import cv2

    def img(buf: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(cv2.imdecode(np.asarray(buf, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    with np.load(path, allow_pickle=True) as z:
        coverage = {}
        if "photo_coverage_rows" in z:
            coverage = {int(r): c.astype(np.float32) / 255.0 for r, c in zip(z["photo_coverage_rows"], z["photo_coverage"])}
        photos = [PhotoCrop(str(k), img(j), p, coverage.get(i))
                  for i, (k, j, p) in enumerate(zip(z["photo_keys"], z["photo_jpeg"], z["photo_points"]))]
        clips, start = [], 0
        for name, n in zip(z["clip_names"], z["clip_lengths"]):
            frames = [(img(z["clip_jpeg"][i]), z["clip_points"][i]) for i in range(start, start + int(n))]
            clips.append((str(name), frames))
            start += int(n)
    return photos, clips


def _render_chunk(renderer_name: str, chunk: list[_Pair]) -> tuple[list[dict[str, np.ndarray]], int]:
    """Render one chunk in a worker process (the renderer is built there)."""
    return _render_chunk_with(make_renderer(renderer_name), chunk)


def _render_chunk_with(renderer: Any, chunk: list[_Pair]) -> tuple[list[dict[str, np.ndarray]], int]:
    """Render one chunk; pairs the renderer refuses are skipped and counted."""
    try:
        return [_render_batch(renderer, chunk)], 0
    except GannotateError:  # a shape the renderer refuses (e.g. an implausible 3D fit): pair by pair
        out, skipped = [], 0
        for one in chunk:
            try:
                out.append(_render_batch(renderer, [one]))
            except GannotateError as e:
                skipped += 1
                log.debug("pair skipped: %s", e)
        return out, skipped


class _Writer:
    """Appends rendered pairs to ``pairs.h5`` in batches (the file is written to a temp path, then moved)."""

    def __init__(self, f: h5py.File, size: int, k: int, n_layers: int):
        s = size
        self.f = f
        spec = {
            "x": ((s, s, 3), "u1"), "y": ((s, s, 3), "u1"), "p": ((s, s, 3), "u1"), "p_n": ((s, s, 3), "u1"),
            "v": ((s, s), "u1"), "v_n": ((s, s), "u1"), "v_ny": ((s, s), "u1"), "v_yx": ((s, s), "u1"),
            "pts_x": ((k, 2), "f4"), "pts_y": ((k, 2), "f4"), "pts_n": ((k, 2), "f4"),
            "grid_ny": ((n_layers, s, s, 2), "f2"), "grid_yx": ((n_layers, s, s, 2), "f2"),
            "w_ny": ((n_layers, s, s), "f2"), "w_yx": ((n_layers, s, s), "f2"),
            "kind": ((), "u1"), "yaw_change": ((), "f4"), "group": ((), "i4"),
        }
        for name, (shape, dt) in spec.items():
            f.create_dataset(name, (0, *shape), dt, maxshape=(None, *shape), chunks=(1, *shape) if shape else (1024,))
        self.n = 0

    def append(self, cols: dict[str, np.ndarray]) -> None:
        m = len(cols["x"])
        for name, arr in cols.items():
            ds = self.f[name]
            ds.resize(self.n + m, axis=0)
            ds[self.n:self.n + m] = arr
        self.n += m


def _render_batch(renderer: GeometricRenderer, batch: list[_Pair]) -> dict[str, np.ndarray]:
    """Every render and geometry one batch of pairs needs."""
    x = np.stack([p.x for p in batch])
    y = np.stack([p.y for p in batch])
    sx, sy, sn = (np.stack([getattr(p, k) for p in batch]).astype(np.float32) for k in ("pts_x", "pts_y", "pts_n"))
    kind = np.array([p.kind for p in batch], np.uint8)
    back = kind == KIND_RENDER_BACK
    cov_x = stack_coverage([p.coverage_x for p in batch], x.shape[1:3])
    if back.any():  # the detour: the photo rendered away to s_r becomes the source X
        x = x.copy()
        x[back] = renderer.render(y[back], sy[back], sx[back])
        cov_y = stack_coverage([p.coverage_y for p in batch], y.shape[1:3])
        if cov_y is not None and (cov_y[back] < 1.0).any():  # X then shows Y's fill where the detour moved it
            cov_x = np.ones_like(cov_y) if cov_x is None else cov_x
            cov_x[back] = carried_coverage(renderer.geometry(y[back], sy[back], sx[back]), cov_y[back])
    main = render_full_covered(renderer, x, sx, sy, cov_x)
    to_n = render_full_covered(renderer, x, sx, sn, cov_x)
    g_ny = renderer.geometry(to_n.images, sn, sy)
    g_yx = renderer.geometry(y, sy, sx)
    return {
        "x": x, "y": y, "p": main.images, "p_n": to_n.images, "v": main.valid, "v_n": to_n.valid,
        "pts_x": sx, "pts_y": sy, "pts_n": sn,
        "grid_ny": g_ny.grids.astype(np.float16), "grid_yx": g_yx.grids.astype(np.float16),
        "w_ny": g_ny.weights.astype(np.float16), "w_yx": g_yx.weights.astype(np.float16),
        "v_ny": np.round(g_ny.valid * 255).astype(np.uint8), "v_yx": np.round(g_yx.valid * 255).astype(np.uint8),
        "kind": kind, "yaw_change": np.array([p.yaw_change for p in batch], np.float32),
        "group": np.array([p.group for p in batch], np.int32),
    }


def build_pairs(
    out: str | Path,
    photos: list[PhotoCrop | tuple[str, np.ndarray, np.ndarray]],
    clips: list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]],
    cfg: PairConfig = PairConfig(),
    model: Any = None,
    renderer: GeometricRenderer | None = None,
    n_jobs: int = 1,
) -> Path:
    """Render every pair once and write ``out`` (layout in the module docstring).

    Args:
        photos: :class:`PhotoCrop` (or ``(key, crop (S, S, 3) uint8, points (K, 2))``) — cropped as augment crops.
        clips: (name, [(frame, points), ...]) — whole frames; cropped here with each target's crop.
        model: the shape model (default: the shipped one).
        renderer: default ``make_renderer(cfg.renderer)``; must be geometric.
        n_jobs: processes rendering chunks in parallel (joblib); the file is identical for any value.

    Raises:
        GannotateError: a renderer without geometry, or no pairs at all.
    """
    from shape_model.build import load_model

    out = Path(out)
    model = model if model is not None else load_model(None)
    renderer = renderer if renderer is not None else make_renderer(cfg.renderer)
    if not isinstance(renderer, GeometricRenderer):
        raise GannotateError(f"renderer {renderer.name!r} has no geometry: pairs need a geometric renderer")
    kept = []
    for photo in _photo_crops(photos):
        try:
            renderer.prepare(photo.image, photo.points)
            kept.append(photo)
        except GannotateError as e:
            log.warning("%s: skipped (%s)", photo.key, e)
    photos = kept
    pairs = list(photo_pairs(photos, model, cfg)) + list(clip_pairs(clips, cfg, group0=len(photos)))
    if not pairs:
        raise GannotateError("no training pairs: give photos and/or clips")
    k = pairs[0].pts_y.shape[0]
    probe = _render_batch(renderer, pairs[:1])
    n_layers = probe["grid_ny"].shape[1]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            w = _Writer(f, cfg.size, k, n_layers)
            skipped = 0
            chunks = [pairs[i:i + _BATCH] for i in range(0, len(pairs), _BATCH)]
            if n_jobs > 1:
                from joblib import Parallel, delayed

                results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_render_chunk)(renderer.name, c) for c in chunks)
            else:
                results = (_render_chunk_with(renderer, c) for c in chunks)
            for i, (parts, n_skip) in enumerate(results):
                for cols in parts:
                    w.append(cols)
                skipped += n_skip
                log.info("pairs: %d / %d (%d skipped)", min((i + 1) * _BATCH, len(pairs)), len(pairs), skipped)
            f.attrs.update({
                "renderer": renderer.name, "config": json.dumps(asdict(cfg)),
                "n_render_back": int((f["kind"][:] == KIND_RENDER_BACK).sum()),
                "n_clip": int((f["kind"][:] == KIND_CLIP).sum()),
                "n_photos": len(photos), "n_clips": len(clips), "n_written": w.n, "n_skipped": skipped,
                **{k2: str(v) for k2, v in renderer.dataset_attrs.items()},
            })
    return out


@dataclass
class PairSet:
    """A ``pairs.h5`` read fully into memory (it is built to fit: a few thousand 128² pairs)."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "PairSet":
        path = Path(path)
        if not path.is_file():
            raise DatasetError(path, "pairs file not found (build it with `gannotate train pairs --shared ../shared/data`)")
        try:
            with h5py.File(path, "r") as f:
                arrays = {k: f[k][:] for k in f.keys()}
                attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        except OSError as e:
            raise DatasetError(path, f"not a readable pairs file ({e})") from None
        return cls(arrays, attrs)

    def __len__(self) -> int:
        return len(self.arrays["x"])

    def split(self, val_groups: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) indices, whole groups (photos, clips) on one side only."""
        in_val = np.isin(self.arrays["group"], sorted(val_groups))
        return np.flatnonzero(~in_val), np.flatnonzero(in_val)
