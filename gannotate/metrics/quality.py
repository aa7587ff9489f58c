"""Per-sample quality of generated faces: is it a face, does a detector read it at its targets, same person?

Each measure is computed in the augment job, batched, for every sample, and stored in the dataset
(``gannotate.io.hdf5.layout.SAMPLE_FIELDS``):

* ``face_score`` — YuNet's confidence for the face in the sample (the detection that overlaps the
  target landmark box, IoU ≥ 0.3 after YuNet's box is mapped onto a landmark box), 0 when it finds
  none. Every sample is scored resized to :data:`SCORE_SIZE` (the size its pass line was set at): YuNet
  scores the same render higher when it is larger (at 256² it fails 6% of profile renders at 45° yaw,
  the same renders at 128² 26–31%), so without it the gate would loosen as ``--size`` grows.
* ``source_face_score`` — the same score of the sample's source crop (stored beside ``face_score``). A
  source that YuNet itself scores below the face line (an old black-and-white photo, a painting: 5% of
  real crops) lowers the line for its own renders to its score: a render is asked to look as much like a
  face as its photo does, not more (without it, every render of such a face failed).
* ``reader_nme`` — the shipped detector's NME (%) at the targets, cropping on the target landmark box.
  Only within the yaw it knows: it was trained and validated on real photos with no face beyond
  ±45° (docs/detector.md), so beyond :data:`gannotate.plan.RELIABLE_YAW` its error says more about the detector
  than the sample and the value is NaN (not judged). It runs as its ONNX export through OpenCV
  (:class:`~gannotate.detector.exported.ExportedDetector`, within 2·10⁻⁴ px of torch's predictions), so
  a render worker never loads torch.
* ``identity`` — SFace cosine between the sample and its source face (both aligned as SFace expects),
  as ``gannotate evaluate identity`` computes it; about 20 ms of CPU per sample, so only when asked.
* ``invalid_share`` — the share of the target's face (its landmark hull) that the renderer's validity
  mask marks invented (mirror-filled, filled, stretched background); renderers without a mask: none.

The gate (``--min-quality q``) maps each judged measure onto [0, 1] with 0.5 at that measure's own pass
line (:data:`PASS_LINES`, each set on real faces), 0 at its worst and 1 at its best (YuNet 1, NME 0 %,
cosine 0.726), linearly in between, and keeps a sample when every judged measure is ≥ q; a sample's
:func:`quality` is the lowest of them. ``q = 0`` keeps everything. A failing sample is :func:`hopeless`
when its face score would fail even :data:`HOPELESS_FACE_MARGIN` higher: the gate does not redraw its slot.

Convention: images (B, H, W, 3) uint8 RGB; points (B, K, 2) float32 (x, y), 0-based pixel centres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from gannotate.errors import DatasetError
from gannotate.geometry import landmark_box
from gannotate.plan import RELIABLE_YAW
from gannotate.registry import Registry

__all__ = [
    "SCORE_SIZE",
    "PASS_LINES",
    "QualityMeasure",
    "list_measures",
    "get_measure",
    "QualityScorer",
    "invalid_share",
    "measure_quality",
    "quality",
    "failing",
    "hopeless",
    "HOPELESS_FACE_MARGIN",
    "summarise_quality",
    "quality_table",
    "worst_rows",
    "dataset_gate",
]

log = logging.getLogger(__name__)

#: YuNet scores every sample at this size (upscaled or area-downscaled), the size the face-score pass line was set at.
SCORE_SIZE = 128
#: YuNet's own detection floor here: scores below it read as "no face" (0).
FACE_MIN_SCORE = 0.05
#: Native value of each measure where its quality is 0.5, each set on real faces: YuNet's score of 95 % of
#: real 128² crops is above 0.90 (154 held-out photos: 1st / 5th / 50th percentile 0.885 / 0.897 / 0.922; its
#: usual 0.5 detection floor passes nearly every render, broken or not: docs/quality.md); the shipped
#: detector reads 95 % of real 30–45° faces within 9.2 % NME (10 % is 300W's failure line, FR@10);
#: OpenCV's SFace same-person threshold 0.363.
PASS_LINES = {"face_score": 0.90, "reader_nme": 10.0, "identity": 0.363}
#: A failed draw whose YuNet face score would fail the gate even this much higher (below 0.87 at the default
#: gate) is hopeless: its slot is not redrawn. Measured at the default gate, profile renderer, 9 slots per face
#: over ±60° (docs/quality.md, "Cost"): on 69 held-out faces it ends 28 slots early, of which 1 would have
#: passed a later draw, and saves 8 % of the renders; on 85 other (turned) faces 45 slots, 1, 9 %.
HOPELESS_FACE_MARGIN = 0.03


def _around(line: float, top: float) -> Callable[[np.ndarray], np.ndarray]:
    """Piecewise-linear native → quality: 0 at 0, 0.5 at ``line``, 1 at ``top`` (clipped)."""

    def to_quality(v: np.ndarray) -> np.ndarray:
        x = np.asarray(v, np.float64)
        q = np.where(x <= line, 0.5 * x / line, 0.5 + 0.5 * (x - line) / (top - line))
        return np.clip(q, 0.0, 1.0)

    return to_quality


@dataclass(frozen=True)
class QualityMeasure:
    """A per-sample measure: ``field`` in the dataset and ``to_quality`` (native values → [0, 1], NaN = not judged)."""

    name: str
    to_quality: Callable[[np.ndarray], np.ndarray]
    help: str


_MEASURES: Registry[Any] = Registry("quality measure")


def _register(m: QualityMeasure) -> None:
    _MEASURES.register(m.name)(m)  # type: ignore[arg-type]


_register(QualityMeasure("face_score", _around(PASS_LINES["face_score"], 1.0),
                         "YuNet confidence of the face, 0 = not found"))
_register(QualityMeasure("reader_nme", lambda v: np.clip(1.0 - np.asarray(v, np.float64) / (2 * PASS_LINES["reader_nme"]), 0.0, 1.0),
                         "shipped detector's NME (%) at the targets, |yaw| ≤ 45°"))
_register(QualityMeasure("identity", lambda v: np.clip(np.asarray(v, np.float64) / (2 * PASS_LINES["identity"]), 0.0, 1.0),
                         "SFace cosine to the source"))


def list_measures() -> list[str]:
    """Registered measure names (the ``--quality`` choices)."""
    return _MEASURES.names()


def get_measure(name: str) -> QualityMeasure:
    return _MEASURES.get(name)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------------


def _iou(boxes: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """IoU of (M, 4) boxes with one box → (M,)."""
    ix = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = ix * iy
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def invalid_share(masks: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 validity masks (255 = seen) and (B, K, 2) targets → (B,) float32 invented share of the face hull."""
    out = np.zeros(len(masks), np.float32)
    for i, (m, p) in enumerate(zip(np.asarray(masks), np.asarray(points, np.float32))):
        hull = np.zeros(m.shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(p).astype(np.int32)), 1)
        inside = hull.astype(bool)
        out[i] = float((m[inside] < 128).mean()) if inside.any() else 0.0
    return out


