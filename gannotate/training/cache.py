"""A compact training cache: every face the trainer may use, cropped, JPEG-encoded, in one HDF5.

Why: training must not decode videos or full-size photos every step, and a GPU machine receives
only the repository tree (64 MiB), not ../shared. ``gannotate train prepare`` writes this file once;
the trainer reads nothing else.

Layout (format 1)::

    jpeg        (N,) vlen uint8   JPEG bytes of a (S, S, 3) RGB crop, S = attrs['store_size']
    landmarks   (N, K, 2) float32 points in the crop: (x, y), 0-based pixel centres
    scale       (N,) float32      crop pixels per source pixel (turns the paper's margin in source px
                                  into crop px)
    group       (N,) int32        index into ``groups`` (a clip, or the photo's own key)
    frame       (N,) int32        1-based frame number in its clip; 0 for a photo
    paired      (N,) bool         True: a video frame (paired triplets); False: a photo (unpaired)
    groups      (M,) utf-8        clip names / photo keys
    attrs: format, scheme, coord_origin, store_size, context, jpeg_quality, n_paired, n_unpaired,
           n_clips, n_photos, n_rejected_frames, sources, command, version

A stored crop is *wider* than the paper's crop (``context`` × the box + margin) so that the
rotations of the unpaired views find real pixels, not a replicated border.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import h5py
import numpy as np

from gannotate import __version__
from gannotate.errors import DatasetError, check_points
from gannotate.io.atomic import atomic_path
from gannotate.geometry import Affine, landmark_box, square_crop_transform

__all__ = ["CACHE_FORMAT", "CacheWriter", "TrainingCache", "context_crop", "plausible_frames", "prepare_cache"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def context_crop(
    image: np.ndarray, points: np.ndarray, store_size: int = 160, margin: float = 10.0, context: float = 1.25
) -> tuple[np.ndarray, np.ndarray, Affine]:
    """Crop the square (landmark box + ``margin`` source px) × ``context`` around a face.

    Args:
        image: (H, W, 3) uint8 RGB.
        points: (K, 2) float32, 0-based pixel centres in ``image``.

    Returns:
        ``(crop (S, S, 3) uint8, points (K, 2) float32 in the crop, transform photo → crop)``.
    """
    pts = check_points(points)
    x0, y0, x1, y1 = landmark_box(pts)
    side = (max(x1 - x0, y1 - y0) + 2.0 * margin) * context
    t = square_crop_transform(((x0 + x1) / 2, (y0 + y1) / 2), side, store_size)
    return t.warp(image, store_size), t.apply(pts), t


def _procrustes_residual(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMS point distance after the best similarity alignment of each shape onto ``reference``.

    Args:
        points: (N, K, 2); reference: (K, 2). Returns (N,) in reference units.
    """
    p = points - points.mean(axis=1, keepdims=True)  # (N, K, 2)
    r = reference - reference.mean(axis=0)
    pc = p[..., 0] + 1j * p[..., 1]  # complex form: a similarity is one complex factor
    rc = r[:, 0] + 1j * r[:, 1]
    a = (np.conj(pc) @ rc) / np.maximum((np.abs(pc) ** 2).sum(axis=1), 1e-12)  # (N,)
    res = np.abs(a[:, None] * pc - rc[None, :])  # (N, K)
    return np.sqrt((res**2).mean(axis=1))


def plausible_frames(points: np.ndarray, max_residual: float = 0.12, mad_factor: float = 5.0) -> np.ndarray:
    """Which frames of one clip have believable automatic landmarks.

    A frame is kept when its shape, similarity-aligned to the clip's median shape, deviates by an
    RMS of at most ``max_residual`` × the outer-eye distance, or by no more than ``mad_factor``
    median absolute deviations above the clip's median residual (talking clips with wide
    expressions get a looser bound). Detector failures (a jaw on the collar, a collapsed mouth)
    stand far outside both. The project's shape model could replace the median shape later.

    Args:
        points: (N, K, 2) float, one clip.

    Returns:
        (N,) bool mask.
    """
    pts = np.asarray(points, dtype=np.float64)
    ref = np.median(pts, axis=0)  # (K, 2)
    from gannotate.landmarks import interocular_distance

    iod = max(float(interocular_distance(ref)), 1e-6)
    res = _procrustes_residual(pts, ref) / iod
    med = float(np.median(res))
    mad = float(np.median(np.abs(res - med))) + 1e-9
    return (res <= max_residual) | (res <= med + mad_factor * mad)


