"""Training and evaluation data for the detector: faces from folders and HDF5 sets, crops, augmentation.

Every face, whatever its source, is stored once as a *canvas*: a square resampled around its
landmark box (side ``CANVAS_FACTOR`` × the box side, ``canvas_size`` pixels), so a training batch
is one small ``cv2.warpAffine`` per face instead of a warp of a full photo.

The detector's crop (:func:`crop_transform_for_box`) is the paper crop made scale-free: the
landmark box (or a face detector's box mapped to a landmark box) made square, grown by
``margin`` × its side on every side, and resampled to ``input_size``². Training jitters that box
(shift, scale, rotation, mirror) so a box from a face detector, which is never exactly the
landmark box, still gives a crop the network has seen.

Convention: images uint8 (H, W, 3) RGB; points float32 (K, 2) ``(x, y)``, 0-based pixel centres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from gannotate.errors import DatasetError, GannotateError, NoFacesError, SchemeError, check_points
from gannotate.geometry import Affine, flip, landmark_box, rotation, square_crop_transform
from gannotate.landmarks import Scheme, get_scheme, scheme_for, to_scheme

__all__ = [
    "CANVAS_FACTOR",
    "canvas_size",
    "CropAugmentConfig",
    "FaceSet",
    "crop_transform_for_box",
    "crop_transform_for_points",
    "match_scheme",
    "iter_annotated",
    "faces_from_folder",
    "faces_from_hdf5",
    "load_training_faces",
    "sample_batch",
    "to_tensor",
    "split_by_photo",
    "write_list_file",
    "NO_AUGMENT",
]

log = logging.getLogger(__name__)

CANVAS_FACTOR = 1.8
"""Canvas side / landmark-box side: room for the crop margin, 15 % zoom-out and 30° rotation."""


def canvas_size(input_size: int, margin: float) -> int:
    """Canvas side (pixels, a multiple of 8) that keeps a network crop at about canvas resolution.

    A crop of ``input_size`` pixels spans ``1 + 2·margin`` landmark-box sides; the canvas spans
    :data:`CANVAS_FACTOR` of them, so the canvas is sampled at the same pixels per box side.
    """
    return int(round(input_size * CANVAS_FACTOR / (1 + 2 * margin) / 8)) * 8


@dataclass(frozen=True)
class CropAugmentConfig:
    """Random changes applied to each training crop (all uniform in ±range).

    Attributes:
        rotation_deg: in-plane rotation about the box centre.
        scale: relative change of the crop side (0.15 → ×[0.85, 1.15]).
        shift: box-centre shift as a fraction of the box side.
        flip_prob: probability of a mirror (points re-ordered by the scheme's flip table).
        brightness, contrast: photometric jitter (additive in [0, 255] units ×255, multiplicative).
        gray_prob: probability of turning the crop grayscale.
    """

    rotation_deg: float = 30.0
    scale: float = 0.15
    shift: float = 0.06
    flip_prob: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.25
    gray_prob: float = 0.1


NO_AUGMENT = CropAugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def crop_transform_for_box(box: Sequence[float], input_size: int, margin: float) -> Affine:
    """Photo → crop transform for a landmark box ``(x0, y0, x1, y1)``.

    The crop is the square of side ``max(w, h) · (1 + 2·margin)`` centred on the box, resampled to
    ``input_size``² (pixel edges to pixel edges, see ``geometry.square_crop_transform``).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    return square_crop_transform(((x0 + x1) / 2, (y0 + y1) / 2), side, input_size)


def crop_transform_for_points(points: np.ndarray, input_size: int, margin: float) -> Affine:
    """:func:`crop_transform_for_box` of the landmark box of (K, 2) ``points``."""
    return crop_transform_for_box(landmark_box(points), input_size, margin)


def match_scheme(points: np.ndarray, scheme: Scheme, where: str | Path | None = None, convert: bool = False) -> np.ndarray:
    """Return (..., K, 2) ``points`` in ``scheme``; convert (68 → 66) only when ``convert`` is set.

    Raises:
        SchemeError: K differs from ``scheme.n_points`` and no conversion was asked for (or exists).
    """
    k = points.shape[-2]
    if k == scheme.n_points:
        return points
    if not convert:
        raise SchemeError(scheme.name, f"{k} points ({scheme_for(k).name if k in (66, 68) else 'unknown'})", where)
    try:
        return to_scheme(points, scheme)
    except (SchemeError, GannotateError) as e:
        raise SchemeError(scheme.name, k, where) from e


@dataclass
class FaceSet:
    """Faces resampled onto canvases.

    Attributes:
        canvases: (N, C, C, 3) uint8 RGB.
        points: (N, K, 2) float32 in canvas pixels (0-based centres).
        keys: N stable ids (relative path without extension, or ``<h5 stem>/<index>``).
        scheme: the landmark scheme of ``points``.
    """

    canvases: np.ndarray
    points: np.ndarray
    keys: list[str]
    scheme: Scheme

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_faces(cls, faces: Iterable[tuple[str, np.ndarray, np.ndarray]], scheme: Scheme, canvas_size: int) -> "FaceSet":
        """Build from ``(key, image (H, W, 3) uint8, points (K, 2))`` triples (points in ``scheme``)."""
        canv, pts, keys = [], [], []
        for key, image, points in faces:
            t = crop_transform_for_points(points, canvas_size, (CANVAS_FACTOR - 1.0) / 2.0)
            canv.append(t.warp(image, canvas_size))
            pts.append(t.apply(check_points(points, scheme.n_points, key)))
            keys.append(key)
        k = scheme.n_points
        if not keys:
            return cls(np.zeros((0, canvas_size, canvas_size, 3), np.uint8), np.zeros((0, k, 2), np.float32), [], scheme)
        return cls(np.stack(canv), np.stack(pts).astype(np.float32), keys, scheme)

    @classmethod
    def concat(cls, sets: Sequence["FaceSet"]) -> "FaceSet":
        if not sets:
            raise GannotateError("no training data: give at least one folder or HDF5 dataset")
        names = {s.scheme.name for s in sets}
        if len(names) > 1:
            raise SchemeError(sets[0].scheme.name, ", ".join(sorted(names)), "training sources")
        return cls(
            np.concatenate([s.canvases for s in sets]),
            np.concatenate([s.points for s in sets]),
            [k for s in sets for k in s.keys],
            sets[0].scheme,
        )


def iter_annotated(
    source: str | Path, scheme: Scheme, failures: list, convert: bool = False
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(key, image, points)`` for each readable face of a folder or list file, lazily.

    Unreadable images or landmark files are appended to ``failures`` as the IO layer's
    ``Failure(path, reason)`` and skipped; a scheme mismatch raises (it is a user choice, not a bad file).

    Raises:
        SchemeError: points in another scheme than ``scheme`` and ``convert`` is off.
    """
    from gannotate.io.folders import Failure, discover, load_face

    found = discover(Path(source))
    failures.extend(found.failures)
    for ref in found.faces:
        try:
            image, pts = load_face(ref, n_points=None)
        except GannotateError as e:
            failures.append(Failure(str(getattr(e, "path", ref.image_path)), str(e)))
            continue
        yield ref.key, image, match_scheme(pts, scheme, ref.landmark_path, convert)


def faces_from_folder(
    source: str | Path, scheme: Scheme, canvas_size: int, convert: bool = False
) -> tuple[FaceSet, list]:
    """Load photos with landmarks from a folder or list file (``gannotate.io.folders.discover``).

    Returns:
        (faces, failures): unreadable files are skipped and returned as ``Failure(path, reason)``
        (the IO layer's record), not raised; a scheme mismatch raises.

    Raises:
        NoFacesError: not one usable face (e.g. a text file that is no list): training on it would
            write a checkpoint of nothing (the CLI exits 1).
    """
    failures: list = []
    faces = FaceSet.from_faces(iter_annotated(source, scheme, failures, convert), scheme, canvas_size)
    for f in failures:
        log.warning("skipped %s: %s", f.path, f.reason)
    if len(faces) == 0:
        first = f"; first: {failures[0].path}: {failures[0].reason}" if failures else ""
        raise NoFacesError(source, f"{len(failures)} entr{'y' if len(failures) == 1 else 'ies'} failed{first}")
    return faces, failures


def faces_from_hdf5(
    path: str | Path, scheme: Scheme, canvas_size: int, convert: bool = False, limit: int | None = None,
    sources: Iterable[str] | None = None,
) -> FaceSet:
    """Load a generated dataset written by ``augment`` (``gannotate.io.hdf5.DatasetReader``).

    Args:
        sources: keep only samples generated from these source keys (e.g. the training photos of a
            split, so a test photo's renders never train); None keeps all.

    Raises:
        SchemeError: when the dataset's scheme differs from ``scheme`` and ``convert`` is off.
        DatasetError: when the file cannot be read, holds no samples, or none from ``sources``.
    """
    from gannotate.io.hdf5 import DatasetReader

    with DatasetReader(path) as reader:
        n = len(reader) if limit is None else min(limit, len(reader))
        ds_scheme = str(reader.attrs.get("scheme", scheme_for(reader.landmarks.shape[-2]).name))
        if ds_scheme != scheme.name and not convert:
            raise SchemeError(scheme.name, ds_scheme, path)
        if n == 0:
            raise DatasetError(path, "the dataset holds no samples")
        rows = np.arange(n)
        if sources is not None:
            keep = set(sources)
            kept_source = np.array([s in keep for s in reader.sources] or [False])  # (M,)
            rows = rows[kept_source[np.asarray(reader.source_index[:n])]]
            if not len(rows):
                raise DatasetError(path, "no sample was generated from the given training faces")
        images = np.asarray(reader.images[:n])[rows]
        points = match_scheme(np.asarray(reader.landmarks[:n], dtype=np.float32)[rows], scheme, path, convert)
    stem = Path(path).stem
    return FaceSet.from_faces(((f"{stem}/{i}", images[j], points[j]) for j, i in enumerate(rows)), scheme, canvas_size)


def load_training_faces(
    sources: Sequence[str | Path], scheme: str | Scheme, canvas_size: int, convert: bool = False
) -> tuple[FaceSet, list]:
    """Any mix of ``.h5`` datasets and folders / list files → one :class:`FaceSet` and the failures."""
    sch = get_scheme(scheme)
    sets, failures = [], []
    for src in sources:
        p = Path(src)
        if p.suffix in (".h5", ".hdf5"):
            sets.append(faces_from_hdf5(p, sch, canvas_size, convert))
        else:
            fs, fails = faces_from_folder(p, sch, canvas_size, convert)
            sets.append(fs)
            failures += fails
        log.info("%s: %d faces", p, len(sets[-1]))
    return FaceSet.concat(sets), failures


def sample_batch(
    faces: FaceSet,
    index: np.ndarray,
    rng: np.random.Generator,
    input_size: int,
    margin: float,
    aug: CropAugmentConfig = NO_AUGMENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut augmented crops of faces ``index``.

    Returns:
        images (B, S, S, 3) uint8 RGB and points (B, K, 2) float32 in crop pixels.
    """
    b = len(index)
    u = rng.uniform(-1.0, 1.0, size=(b, 4))  # rotation, scale, shift x, shift y
    flips = rng.uniform(size=b) < aug.flip_prob
    images = np.empty((b, input_size, input_size, 3), np.uint8)
    points = np.empty((b, faces.points.shape[1], 2), np.float32)
    for j, i in enumerate(index):  # per-sample warps: a data-loader loop, not a kernel loop
        canvas, pts = faces.canvases[i], faces.points[i]
        if flips[j]:
            canvas, pts = flip(canvas, pts, faces.scheme)
        x0, y0, x1, y1 = landmark_box(pts)
        side = max(x1 - x0, y1 - y0, 1.0)
        centre = ((x0 + x1) / 2 + u[j, 2] * aug.shift * side, (y0 + y1) / 2 + u[j, 3] * aug.shift * side)
        crop = square_crop_transform(centre, side * (1 + 2 * margin) * (1 + u[j, 1] * aug.scale), input_size)
        t = rotation(u[j, 0] * aug.rotation_deg, centre).compose_before(crop)
        images[j] = t.warp(canvas, input_size)
        points[j] = t.apply(pts)
    if aug.brightness or aug.contrast or aug.gray_prob:
        images = _photometric(images, rng, aug)
    return images, points


def _photometric(images: np.ndarray, rng: np.random.Generator, aug: CropAugmentConfig) -> np.ndarray:
    """Brightness / contrast / grayscale jitter of a (B, S, S, 3) uint8 batch, vectorised over the batch."""
    b = images.shape[0]
    x = images.astype(np.float32)
    gray = rng.uniform(size=b) < aug.gray_prob
    lum = x @ np.float32([0.299, 0.587, 0.114])  # (B, S, S)
    x[gray] = lum[gray][..., None]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    c = 1.0 + rng.uniform(-aug.contrast, aug.contrast, size=(b, 1, 1, 1)).astype(np.float32)
    br = rng.uniform(-aug.brightness, aug.brightness, size=(b, 1, 1, 1)).astype(np.float32) * 255.0
    return np.clip((x - mean) * c + mean + br, 0, 255).astype(np.uint8)


def to_tensor(images: np.ndarray, device: str | object = "cpu"):
    """(B, S, S, 3) uint8 RGB → float (B, 3, S, S) in [-1, 1] on ``device``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def split_by_photo(
    list_file: str | Path, root: str | Path | None, val_fraction: float, seed: int
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """Split a ``<landmarks> <image>`` list into train / validation with no photo in both.

    Several faces of one photo share one image file (300W), so the split is over distinct image
    files: a face never trains the network on the photo of a validation face.

    Returns:
        (train, val) lists of absolute ``(landmark_path, image_path)`` pairs, sorted.
    """
    from gannotate.io.folders import discover

    found = discover(Path(list_file), root=root)
    photos = sorted({str(f.image_path.resolve()) for f in found.faces})
    if len(photos) < 2:
        raise DatasetError(list_file, f"need at least 2 photos to split, found {len(photos)}")
    rng = np.random.default_rng(seed)
    n_val = min(len(photos) - 1, max(1, int(round(val_fraction * len(photos)))))
    val_photos = set(rng.permutation(photos)[:n_val].tolist())
    train, val = [], []
    for f in found.faces:
        pair = (f.landmark_path.resolve(), f.image_path.resolve())
        (val if str(pair[1]) in val_photos else train).append(pair)
    return sorted(train), sorted(val)


def write_list_file(path: str | Path, pairs: Sequence[tuple[Path, Path]]) -> Path:
    """Write ``<landmarks> <image>`` lines (quoted when needed) that ``io.folders.discover`` reads."""
    import shlex

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{shlex.quote(str(a))} {shlex.quote(str(b))}\n" for a, b in pairs))
    return path
