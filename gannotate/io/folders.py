"""Find annotated faces on disk (a folder tree or a list file) and load them, collecting failures.

Two sources:

- a folder, searched recursively: every image (``.jpg .jpeg .png .bmp .ppm``, any case) pairs with
  the ``.pts`` or ``.ljson`` of the same stem in the same folder (``.pts`` wins when both exist);
- a list file: one ``<landmarks> <image>`` pair per line (``#`` comments and blank lines skipped,
  quote paths that hold spaces); relative paths are resolved against ``root`` (default: the list
  file's folder). Several faces of one photo may share an image, as in 300W.

Discovery never raises for a bad entry: it records a :class:`Failure` and carries on, so that a
large run can report every problem at once. Order is sorted and deterministic.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gannotate.errors import DatasetError, LandmarkFileError
from gannotate.io.images import IMAGE_EXTENSIONS, read_image, read_image_reduced
from gannotate.io.landmarks_io import LANDMARK_EXTENSIONS, read_landmarks

__all__ = ["FaceRef", "Failure", "Discovery", "discover", "load_face", "check_inside"]

log = logging.getLogger(__name__)

MISSING_LANDMARKS = "missing landmark file"
MISSING_IMAGE = "missing image file"
HIDDEN_SKIPPED = "hidden file skipped"
UNSAFE_NAME = "unsafe file name"
FOLDER_NOT_IMAGE = "is a folder, not an image file"
LINK_LOOP = "symbolic link loop: a folder that contains itself, not searched again"
LINK_SEEN = "symbolic link to a folder already searched: not searched twice"
#: a face with more than this share of its points outside the image is refused: the crop would be
#: mostly border smear, not face (a face cut at the chin or brow, 5-10 of 68 points, still passes)
MAX_OUTSIDE_SHARE = 0.25


@dataclass(frozen=True)
class FaceRef:
    """One annotated face: its image, its landmark file and a stable unique ``key``.

    ``key`` is the landmark path relative to the discovery root, without extension, with ``/``
    separators (e.g. ``afw/afw/111076519_2``): the same on every OS and run, so resume can use it.
    """

    image_path: Path
    landmark_path: Path
    key: str


@dataclass(frozen=True)
class Failure:
    """An entry that could not be used: ``path`` (as given or found) and a human ``reason``."""

    path: str
    reason: str


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found: usable ``faces`` (sorted by key) and ``failures`` (sorted by path)."""

    faces: list[FaceRef] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def _key(landmark_path: Path, root: Path) -> str:
    try:
        rel = landmark_path.relative_to(root)
    except ValueError:  # a list file may point outside its root: fall back to the absolute path
        rel = landmark_path
    return rel.with_suffix("").as_posix()


def _unsafe(name: str) -> str | None:
    """Why a file name cannot become a sample key, or None.

    A backslash is an ordinary character in a POSIX name but a separator on Windows and in many
    tools: ``x\\..\\..\\evil.jpg`` would read as a path that climbs out of the output folder.
    Such a face is reported (and skipped) instead of aborting the run when it is written.
    """
    if "\\" in name:
        return f"{UNSAFE_NAME}: contains a backslash (rename it; it reads as a path on Windows)"
    if any(ord(c) < 32 for c in name):
        return f"{UNSAFE_NAME}: contains control characters"
    return None


def _looks_like_face_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS + LANDMARK_EXTENSIONS


