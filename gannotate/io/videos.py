"""Annotated videos in the 300-VW layout, read lazily frame by frame.

Layout::

    <root>/<clip>/vid.mp4 (or vid.avi)
    <root>/<clip>/annot/000001.pts      # 1-based frame number, 300W .pts (1-based pixels)

Frames without a ``.pts`` are skipped. Frames are decoded on demand with ``cv2.VideoCapture``
(never the whole clip in memory); nearby frames are reached by decoding forward, distant ones by
seeking.

Convention: images (H, W, 3) uint8 RGB; points (K, 2) float32 (x, y), 0-based pixel centres.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from gannotate.errors import DatasetError, ImageFileError, InputFileError
from gannotate.io.folders import check_inside
from gannotate.io.images import to_rgb_uint8
from gannotate.io.pts import read_pts

__all__ = ["Clip", "VIDEO_NAMES", "discover_clips", "export_frames", "iter_frames"]

log = logging.getLogger(__name__)

#: File names a clip folder may hold its video under, in order of preference.
VIDEO_NAMES: tuple[str, ...] = ("vid.mp4", "vid.avi")
_SEEK_GAP = 64  # decode forward over gaps up to this many frames; seek beyond (seeking costs a keyframe decode)


@dataclass(frozen=True)
class Clip:
    """One annotated video: ``name`` (folder path relative to the discovery root, ``/``-separated)."""

    name: str
    video_path: Path
    annot_dir: Path

    def frame_numbers(self) -> list[int]:
        """Sorted 1-based frame numbers that have a ``.pts`` in ``annot_dir``."""
        out = []
        for entry in os.scandir(self.annot_dir):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() == ".pts" and stem.isdigit() and int(stem) >= 1:
                out.append(int(stem))
        return sorted(out)

    def pts_path(self, frame_number: int) -> Path:
        """The ``.pts`` of a 1-based frame number (six digits, as 300-VW)."""
        return self.annot_dir / f"{frame_number:06d}.pts"

    def n_video_frames(self) -> int:
        """Frame count the container reports (may be approximate for some codecs)."""
        cap = cv2.VideoCapture(str(self.video_path))
        try:
            return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()


def _clip_in(folder: Path, root: Path) -> Clip | None:
    annot = folder / "annot"
    if not annot.is_dir():
        return None
    for name in VIDEO_NAMES:
        if (folder / name).is_file():
            rel = folder.relative_to(root).as_posix()
            return Clip(folder.name if rel == "." else rel, folder / name, annot)
    return None


def discover_clips(root: str | Path) -> list[Clip]:
    """Every clip folder under ``root`` (``root`` itself may be one), sorted by name.

    Raises:
        DatasetError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "video folder not found")
    clips = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "annot")
        clip = _clip_in(Path(dirpath), root)
        if clip is not None:
            clips.append(clip)
    return sorted(clips, key=lambda c: c.name)


def iter_frames(
    clip: Clip, frames: Iterable[int] | None = None, n_points: int | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield annotated frames of ``clip`` lazily, in increasing frame order.

    Args:
        clip: from :func:`discover_clips`.
        frames: 1-based frame numbers wanted (default: all annotated); those without a ``.pts`` are
            skipped, duplicates read once.
        n_points: expected K per ``.pts`` (``None``: any).

    Yields:
        ``(frame_number, image (H, W, 3) uint8 RGB, points (K, 2) float32 0-based)``.

    Raises:
        ImageFileError: the video cannot be opened.
        LandmarkFileError: a bad ``.pts`` (wrong count, NaN, points far outside the frame).
    """
    annotated = set(clip.frame_numbers())
    wanted = sorted(annotated if frames is None else annotated.intersection(int(f) for f in frames))
    if not wanted:
        return
    cap = cv2.VideoCapture(str(clip.video_path))
    if not cap.isOpened():
        raise ImageFileError(clip.video_path, "cannot open video")
    try:
        position = 1  # 1-based number of the frame the next read() returns
        for number in wanted:
            if number - position > _SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, number - 1)
                position = number
            while position < number:
                if not cap.grab():
                    break
                position += 1
            ok, bgr = cap.read()
            if not ok or position != number:
                log.warning("%s: video ends before annotated frame %d; stopping", clip.video_path, number)
                return
            position += 1
            image = to_rgb_uint8(bgr, bgr=True)
            pts_path = clip.pts_path(number)
            points = read_pts(pts_path, n_points)
            check_inside(points, image.shape[0], image.shape[1], pts_path)
            yield number, image, points
    finally:
        cap.release()


def export_frames(root: str | Path, out: str | Path, per_clip: int, n_points: int | None = 68) -> Path:
    """Write up to ``per_clip`` annotated frames of every clip under ``root`` as ``out/<clip>_<frame>.png`` + ``.pts``.

    Why: a folder of annotated photos is what every evaluator and trainer here reads, so clip frames
    become a second test set (other people, continuous head turns) with no new reader. Frames are
    spread evenly over each clip; a clip that cannot be read is skipped with a warning. Returns ``out``.
    """
    from gannotate.io.images import write_image
    from gannotate.io.pts import write_pts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for clip in discover_clips(root):
        numbers = clip.frame_numbers()
        pick = sorted({numbers[int(i)] for i in np.linspace(0, len(numbers) - 1, min(per_clip, len(numbers)))})
        try:
            for number, image, pts in iter_frames(clip, pick, n_points):
                stem = f"{clip.name}_{number:06d}"
                write_image(out / f"{stem}.png", image)
                write_pts(out / f"{stem}.pts", pts)
        except (DatasetError, InputFileError) as e:
            log.warning("%s: skipped (%s)", clip.name, e)
    return out
