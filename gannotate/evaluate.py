"""Landmark accuracy: NME (inter-ocular, %), by yaw bin, failure rates, AUC, CED curves; detector fidelity.

Metrics live in a registry (``@register_metric("name")``): each takes an :class:`EvalInput` and
returns a number or a dict of numbers, so a new metric is one decorated function and the CLI and
recipes pick it up by name (:func:`list_metrics`).

Definitions (300W / HRNet practice):

- NME per face: mean point-to-point error / distance of the outer eye corners of the truth (36, 45),
  in percent (``gannotate.landmarks.nme``).
- Failure rate at t %: share of faces with NME > t.
- AUC at t %: area under the CED curve (share of faces with NME ≤ x) for x in [0, t], divided by t.
- Yaw bins: |yaw| in [0, 15), [15, 30), [30, 45), [45, ∞) degrees, yaw from the shape model's pose
  estimate of the *ground truth* (``shape_model.pose.estimate_pose``), so a detector's errors do
  not move a face between bins.

Convention: points float32 (N, K, 2), (x, y), 0-based pixel centres; NME values are percent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from gannotate.errors import DatasetError, GannotateError, SchemeError
from gannotate.landmarks import nme as nme_per_face
from gannotate.landmarks import scheme_for, to_scheme
from gannotate.registry import Registry

if TYPE_CHECKING:
    from gannotate.detector.predict import Detector

__all__ = [
    "YAW_BINS",
    "EvalInput",
    "EvalReport",
    "register_metric",
    "list_metrics",
    "compute_metrics",
    "yaw_of",
    "ced",
    "auc",
    "failure_rate",
    "draw_ced",
    "evaluate_points",
    "evaluate_folders",
    "evaluate_detector",
    "Comparison",
    "compare_checkpoints",
    "evaluate_detectors",
    "FidelityReport",
    "fidelity",
    "markdown_table",
]

log = logging.getLogger(__name__)

YAW_BINS: tuple[tuple[float, float], ...] = ((0.0, 15.0), (15.0, 30.0), (30.0, 45.0), (45.0, float("inf")))


def _bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}+" if np.isinf(hi) else f"{lo:g}-{hi:g}"


@dataclass(frozen=True)
class EvalInput:
    """What a metric sees.

    Attributes:
        pred, truth: (N, K, 2) float32 points (same scheme).
        nme: (N,) NME in percent per face.
        yaw: (N,) yaw of the truth in degrees, or None when it cannot be estimated (not 68 points).
    """

    pred: np.ndarray
    truth: np.ndarray
    nme: np.ndarray
    yaw: np.ndarray | None


_METRICS: Registry[Callable[[EvalInput], float | dict]] = Registry("metric")


def register_metric(name: str) -> Callable:
    """Decorator: add ``fn(EvalInput) -> float | dict[str, float]`` to the registry under ``name``."""
    return _METRICS.register(name)


def list_metrics() -> list[str]:
    """Names of the registered metrics, in registration order."""
    return _METRICS.names()


def failure_rate(nmes: np.ndarray, threshold: float) -> float:
    """Share (%) of faces with NME above ``threshold`` (%)."""
    n = np.asarray(nmes, dtype=np.float64)
    return float(100.0 * np.mean(n > threshold)) if n.size else float("nan")


def ced(nmes: np.ndarray, limit: float, n_steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: thresholds (n_steps+1,) in [0, limit] and fraction of faces ≤ each."""
    n = np.sort(np.asarray(nmes, dtype=np.float64))
    x = np.linspace(0.0, limit, n_steps + 1)
    y = np.searchsorted(n, x, side="right") / max(len(n), 1)
    return x, y


def auc(nmes: np.ndarray, limit: float) -> float:
    """Area under the CED curve up to ``limit`` (%), normalised to [0, 1]."""
    if not np.asarray(nmes).size:
        return float("nan")
    x, y = ced(nmes, limit)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / limit)


@register_metric("nme")
def _nme(e: EvalInput) -> float:
    return float(np.mean(e.nme)) if e.nme.size else float("nan")


@register_metric("nme_by_yaw")
def _nme_by_yaw(e: EvalInput) -> dict:
    if e.yaw is None:
        return {}
    out = {}
    ay = np.abs(e.yaw)
    for lo, hi in YAW_BINS:
        sel = (ay >= lo) & (ay < hi)
        out[_bin_name(lo, hi)] = float(np.mean(e.nme[sel])) if sel.any() else float("nan")
        out[f"n_{_bin_name(lo, hi)}"] = int(sel.sum())
    return out