def _discover_folder(root: Path) -> Discovery:
    faces: list[FaceRef] = []
    failures: list[Failure] = []
    searched: dict[tuple[int, int], str] = {}  # (device, inode) of each folder searched → its path
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        folder = Path(dirpath)
        if folder == root:
            st = os.stat(folder)
            searched[(st.st_dev, st.st_ino)] = dirpath
        keep = []
        images: dict[str, str] = {}
        landmarks: dict[str, str] = {}
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            sub = folder / d
            if os.path.splitext(d)[1].lower() in IMAGE_EXTENSIONS:  # named like an image: say so, not "missing"
                failures.append(Failure(str(sub), FOLDER_NOT_IMAGE))
                images.setdefault(os.path.splitext(d)[0], "")
            try:  # symbolic links are followed, each folder once: a loop or a second way in is listed
                sst = os.stat(sub)
            except OSError as e:
                failures.append(Failure(str(sub), f"folder not searched ({e.strerror or e})"))
                continue
            if (sst.st_dev, sst.st_ino) in searched:
                real, here = os.path.realpath(sub), os.path.realpath(folder)
                loop = here == real or here.startswith(real.rstrip(os.sep) + os.sep)
                failures.append(Failure(str(sub), LINK_LOOP if loop else LINK_SEEN))
                continue
            searched[(sst.st_dev, sst.st_ino)] = str(sub)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):  # hidden: macOS ._ forks, editors' backups, our temporaries
                if _looks_like_face_file(name):  # worth a line: the user may expect it to be used
                    failures.append(Failure(str(folder / name), HIDDEN_SKIPPED))
                continue
            stem, ext = os.path.splitext(name)
            ext = ext.lower()
            why = _unsafe(name) if ext in IMAGE_EXTENSIONS + LANDMARK_EXTENSIONS else None
            if why:
                failures.append(Failure(str(folder / name), why))
                continue
            if ext in IMAGE_EXTENSIONS:
                if stem in images:
                    failures.append(Failure(str(folder / name), f"two images share the stem {stem!r}"))
                    continue
                images[stem] = name
            elif ext in LANDMARK_EXTENSIONS:
                prev = landmarks.get(stem)
                if prev is None or LANDMARK_EXTENSIONS.index(ext) < LANDMARK_EXTENSIONS.index(
                    os.path.splitext(prev)[1].lower()
                ):
                    landmarks[stem] = name
        for stem, name in images.items():
            if not name:  # a folder named like an image: already listed
                continue
            if stem not in landmarks:
                failures.append(Failure(str(folder / name), MISSING_LANDMARKS))
                continue
            lm = folder / landmarks[stem]
            faces.append(FaceRef(folder / name, lm, _key(lm, root)))
        for stem, name in landmarks.items():
            if stem not in images:
                failures.append(Failure(str(folder / name), MISSING_IMAGE))
    return Discovery(sorted(faces, key=lambda f: f.key), sorted(failures, key=lambda f: f.path))


def _discover_list(list_file: Path, root: Path | None) -> Discovery:
    base = list_file.parent if root is None else Path(root)
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkFileError(list_file, f"cannot read list file ({e})") from None
    faces: dict[str, FaceRef] = {}
    failures: list[Failure] = []
    for no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"{list_file}:{no}"
        try:
            parts = shlex.split(s)
        except ValueError as e:
            failures.append(Failure(where, f"cannot parse line ({e})"))
            continue
        if len(parts) != 2:
            failures.append(Failure(where, f"expected '<landmarks> <image>', got {s!r}"))
            continue
        lm, im = (Path(p) if Path(p).is_absolute() else base / p for p in parts)
        why = _unsafe(lm.name) or _unsafe(im.name)
        if why:
            failures.append(Failure(where, why))
            continue
        if not lm.is_file():
            failures.append(Failure(str(lm), MISSING_LANDMARKS))
        elif im.is_dir():
            failures.append(Failure(str(im), f"{FOLDER_NOT_IMAGE} (for {lm.name})"))
        elif not im.is_file():
            failures.append(Failure(str(im), f"{MISSING_IMAGE} (for {lm.name})"))
        elif lm.suffix.lower() not in LANDMARK_EXTENSIONS:
            failures.append(Failure(str(lm), f"unknown landmark format {lm.suffix!r}"))
        else:
            ref = FaceRef(im, lm, _key(lm, base))
            if ref.key in faces:
                failures.append(Failure(where, f"duplicate entry for {ref.key!r}"))
            else:
                faces[ref.key] = ref
    return Discovery(sorted(faces.values(), key=lambda f: f.key), sorted(failures, key=lambda f: f.path))


