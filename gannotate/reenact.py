"""Reenactment: drive one annotated face with the landmark track of a 300-VW-layout clip.

Retargeting goes through the shape model. The face keeps its identity and its similarity (scale,
in-plane rotation, translation fitted on the face); each driver frame gives its pose (yaw, pitch)
and expression:

* ``mode="relative"`` (default): expression = face's + (driver frame's − driver's first kept
  frame's). Why the default: the PDM's 33 modes mix expression with identity (face shape), so
  copying the driver's coefficients would also copy the driver's face shape; the change from the
  driver's first frame carries the motion without the driver's identity.
* ``mode="absolute"``: expression = the driver frame's coefficients (the issue's literal recipe).

Each target is rendered from the face crop itself (never from the previous output frame) with any
registered renderer; :func:`run_reenact` writes the video (OpenCV, ``mp4v``), one ``.pts`` per
output frame in ``<video folder>/frames/NNNNNN.pts`` (1-based frame numbers like 300-VW, 1-based
coordinates like 300W) and ``<video>.json`` (settings, output → driver frame map, skipped frames,
jitter). A driver frame whose ``.pts`` is missing or unreadable is skipped with a note.

Temporal jitter (:func:`temporal_jitter`), for the output landmarks and for the driver's:

* ``step``: mean over consecutive frames of the mean per-landmark displacement |p_t − p_{t−1}|
  (motion + noise);
* ``jitter``: mean per-landmark |p_t − (p_{t−1} + p_{t+1}) / 2| over consecutive triples, the
  second difference: it removes motion at constant velocity (most of the driver's real motion at
  video rates) and keeps frame-to-frame noise.

Both are given in pixels and in % of the mean outer-eye-corner distance, so output and driver compare.

Convention: images (H, W, 3) uint8 RGB; points (K, 2) float32 (x, y), 0-based pixel centres.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gannotate.errors import DatasetError, GannotateError, ImageFileError, InputFileError, LandmarkFileError
from gannotate.render import Renderer, RendererSpec, make_renderer
from gannotate.run.render_pool import single_blas_thread

__all__ = [
    "ReenactConfig",
    "DriverTrack",
    "ReenactResult",
    "read_driver",
    "read_face",
    "retarget",
    "temporal_jitter",
    "run_reenact",
    "RETARGET_MODES",
]

log = logging.getLogger(__name__)

RETARGET_MODES = ("relative", "absolute")


@dataclass(frozen=True)
class ReenactConfig:
    """Settings of one reenactment (saved into ``<video>.json``)."""

    face: Path                                   # image with a same-stem .pts / .ljson
    driver: Path                                 # clip folder: vid.mp4 (or vid.avi) + annot/NNNNNN.pts
    out: Path                                    # output video (.mp4)
    renderer: RendererSpec = field(default_factory=RendererSpec)
    mode: str = "relative"                       # expression retargeting, see the module docstring
    size: int = 256                              # output frame side (the face crop, as augment crops)
    margin: float | None = None                  # crop margin, fraction of the box side; None → augment's
    batch_size: int = 16                         # frames per renderer call
    fps: float | None = None                     # None → the driver video's rate (25 if it has none)
    model_path: Path | None = None               # shape model; None → the shipped one
    command: str = ""

    def __post_init__(self) -> None:
        if self.mode not in RETARGET_MODES:
            raise GannotateError(f"reenact: mode must be one of {list(RETARGET_MODES)}, got {self.mode!r}")
        if self.size < 16 or self.batch_size < 1:
            raise GannotateError("reenact: size must be at least 16 px and batch size at least 1")


@dataclass(frozen=True)
class DriverTrack:
    """The usable landmark track of a driver clip. T = frames kept.

    Attributes:
        numbers: (T,) int 1-based driver frame numbers, increasing.
        points: (T, K, 2) float32 driver landmarks (driver video pixels).
        skipped: ``(frame number, reason)`` for every frame without usable landmarks.
        fps: the video's frame rate (25 when the container reports none).
    """

    numbers: np.ndarray
    points: np.ndarray
    skipped: list[tuple[int, str]]
    fps: float


@dataclass(frozen=True)
class ReenactResult:
    """What :func:`run_reenact` wrote: ``n_frames`` video frames and as many .pts, ``skipped`` driver frames."""

    video: Path
    frames_dir: Path
    report: Path
    n_frames: int
    skipped: list[tuple[int, str]]
    jitter: dict
    driver_jitter: dict

    def summary(self) -> str:
        j = self.jitter
        return (f"{self.n_frames} frames -> {self.video} (landmarks in {self.frames_dir}); "
                f"{len(self.skipped)} driver frame(s) skipped; output jitter {j['jitter_px']:.2f} px "
                f"({j['jitter_iod_pct']:.2f}% IOD), step {j['step_px']:.2f} px; driver jitter "
                f"{self.driver_jitter['jitter_iod_pct']:.2f}% IOD")


def read_face(path: str | Path, n_points: int = 68) -> tuple[np.ndarray, np.ndarray]:
    """An image and its same-stem landmarks (``.pts`` or ``.ljson``); ``path`` may name either file.

    Raises:
        ImageFileError, LandmarkFileError: missing or unreadable files (``InputFileError``).
    """
    from gannotate.io.folders import check_inside
    from gannotate.io.images import IMAGE_EXTENSIONS, read_image
    from gannotate.io.landmarks_io import LANDMARK_EXTENSIONS, read_landmarks

    p = Path(path)
    if p.suffix.lower() in LANDMARK_EXTENSIONS:
        images = [p.with_suffix(e) for e in IMAGE_EXTENSIONS] + [p.with_suffix(e.upper()) for e in IMAGE_EXTENSIONS]
        found = next((q for q in images if q.is_file()), None)
        if found is None:
            raise ImageFileError(p, f"no same-stem image ({', '.join(IMAGE_EXTENSIONS)}) beside this landmark file")
        p, marks = found, p
    else:
        marks = next((p.with_suffix(e) for e in LANDMARK_EXTENSIONS if p.with_suffix(e).is_file()), None)
        if marks is None:
            raise LandmarkFileError(p, f"no same-stem landmark file ({', '.join(LANDMARK_EXTENSIONS)}) beside the image")
    points = read_landmarks(marks, n_points)
    image = read_image(p)
    check_inside(points, image.shape[0], image.shape[1], marks)
    return image, points


def read_driver(clip_dir: str | Path, n_points: int = 68) -> DriverTrack:
    """The landmark track of one 300-VW-layout clip folder (``vid.mp4`` + ``annot/NNNNNN.pts``).

    Video frames 1..N (N = the container's frame count) without a ``.pts``, and ``.pts`` files that
    cannot be read (wrong count, NaN, far outside the frame), are skipped with a reason.

    Raises:
        DatasetError: not a clip folder (or a folder of several clips), or no usable frame at all.
        ImageFileError: the video cannot be opened.
    """
    from gannotate.io.folders import check_inside
    from gannotate.io.pts import read_pts
    from gannotate.io.videos import discover_clips

    root = Path(clip_dir)
    clips = discover_clips(root)
    if len(clips) != 1:
        raise DatasetError(root, "expected one clip folder (vid.mp4 + annot/NNNNNN.pts)"
                                 + (f", found {len(clips)} clips: name one of them" if clips else ", found none"))
    clip = clips[0]
    cap = cv2.VideoCapture(str(clip.video_path))
    if not cap.isOpened():
        raise ImageFileError(clip.video_path, "cannot open video")
    try:
        n_video = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()
    annotated = clip.frame_numbers()
    last = max([n_video] + annotated)
    have = set(annotated)
    numbers, points, skipped = [], [], []
    for number in range(1, last + 1):
        if number not in have:
            skipped.append((number, f"no annotation {clip.pts_path(number).name}"))
            continue
        try:
            pts = read_pts(clip.pts_path(number), n_points)
            if h > 0 and w > 0:
                check_inside(pts, h, w, clip.pts_path(number))
        except InputFileError as e:
            skipped.append((number, e.reason if e.line is None else f"line {e.line}: {e.reason}"))
            continue
        numbers.append(number), points.append(pts)
    for number, reason in skipped:
        log.warning("%s: frame %d skipped: %s", clip.video_path, number, reason)
    if not numbers:
        raise DatasetError(root, f"no usable annotated frame ({len(skipped)} skipped)")
    return DriverTrack(np.asarray(numbers, np.int64), np.stack(points).astype(np.float32), skipped, fps)


def retarget(model: Any, face_points: np.ndarray, driver_points: np.ndarray, mode: str = "relative") -> np.ndarray:
    """Target landmarks: the face's identity and similarity with each driver frame's pose and expression.

    Args:
        model: a ``PointDistributionModel``.
        face_points: (K, 2) the face's landmarks (in the frame the output is drawn in).
        driver_points: (T, K, 2) the driver's landmarks (any frame: only pose and expression are used).
        mode: ``"relative"`` or ``"absolute"`` expression (module docstring).

    Returns:
        (T, K, 2) float32 in the face's frame.
    """
    if mode not in RETARGET_MODES:
        raise GannotateError(f"retarget: mode must be one of {list(RETARGET_MODES)}, got {mode!r}")
    face = model.fit(np.asarray(face_points, np.float64)[None])
    drv = model.fit(np.asarray(driver_points, np.float64))
    expr = drv.expression if mode == "absolute" else face.expression + (drv.expression - drv.expression[:1])
    t = len(drv)
    tgt = replace(face[np.zeros(t, dtype=np.int64)], yaw=drv.yaw, pitch=drv.pitch, expression=expr)
    return np.asarray(model.instances(tgt), np.float32)


def temporal_jitter(points: np.ndarray, numbers: np.ndarray | None = None) -> dict:
    """Frame-to-frame motion of a landmark track: ``step`` and second-difference ``jitter`` (module docstring).

    Only runs of consecutive frame ``numbers`` count (a skipped frame breaks the run).

    Args:
        points: (T, K, 2) track; numbers: (T,) frame numbers (default 1..T).

    Returns:
        ``{"step_px", "jitter_px", "step_iod_pct", "jitter_iod_pct", "n_steps", "n_triples"}`` (NaN where no pair/triple).
    """
    from gannotate.landmarks import interocular_distance

    p = np.asarray(points, np.float64)
    num = np.arange(len(p)) if numbers is None else np.asarray(numbers)
    step_ok = np.diff(num) == 1  # (T-1,)
    steps = np.linalg.norm(p[1:] - p[:-1], axis=-1).mean(-1)[step_ok]
    tri_ok = step_ok[:-1] & step_ok[1:]  # (T-2,)
    second = np.linalg.norm(p[1:-1] - (p[:-2] + p[2:]) / 2.0, axis=-1).mean(-1)[tri_ok] if len(p) > 2 else np.zeros(0)
    iod = float(np.mean(interocular_distance(p.astype(np.float32)))) if p.shape[-2] in (66, 68) else float("nan")
    step = float(steps.mean()) if steps.size else float("nan")
    jit = float(second.mean()) if second.size else float("nan")
    return {"step_px": step, "jitter_px": jit, "step_iod_pct": 100.0 * step / iod, "jitter_iod_pct": 100.0 * jit / iod,
            "n_steps": int(steps.size), "n_triples": int(second.size)}


def _clear_frames(folder: Path) -> None:
    """Remove ``NNNNNN.pts`` left by an earlier run (a shorter run must not leave extra frames behind)."""
    for p in folder.glob("*.pts"):
        if p.stem.isdigit() and len(p.stem) == 6:
            p.unlink()


def run_reenact(cfg: ReenactConfig, renderer: Renderer | None = None, model: Any = None) -> ReenactResult:
    """Drive ``cfg.face`` with ``cfg.driver``'s landmarks and write the video, per-frame .pts and a report.

    Raises:
        InputFileError: the face or its landmarks cannot be read.
        DatasetError: bad driver clip; output not writable; OpenCV cannot write the video.
    """
    from gannotate.augment import DEFAULT_MARGIN, check_writable, crop_for_augment, load_shape_model
    from gannotate.io.atomic import atomic_write_text
    from gannotate.io.pts import write_pts

    out = Path(cfg.out)
    check_writable(out.parent)
    model = model if model is not None else load_shape_model(cfg.model_path)[0]
    renderer = renderer or make_renderer(cfg.renderer)
    image, points = read_face(cfg.face, model.n_points)
    crop = crop_for_augment(image, points, cfg.size, DEFAULT_MARGIN if cfg.margin is None else cfg.margin)
    track = read_driver(cfg.driver, model.n_points)
    targets = retarget(model, crop.points, track.points, cfg.mode)  # (T, K, 2) in the crop
    renderer.prepare(crop.image, crop.points)

    frames_dir = out.parent / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    _clear_frames(frames_dir)
    fps = float(cfg.fps or track.fps)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (cfg.size, cfg.size))
    if not writer.isOpened():
        raise DatasetError(out, "OpenCV cannot write this video (needs the mp4v encoder and a .mp4/.avi name)")
    try:
        with single_blas_thread():
            for a in range(0, len(targets), cfg.batch_size):
                tgt = targets[a:a + cfg.batch_size]
                b = len(tgt)
                frames = renderer.render(np.repeat(crop.image[None], b, 0), np.repeat(crop.points[None], b, 0), tgt)
                for i, (frame, pts) in enumerate(zip(frames, tgt), start=a + 1):
                    writer.write(np.ascontiguousarray(frame[..., ::-1]))  # RGB → BGR for OpenCV
                    write_pts(frames_dir / f"{i:06d}.pts", pts)
    finally:
        writer.release()
    jitter = temporal_jitter(targets, track.numbers)
    driver_jitter = temporal_jitter(track.points, track.numbers)
    report = out.with_suffix(".json")
    doc = {
        "command": cfg.command,
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "renderer": renderer.name,
        "fps": fps,
        "n_frames": int(len(targets)),
        "frames": "frames/NNNNNN.pts: output frame n (1-based), 300W .pts (1-based pixels) in the output frame",
        "driver_frame_of_output": {str(i + 1): int(n) for i, n in enumerate(track.numbers)},
        "skipped": [{"driver_frame": n, "reason": r} for n, r in track.skipped],
        "jitter": jitter,
        "driver_jitter": driver_jitter,
    }
    atomic_write_text(report, json.dumps(doc, indent=2) + "\n")
    return ReenactResult(out, frames_dir, report, int(len(targets)), list(track.skipped), jitter, driver_jitter)