@dataclass
class QualityScorer:
    """Computes the asked-for measures of a batch; loads YuNet, the detector and SFace on first use.

    SFace (torch) runs on one thread while scoring: the same numbers whichever process scores a batch
    (``augment --workers``), and one busy thread per render worker.

    Args:
        measures: names from :func:`list_measures`.
        device: torch device for SFace (the detector runs in OpenCV).
    """

    measures: tuple[str, ...]
    device: str = "cpu"
    _finder: Any = field(default=None, repr=False)
    _detector: Any = field(default=None, repr=False)
    _embedder: Any = field(default=None, repr=False)
    _source_scores: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for m in self.measures:
            get_measure(m)

    def face_score(self, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(B,) YuNet confidence of the face on each target's landmark box (0 = none)."""
        from gannotate.annotate import BoxMap, FaceFinder

        if self._finder is None:
            self._finder = FaceFinder(score_threshold=FACE_MIN_SCORE)
        bmap = BoxMap()
        out = np.zeros(len(images), np.float32)
        for i, (img, pts) in enumerate(zip(images, targets)):
            s = SCORE_SIZE / max(img.shape[:2])
            if s != 1.0:
                img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR if s > 1.0 else cv2.INTER_AREA)
            faces = self._finder.find(img)
            if not faces:
                continue
            boxes = np.array([bmap.apply(f.box) for f in faces]) / s
            lb = landmark_box(np.asarray(pts, np.float64))
            near = _iou(boxes, lb) >= 0.3
            if near.any():
                out[i] = max(f.score for f, ok in zip(faces, near) if ok)
        return out

    def source_face_score(self, sources: np.ndarray, source_points: np.ndarray, source_keys: Sequence[str]) -> np.ndarray:
        """(B,) :meth:`face_score` of each sample's source crop, each distinct source scored once per scorer."""
        missing = {k: i for i, k in enumerate(source_keys) if k not in self._source_scores}
        if missing:
            rows = np.array(list(missing.values()), np.int64)
            scores = self.face_score(sources[rows], source_points[rows])
            self._source_scores.update(zip(missing, scores.tolist()))
        return np.array([self._source_scores[k] for k in source_keys], np.float32)

    def reader_nme(self, images: np.ndarray, targets: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """(B,) NME (%) of the shipped detector at the targets; NaN where |yaw| > :data:`~gannotate.plan.RELIABLE_YAW`
        (the shipped detector's photos have no face beyond it)."""
        from gannotate.detector.exported import ExportedDetector
        from gannotate.landmarks import nme

        if self._detector is None:
            self._detector = ExportedDetector.load()
        out = np.full(len(images), np.nan, np.float32)
        judged = np.nonzero(np.abs(np.asarray(yaw)) <= RELIABLE_YAW)[0]
        if len(judged):
            pred = self._detector.predict_from_points(list(images[judged]), targets[judged])
            out[judged] = nme(pred, targets[judged]).astype(np.float32)
        return out

    def identity(self, images: np.ndarray, targets: np.ndarray, sources: np.ndarray, source_points: np.ndarray,
                 source_keys: Sequence[str]) -> np.ndarray:
        """(B,) SFace cosine of each sample to its source (each distinct source embedded once)."""
        from gannotate.metrics.identity import FaceEmbedder, cosine

        if self._embedder is None:
            self._embedder = FaceEmbedder(self.device)
        first = {k: i for i, k in reversed(list(enumerate(source_keys)))}
        rows = np.array(sorted(first.values()), np.int64)
        src_emb = self._embedder.embed(sources[rows], source_points[rows])
        of_key = {source_keys[r]: e for r, e in zip(rows, src_emb)}
        emb = self._embedder.embed(images, targets)
        return cosine(emb, np.stack([of_key[k] for k in source_keys])).astype(np.float32)

    def score(self, images: np.ndarray, targets: np.ndarray, yaw: np.ndarray, sources: np.ndarray,
              source_points: np.ndarray, source_keys: Sequence[str], min_quality: float = 0.0) -> dict[str, np.ndarray]:
        """The asked-for measures of a batch → ``{name: (B,) float32}``.

        Args:
            images: (B, H, W, 3) samples; targets: (B, K, 2) their landmarks; yaw: (B,) target yaw (degrees).
            sources: (B, H', W', 3) the source crop of each sample (as photographed, not mirrored);
            source_points: (B, K, 2) its landmarks; source_keys: B ids (equal ids = the same source).
            min_quality: a gate's line (0: none). With a gate, the detector and SFace judge only the samples
                whose face score passes it: the gate rejects the others whatever those measures say, and
                they are the costly ones (NaN where not judged).
        """
        out: dict[str, np.ndarray] = {}
        judged = np.ones(len(images), bool)
        if "face_score" in self.measures:
            out["face_score"] = self.face_score(images, targets)
            out["source_face_score"] = self.source_face_score(sources, source_points, source_keys)
            judged = ~failing(out, min_quality)["face_score"]
        costly = [m for m in ("reader_nme", "identity") if m in self.measures]
        if not costly:
            return out
        for m in costly:
            out[m] = np.full(len(images), np.nan, np.float32)
        rows = np.flatnonzero(judged)
        if not len(rows):
            return out
        if "reader_nme" in self.measures:
            out["reader_nme"][rows] = self.reader_nme(images[rows], targets[rows], np.asarray(yaw)[rows])
        if "identity" in self.measures:
            import torch  # SFace runs in torch: only a run that asks for identity loads it

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                out["identity"][rows] = self.identity(images[rows], targets[rows], sources[rows], source_points[rows],
                                                      [source_keys[i] for i in rows])
            finally:
                torch.set_num_threads(threads)
        return out


# --------------------------------------------------------------------------------------------
# judging
# --------------------------------------------------------------------------------------------


def _judged(fields: Mapping[str, np.ndarray], m: str) -> np.ndarray:
    """Measure ``m``'s values as judged: a face score is credited what its source falls short of the face line."""
    v = np.asarray(fields[m], np.float64)
    if m == "face_score" and "source_face_score" in fields:
        v = v + np.maximum(PASS_LINES["face_score"] - np.asarray(fields["source_face_score"], np.float64), 0.0)
    return v


def measure_quality(fields: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each registered measure present in ``fields`` → its (B,) quality in [0, 1] (NaN = not judged).

    With ``source_face_score`` in ``fields`` the face score is judged against the lower of the face line and
    its source's own score (module doc); files made before that field are judged as they were.
    """
    return {m: get_measure(m).to_quality(_judged(fields, m)) for m in list_measures() if m in fields}


def quality(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """(B,) a sample's quality: the lowest quality of its judged measures (1 where none is judged)."""
    q = measure_quality(fields)
    if not q:
        n = len(next(iter(fields.values()))) if fields else 0
        return np.ones(n)
    stack = np.stack(list(q.values()))
    stack = np.where(np.isnan(stack), 1.0, stack)
    return stack.min(axis=0)


def failing(fields: Mapping[str, np.ndarray], min_quality: float) -> dict[str, np.ndarray]:
    """``{measure: (B,) bool}`` — which samples each measure rejects at ``min_quality`` (NaN never rejects)."""
    return {m: np.nan_to_num(q, nan=1.0) < min_quality for m, q in measure_quality(fields).items()}


def hopeless(fields: Mapping[str, np.ndarray], min_quality: float) -> np.ndarray:
    """(B,) bool: samples whose ``face_score`` fails ``min_quality`` even :data:`HOPELESS_FACE_MARGIN` higher.

    All False when the face score was not measured (nothing then tells a hopeless draw from a near miss).
    """
    if "face_score" not in fields:
        n = len(next(iter(fields.values()))) if fields else 0
        return np.zeros(n, bool)
    raised = _judged(fields, "face_score") + HOPELESS_FACE_MARGIN
    return np.nan_to_num(get_measure("face_score").to_quality(raised), nan=1.0) < min_quality


# --------------------------------------------------------------------------------------------
# reading a dataset
# --------------------------------------------------------------------------------------------


def _stats(fields: Mapping[str, np.ndarray], rows: np.ndarray, gate: float) -> dict[str, Any]:
    cell: dict[str, Any] = {"n": int(len(rows))}
    if not len(rows):
        return cell
    for name, v in fields.items():
        x = np.asarray(v[rows], np.float64)
        judged = x[~np.isnan(x)]
        if name == "mirrored":
            cell["mirrored_share"] = round(float(judged.mean()) * 100, 1)
        elif len(judged):
            cell[name] = {"mean": round(float(judged.mean()), 4), "median": round(float(np.median(judged)), 4),
                          "n": int(len(judged))}
    if "face_score" in fields:  # as sure a face as 95 % of real faces are
        cell["face_pass_share"] = round(float((fields["face_score"][rows] >= PASS_LINES["face_score"]).mean()) * 100, 1)
    q = quality({k: v[rows] for k, v in fields.items()})  # the measures, and the source scores they are judged by
    cell["below_gate_share"] = round(float((q < gate).mean()) * 100, 1)
    return cell


def summarise_quality(dataset: str | Path, gate: float = 0.5) -> dict[str, Any]:
    """The per-sample fields of ``dataset``, overall and by |target yaw| (``metrics.yaw.LANDMARK_YAW_BINS``).

    Per cell: n, each field's mean and median over the samples it judges, the share whose ``face_score``
    reaches its pass line, the share mirrored, and the share whose :func:`quality` is below ``gate``.

    Raises:
        DatasetError: the dataset has no per-sample quality fields (made before they existed).
    """
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.metrics.yaw import LANDMARK_YAW_BINS, bin_label

    with DatasetReader(dataset) as r:
        fields = dict(r.fields)
        if r.fit_residual is not None:
            fields["fit_residual"] = r.fit_residual
        yaw = np.abs(r.pose[:, 0].astype(np.float64))
        n = len(r)
    if not any(m in fields for m in list_measures()):
        raise DatasetError(dataset, "no per-sample quality fields (made before `augment` scored its samples)")
    summary: dict[str, Any] = {"all": _stats(fields, np.arange(n), gate), "gate": gate, "by_yaw": {}}
    for lo, hi in LANDMARK_YAW_BINS:
        rows = np.nonzero((yaw >= lo) & (yaw < hi))[0]
        summary["by_yaw"][bin_label(lo, hi)] = _stats(fields, rows, gate)
    return summary


def quality_table(summary: Mapping[str, Any]) -> str:
    """A markdown table of :func:`summarise_quality`: one row per |yaw| bin, then all."""
    cols = [("n", lambda c: str(c.get("n", 0))),
            (f"face ≥ {PASS_LINES['face_score']:g} %", lambda c: _num(c.get("face_pass_share"))),
            ("face score", lambda c: _num(c.get("face_score", {}).get("median"), 2)),
            ("reader NME %", lambda c: _num(c.get("reader_nme", {}).get("median"), 2)),
            ("identity", lambda c: _num(c.get("identity", {}).get("mean"), 3)),
            ("invented %", lambda c: _num(None if "invalid_share" not in c else 100 * c["invalid_share"]["mean"])),
            ("fit residual", lambda c: _num(c.get("fit_residual", {}).get("median"), 3)),
            ("turn °", lambda c: _num(c.get("turn_deg", {}).get("mean"))),
            ("mirrored %", lambda c: _num(c.get("mirrored_share"))),
            (f"below {summary.get('gate', 0.5):g} %", lambda c: _num(c.get("below_gate_share")))]
    lines = ["| \\|yaw\\| | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = list(summary["by_yaw"].items()) + [("all", summary["all"])]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(f(cell) if cell.get("n") else "–" for _, f in cols) + " |")
    return "\n".join(lines) + "\n"


def _num(v: Any, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def worst_rows(dataset: str | Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` rows of ``dataset`` with the lowest :func:`quality` (worst first) and their qualities.

    Raises:
        DatasetError: the dataset has no quality measures.
    """
    from gannotate.io.hdf5 import DatasetReader

    with DatasetReader(dataset) as r:
        fields = dict(r.fields)
    if not any(m in fields for m in list_measures()):
        raise DatasetError(dataset, "no per-sample quality fields to rank by (made before `augment` scored its samples)")
    q = quality(fields)
    order = np.argsort(q, kind="stable")[:n]
    return order, q[order]


def dataset_gate(dataset: str | Path) -> float:
    """The ``min_quality`` a dataset was made with (its plan attr), else the default gate."""
    import json

    from gannotate.io.hdf5 import DatasetReader
    from gannotate.plan import DEFAULT_MIN_QUALITY

    with DatasetReader(dataset) as r:
        try:
            plan = json.loads(str(r.attrs.get("plan", "{}")))
        except ValueError:
            plan = {}
    gate = plan.get("min_quality") if isinstance(plan, dict) else None
    return float(gate) if gate else DEFAULT_MIN_QUALITY