def discover(source: str | Path, root: str | Path | None = None) -> Discovery:
    """Find annotated faces in a folder tree or a list file.

    Args:
        source: a folder (searched recursively) or a list file of ``<landmarks> <image>`` lines.
        root: for a list file, the folder relative paths start from (default: the list file's
            folder); ignored for a folder.

    Returns:
        Discovery with faces sorted by ``key`` and failures (e.g. ``missing landmark file``).

    Raises:
        DatasetError: ``source`` does not exist.
        LandmarkFileError: the list file cannot be read.

    Example:
        >>> found = discover("faces/")
        >>> image, points = load_face(found.faces[0])
    """
    src = Path(source)
    if src.is_dir():
        found = _discover_folder(src)
    elif src.is_file():
        found = _discover_list(src, None if root is None else Path(root))
    else:
        raise DatasetError(src, "input folder or list file not found")
    log.info("%s: %d faces, %d failures", src, len(found.faces), len(found.failures))
    return found


def check_inside(points: np.ndarray, height: int, width: int, path: str | Path, max_outside: float = 0.5,
                 max_share: float = MAX_OUTSIDE_SHARE) -> None:
    """Reject landmarks that do not belong on an (H, W) image, or a face mostly outside it.

    A face at the border may have a few points just outside; a point more than ``max_outside`` of
    the image size beyond an edge means the landmarks belong to another image or another scale, and
    more than ``max_share`` of the points outside the image means most of the crop would be
    invented border, not face.

    Raises:
        LandmarkFileError: naming ``path``, the first offending point (0-based index) and the image
            size, or how many points lie outside.
    """
    pts = np.asarray(points, dtype=np.float64)
    size = np.array([width, height])
    lo = -max_outside * size
    hi = (1.0 + max_outside) * size - 1.0
    bad = np.nonzero(np.any((pts < lo) | (pts > hi), axis=1))[0]
    if bad.size:
        i = int(bad[0])
        raise LandmarkFileError(
            path,
            f"{bad.size} point(s) far outside the {width}x{height} image "
            f"(point {i} at x={pts[i, 0]:.1f}, y={pts[i, 1]:.1f}); wrong image or wrong scale?",
        )
    outside = int(np.any((pts < -0.5) | (pts > size - 0.5), axis=1).sum())  # beyond the pixels' outer edges
    if outside > max_share * len(pts):
        raise LandmarkFileError(
            path,
            f"{outside} of {len(pts)} points lie outside the {width}x{height} image (more than "
            f"{max_share:.0%}): the face is mostly out of the picture",
        )


def load_face(
    ref: FaceRef, n_points: int | None = 68, keep_face_px: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one face.

    Args:
        ref: from :func:`discover`.
        n_points: expected K (``scheme.n_points``); ``None`` accepts any.
        keep_face_px: the landmark-box side, in pixels, the caller needs (see
            :func:`~gannotate.io.images.read_image_reduced`): a very large JPEG whose face keeps that
            many pixels is decoded at 1/2, 1/4 or 1/8 and its points scaled to match. ``None``
            always decodes at full size.

    Returns:
        image (H, W, 3) uint8 RGB and points (K, 2) float32, (x, y), 0-based pixel centres, in
        the returned image.

    Raises:
        ImageFileError: missing, unreadable or corrupt image.
        LandmarkFileError: missing or malformed landmark file, wrong count, NaN, points far outside
            the image. Both are ``InputFileError``.
    """
    points = read_landmarks(ref.landmark_path, n_points)
    if keep_face_px is None:
        image = read_image(ref.image_path)
        check_inside(points, image.shape[0], image.shape[1], ref.landmark_path)
        return image, points
    read = read_image_reduced(ref.image_path, float(np.ptp(points, axis=0).max()), keep_face_px)
    check_inside(points, read.full_shape[0], read.full_shape[1], ref.landmark_path)  # in the photo's own pixels
    return read.pixels, points if read.factor == 1 else read.to_pixels.apply(points)