@dataclass
class CacheWriter:
    """Write a training cache (see the module docstring); use as a context manager.

    Args:
        path: output .h5 (written beside it and renamed on close, so a crash leaves no cache).
        scheme: landmark scheme name.
        store_size, margin, context: crop settings (see :func:`context_crop`).
        jpeg_quality: 1–100.
    """

    path: Path
    scheme: str = "ibug68"
    store_size: int = 160
    margin: float = 10.0
    context: float = 1.25
    jpeg_quality: int = 90
    command: str = ""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._jpeg: list[np.ndarray] = []
        self._pts: list[np.ndarray] = []
        self._scale: list[float] = []
        self._group: list[int] = []
        self._frame: list[int] = []
        self._paired: list[bool] = []
        self._groups: list[str] = []
        self.n_rejected = 0
        self.sources: list[str] = []

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    def _add(self, image: np.ndarray, points: np.ndarray, group: int, frame: int, paired: bool) -> None:
        crop, pts, t = context_crop(image, points, self.store_size, self.margin, self.context)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise DatasetError(self.path, "JPEG encoding failed")
        self._jpeg.append(np.frombuffer(buf.tobytes(), dtype=np.uint8))
        self._pts.append(pts.astype(np.float32))
        self._scale.append(t.scale)
        self._group.append(group)
        self._frame.append(frame)
        self._paired.append(paired)

    def add_photo(self, key: str, image: np.ndarray, points: np.ndarray) -> None:
        """One annotated photo (unpaired triplets): image (H, W, 3) uint8 RGB, points (K, 2) 0-based."""
        self._groups.append(key)
        self._add(image, points, len(self._groups) - 1, 0, False)

    def add_clip(self, name: str, frames: Iterable[tuple[int, np.ndarray, np.ndarray]], filter_frames: bool = True) -> int:
        """Frames of one clip (paired triplets) as ``(frame_number, image, points)``; returns frames kept.

        With ``filter_frames``, implausible automatic landmarks are dropped (:func:`plausible_frames`).
        """
        items = list(frames)
        if not items:
            return 0
        pts = np.stack([p for _, _, p in items])
        keep = plausible_frames(pts) if filter_frames and len(items) >= 5 else np.ones(len(items), bool)
        self.n_rejected += int((~keep).sum())
        self._groups.append(name)
        gi = len(self._groups) - 1
        for (number, image, points), k in zip(items, keep):
            if k:
                self._add(image, points, gi, int(number), True)
        log.info("clip %s: kept %d of %d frames", name, int(keep.sum()), len(items))
        return int(keep.sum())

    def close(self) -> Path:
        """Write everything and rename into place; returns the path."""
        if not self._jpeg:
            raise DatasetError(self.path, "no faces were added to the training cache")
        paired = np.asarray(self._paired, bool)
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as f:
            ds = f.create_dataset("jpeg", (len(self._jpeg),), dtype=h5py.vlen_dtype(np.uint8))
            for i, b in enumerate(self._jpeg):
                ds[i] = b
            f["landmarks"] = np.stack(self._pts)
            f["scale"] = np.asarray(self._scale, np.float32)
            f["group"] = np.asarray(self._group, np.int32)
            f["frame"] = np.asarray(self._frame, np.int32)
            f["paired"] = paired
            f.create_dataset("groups", data=np.asarray(self._groups, dtype=object), dtype=h5py.string_dtype())
            used_groups = np.unique(np.asarray(self._group)[paired]) if paired.any() else []
            f.attrs.update({
                "format": CACHE_FORMAT, "scheme": self.scheme, "coord_origin": "0-based pixel centres",
                "store_size": self.store_size, "margin": self.margin, "context": self.context,
                "jpeg_quality": self.jpeg_quality, "n_paired": int(paired.sum()), "n_unpaired": int((~paired).sum()),
                "n_clips": len(used_groups), "n_photos": int((~paired).sum()), "n_rejected_frames": self.n_rejected,
                "sources": json.dumps(self.sources), "command": self.command, "version": __version__,
            })
        log.info("wrote training cache %s (%d faces, %.1f MiB)", self.path, len(self._jpeg), self.path.stat().st_size / 2**20)
        return self.path