@register_metric("failure_8")
def _fr8(e: EvalInput) -> float:
    return failure_rate(e.nme, 8.0)


@register_metric("failure_10")
def _fr10(e: EvalInput) -> float:
    return failure_rate(e.nme, 10.0)


@register_metric("auc_8")
def _auc8(e: EvalInput) -> float:
    return auc(e.nme, 8.0)


def yaw_of(points: np.ndarray) -> np.ndarray | None:
    """|yaw| source: the shape model's pose estimate of (N, K, 2) points → (N,) degrees (None if K≠68)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-2] != 68 or not len(pts):
        return None
    from shape_model.pose import estimate_pose

    return np.asarray(estimate_pose(pts), dtype=np.float64).reshape(-1, 3)[:, 0]


def compute_metrics(e: EvalInput, names: Sequence[str] | None = None) -> dict:
    """Run registered metrics (all by default) → ``{name: value}``; dict-valued metrics are flattened as ``name/key``."""
    out: dict = {"n_faces": int(len(e.nme))}
    for name in names or list_metrics():
        v = _METRICS.get(name)(e)
        if isinstance(v, dict):
            out.update({f"{name}/{k}": x for k, x in v.items()})
        else:
            out[name] = v
    return out


@dataclass
class EvalReport:
    """Per-face results and the summary of one evaluation.

    Attributes:
        keys: N face ids; nme (N,) percent; yaw (N,) degrees or None; summary: metric values;
        failures: inputs that could not be read (``Failure(path, reason)``).
    """

    keys: list[str]
    nme: np.ndarray
    yaw: np.ndarray | None
    summary: dict
    failures: list = field(default_factory=list)


def evaluate_points(pred: np.ndarray, truth: np.ndarray, keys: Sequence[str] | None = None,
                    names: Sequence[str] | None = None) -> EvalReport:
    """Score (N, K, 2) predictions against (N, K, 2) truth (same K, or SchemeError)."""
    pred = np.asarray(pred, dtype=np.float32)
    truth = np.asarray(truth, dtype=np.float32)
    if pred.shape[-2] != truth.shape[-2]:
        raise SchemeError(truth.shape[-2], pred.shape[-2], "predictions")
    per_face = nme_per_face(pred, truth) if len(truth) else np.zeros(0)
    yaw = yaw_of(truth)
    e = EvalInput(pred, truth, per_face, yaw)
    keys = list(keys) if keys is not None else [str(i) for i in range(len(truth))]
    return EvalReport(keys, per_face, yaw, compute_metrics(e, names))


def evaluate_folders(predictions: str | Path, truth: str | Path, convert: bool = False) -> EvalReport:
    """Match ``.pts`` in two folders by relative stem and score them.

    Truth with another scheme than the predictions raises SchemeError unless ``convert`` (68 → 66).
    Unreadable files and truths with no prediction are listed in ``failures``.
    """
    from gannotate.io.folders import Failure
    from gannotate.io.pts import read_pts

    pdir, tdir = Path(predictions), Path(truth)
    for d in (pdir, tdir):
        if not d.is_dir():
            raise DatasetError(d, "not a folder of .pts files")
    preds, truths, keys, failures = [], [], [], []
    for tpath in sorted(tdir.rglob("*.pts")):
        rel = tpath.relative_to(tdir).with_suffix("")
        ppath = pdir / rel.with_suffix(".pts")
        if not ppath.is_file():
            failures.append(Failure(str(ppath), f"no prediction for {tpath}"))
            continue
        try:
            t, p = read_pts(tpath), read_pts(ppath)
        except GannotateError as e:
            failures.append(Failure(str(getattr(e, "path", tpath)), str(e)))
            continue
        if t.shape != p.shape:
            if not convert:
                raise SchemeError(p.shape[0], t.shape[0], tpath)
            t, p = to_scheme(t, scheme_for(min(len(t), len(p)))), to_scheme(p, scheme_for(min(len(t), len(p))))
        preds.append(p), truths.append(t), keys.append(str(rel))
    if not keys:
        raise DatasetError(tdir, f"no truth .pts matched a prediction in {pdir}")
    rep = evaluate_points(np.stack(preds), np.stack(truths), keys)
    rep.failures = failures
    return rep


def evaluate_detector(checkpoint: str | Path | Detector | None, truth: str | Path, convert: bool = False,
                      device: str = "cpu") -> EvalReport:
    """Run a detector on a folder / list file of annotated photos (ground-truth landmark-box crops) and score it.

    ``checkpoint`` is a checkpoint path (None → the shipped detector) or an already loaded
    :class:`~gannotate.detector.predict.Detector` (then ``device`` is ignored). Photos are read and
    predicted in chunks (``predict_annotated``), so only the points of all faces are held in memory.
    """
    return evaluate_detectors({0: checkpoint}, truth, convert, device)[0]


def evaluate_detectors(checkpoints: Mapping[Any, str | Path | Detector | None], truth: str | Path, convert: bool = False,
                       device: str = "cpu") -> dict[Any, EvalReport]:
    """:func:`evaluate_detector` for several checkpoints of one scheme, reading each photo once.

    Why: the detector payoff scores 30 checkpoints on each test set, and re-reading the photos per
    checkpoint was most of its scoring time. Each report equals the one :func:`evaluate_detector` gives.
    """
    from gannotate.detector.predict import Detector, predict_annotated_many

    dets = {k: c if isinstance(c, Detector) else Detector.load(c, device) for k, c in checkpoints.items()}
    failures: list = []
    keys, truths, preds = [], [], {k: [] for k in dets}
    for key, pred, t in predict_annotated_many(truth, dets, failures, convert):
        keys.append(key)
        truths.append(t)
        for k, p in pred.items():
            preds[k].append(p)
    if not keys:
        raise DatasetError(truth, "no readable annotated faces")
    out = {}
    for k in dets:
        out[k] = evaluate_points(np.stack(preds[k]), np.stack(truths), keys)
        out[k].failures = list(failures)
    return out


def markdown_table(summaries: Mapping[str, dict]) -> str:
    """Rows = named summaries; columns: NME all, by yaw bin (with counts), FR@8, FR@10, AUC@8."""
    bins = [_bin_name(lo, hi) for lo, hi in YAW_BINS]
    head = ["", "faces", "NME %"] + [f"\\|yaw\\| {b} (n)" for b in bins] + ["FR@8 %", "FR@10 %", "AUC@8"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        cells = [name, str(s.get("n_faces", "")), f"{s.get('nme', float('nan')):.2f}"]
        for b in bins:
            v, n = s.get(f"nme_by_yaw/{b}"), s.get(f"nme_by_yaw/n_{b}", 0)
            cells.append("–" if v is None or not n else f"{v:.2f} ({n})")
        cells += [f"{s.get('failure_8', float('nan')):.1f}", f"{s.get('failure_10', float('nan')):.1f}",
                  f"{s.get('auc_8', float('nan')):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# RGB, the ten "tab10" colours: a payoff plot has ten arms, and a repeated colour made two of them one
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def draw_ced(curves: Mapping[str, np.ndarray], path: str | Path, limit: float = 10.0, size: tuple[int, int] = (640, 420)) -> Path:
    """Plot CED curves (fraction of faces with NME ≤ x, x in [0, limit] %) to a PNG with OpenCV.

    Args:
        curves: name → (N,) NME values in percent.
        path: output PNG.
    """
    w, h = size
    left, right, top, bottom = 60, 20, 20, 50
    img = np.full((h, w, 3), 255, np.uint8)
    pw, ph = w - left - right, h - top - bottom

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.stack([left + x / limit * pw, top + (1 - y) * ph], -1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(int(limit) + 1):  # grid and ticks
        x = int(left + i / limit * pw)
        cv2.line(img, (x, top), (x, top + ph), (225, 225, 225), 1)
        cv2.putText(img, f"{i}", (x - 5, top + ph + 16), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(6):
        y = int(top + (1 - i / 5) * ph)
        cv2.line(img, (left, y), (left + pw, y), (225, 225, 225), 1)
        cv2.putText(img, f"{i / 5:.1f}", (left - 32, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    cv2.putText(img, "NME (% of outer-eye distance)", (left + pw // 2 - 110, h - 12), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "fraction of faces", (left + 6, top + 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    labels = [f"{name}: AUC@8 {auc(nmes, 8.0):.3f}" for name, nmes in curves.items()]
    text_w = max([cv2.getTextSize(t, font, 0.42, 1)[0][0] for t in labels] or [0])
    lx = left + pw - text_w - 45  # legend right-aligned in the empty lower-right corner
    for j, (nmes, label) in enumerate(zip(curves.values(), labels)):
        colour = _COLOURS[j % len(_COLOURS)][::-1]  # RGB → BGR for cv2
        x, y = ced(nmes, limit)
        cv2.polylines(img, [to_px(x, y)], False, colour, 2, cv2.LINE_AA)
        ly = top + ph - 20 - 18 * j
        cv2.line(img, (lx, ly), (lx + 25, ly), colour, 2)
        cv2.putText(img, label, (lx + 30, ly + 4), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise DatasetError(path, "cannot write the CED plot")
    return path


@dataclass(frozen=True)
class Comparison:
    """Several detectors on one validation set: ``markdown`` table, ``summary`` per name, the CED ``plot``."""

    markdown: str
    summary: dict
    plot: Path


def compare_checkpoints(checkpoints: Mapping[str, str | Path], truth: str | Path, ced_path: str | Path,
                        device: str = "cpu") -> Comparison:
    """Evaluate each named checkpoint on the same truth; one markdown row each and one CED plot."""
    reports = evaluate_detectors(checkpoints, truth, device=device)
    plot = draw_ced({n: r.nme for n, r in reports.items()}, ced_path)
    summary = {n: r.summary for n, r in reports.items()}
    return Comparison(markdown_table(summary), summary, plot)


@dataclass(frozen=True)
class FidelityReport:
    """NME of a detector on generated images vs the stored targets, beside its NME on real faces.

    Attributes:
        generated: summary on the generated set (targets as ground truth).
        real_nme: mean NME (%) on real validation faces (measured, or stored in the checkpoint).
        ratio: generated NME / real NME (≈1: targets are as good a ground truth as real labels).
    """

    generated: dict
    real_nme: float
    ratio: float
    real_source: str


def fidelity(dataset: str | Path, checkpoint: str | Path | None = None, real: str | Path | None = None,
             convert: bool = False, limit: int | None = None, device: str = "cpu") -> FidelityReport:
    """Run the detector on a generated HDF5 set and compare its NME there with its NME on real faces.

    Args:
        dataset: ``augment`` output (.h5).
        checkpoint: detector (None → the shipped one).
        real: folder / list file of real annotated faces; None → the validation NME stored in the
            checkpoint by the recipe (``meta['val_nme']``).
        convert: allow 68 → 66 conversion when the dataset's scheme differs from the detector's.
        limit: score only the first ``limit`` samples.

    Raises:
        SchemeError: dataset scheme ≠ detector scheme (and no conversion asked for).
        DatasetError: unreadable dataset; no real NME available.
    """
    from gannotate.detector.data import match_scheme
    from gannotate.detector.predict import Detector
    from gannotate.io.hdf5 import DatasetReader

    det = Detector.load(checkpoint, device)
    preds, truths = [], []
    with DatasetReader(dataset) as reader:
        ds_scheme = str(reader.attrs.get("scheme", ""))
        if ds_scheme and ds_scheme != det.scheme.name and not convert:
            raise SchemeError(det.scheme.name, ds_scheme, dataset)
        n = len(reader) if limit is None else min(limit, len(reader))
        if n == 0:
            raise DatasetError(dataset, "the dataset holds no samples")
        for start in range(0, n, 256):
            stop = min(n, start + 256)
            images = np.asarray(reader.images[start:stop])
            targets = match_scheme(np.asarray(reader.landmarks[start:stop], dtype=np.float32), det.scheme, dataset, convert)
            preds.append(det.predict_from_points(list(images), targets)), truths.append(targets)
    gen = evaluate_points(np.concatenate(preds), np.concatenate(truths)).summary
    if real is not None:
        real_nme, source = float(evaluate_detector(det, real, convert).summary["nme"]), str(real)
    elif "val_nme" in det.meta:
        real_nme, source = float(det.meta["val_nme"]), "checkpoint meta val_nme"
    else:
        raise DatasetError(checkpoint or "shipped detector", "no real NME stored in the checkpoint: pass --real FOLDER")
    return FidelityReport(gen, real_nme, gen["nme"] / real_nme if real_nme > 0 else float("nan"), source)