class TrainingCache:
    """Read a training cache fully into memory (it is small) and decode crops on demand.

    Attributes:
        landmarks: (N, K, 2) float32; scale, group, frame, paired: (N,) arrays; groups: list[str];
        attrs: dict; clips: {group index: (n,) int64 indices of its frames, sorted by frame};
        photos: (P,) int64 indices of the photos.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(self.path, "training cache not found (build it with `gannotate train prepare`)")
        try:
            with h5py.File(self.path, "r") as f:
                if int(f.attrs.get("format", -1)) != CACHE_FORMAT:
                    raise DatasetError(self.path, f"unsupported cache format {f.attrs.get('format')!r} (want {CACHE_FORMAT})")
                self.jpeg = list(f["jpeg"][:])
                self.landmarks = f["landmarks"][:]
                self.scale = f["scale"][:]
                self.group = f["group"][:]
                self.frame = f["frame"][:]
                self.paired = f["paired"][:].astype(bool)
                self.groups = [g.decode() if isinstance(g, bytes) else str(g) for g in f["groups"][:]]
                self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        except OSError as e:
            raise DatasetError(self.path, f"not a readable HDF5 training cache ({e})") from None
        self.photos = np.flatnonzero(~self.paired)
        self.clips: dict[int, np.ndarray] = {}
        for g in np.unique(self.group[self.paired]):
            idx = np.flatnonzero(self.paired & (self.group == g))
            self.clips[int(g)] = idx[np.argsort(self.frame[idx], kind="stable")]

    def __len__(self) -> int:
        return len(self.jpeg)

    @property
    def n_points(self) -> int:
        return int(self.landmarks.shape[1])

    def decode(self, i: int) -> np.ndarray:
        """The stored crop ``i`` as (S, S, 3) uint8 RGB."""
        img = cv2.imdecode(np.asarray(self.jpeg[i], np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(self.path, f"sample {i}: corrupt JPEG")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def summary(self) -> dict:
        """What the cache holds (for checkpoint and export metadata)."""
        keys = ("scheme", "n_paired", "n_unpaired", "n_clips", "n_photos", "n_rejected_frames", "store_size", "sources")
        return {k: self.attrs.get(k) for k in keys} | {"path": self.path.name}

    def margin_rel(self, margin_px: float) -> float:
        """A paper-crop margin of ``margin_px`` source pixels as a fraction of the landmark box side (median).

        Training adds a fixed number of *photo* pixels; a renderer sees crops of unknown resolution, so
        the generator file records the relative margin the training data had.
        """
        side_crop = np.ptp(self.landmarks, axis=1).max(axis=1)  # (N,) box side in stored-crop px
        side_src = side_crop / np.maximum(self.scale, 1e-9)
        return float(np.median(margin_px / np.maximum(side_src, 1e-9)))


def prepare_cache(
    out: str | Path,
    *,
    photos: str | Path | None = None,
    photos_root: str | Path | None = None,
    videos: str | Path | None = None,
    frame_step: int = 2,
    max_frames_per_clip: int | None = None,
    store_size: int = 160,
    jpeg_quality: int = 90,
    command: str = "",
) -> tuple[Path, list[str]]:
    """Build a training cache from annotated photos and 300-VW-layout clips.

    Args:
        out: the .h5 to write.
        photos: a folder of image + .pts, or a ``<landmarks> <image>`` list file (unpaired triplets).
        photos_root: for a list file, the folder its paths start from.
        videos: a folder of clips in the 300-VW layout (paired triplets; automatic landmarks are
            filtered with :func:`plausible_frames`).
        frame_step: keep every n-th annotated frame (neighbouring frames are near-duplicates).
        max_frames_per_clip: cap per clip after ``frame_step`` (None: no cap).
        store_size, jpeg_quality: see :class:`CacheWriter`.

    Returns:
        ``(path, problems)``: problems are "path: reason" lines for inputs that were skipped.
    """
    from gannotate.errors import InputFileError
    from gannotate.landmarks import get_scheme
    from gannotate.io.folders import discover, load_face
    from gannotate.io.videos import discover_clips, iter_frames

    if photos is None and videos is None:
        raise DatasetError(out, "give photos and/or videos to build a training cache from")
    problems: list[str] = []
    with CacheWriter(Path(out), store_size=store_size, jpeg_quality=jpeg_quality, command=command) as w:
        k = get_scheme(w.scheme).n_points
        if photos is not None:
            found = discover(photos, photos_root)
            problems += [f"{f.path}: {f.reason}" for f in found.failures]
            w.sources.append(f"photos: {Path(photos).name} ({len(found.faces)} faces)")
            for ref in found.faces:
                try:
                    image, points = load_face(ref, k)
                except InputFileError as e:
                    problems.append(str(e))
                    continue
                w.add_photo(ref.key, image, points)
        if videos is not None:
            clips = discover_clips(videos)
            w.sources.append(f"videos: {Path(videos).name} ({len(clips)} clips)")
            for clip in clips:
                numbers = clip.frame_numbers()[::frame_step][:max_frames_per_clip]
                try:
                    w.add_clip(clip.name, iter_frames(clip, numbers, n_points=k))
                except InputFileError as e:
                    problems.append(str(e))
    return Path(out), problems
