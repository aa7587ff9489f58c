"""Landmark accuracy: NME (inter-ocular, %), by |yaw| bin, failure rates, AUC and CED curves.

The registered metrics (:mod:`gannotate.metrics.registry`) are defined here. Definitions (300W /
HRNet practice):

- NME per face: mean point-to-point error / distance of the outer eye corners of the truth (36, 45),
  in percent (``gannotate.landmarks.nme``).
- Failure rate at t %: share of faces with NME > t.
- AUC at t %: area under the CED curve (share of faces with NME ≤ x) for x in [0, t], divided by t.
- Yaw bins: :data:`~gannotate.metrics.yaw.LANDMARK_YAW_BINS` of |yaw| from the shape model's pose
  estimate of the *ground truth* (:func:`~gannotate.metrics.yaw.yaw_of`), so a detector's errors do
  not move a face between bins.

Convention: points float32 (N, K, 2), (x, y), 0-based pixel centres; NME values are percent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from gannotate.errors import DatasetError, InputFileError, SchemeError
from gannotate.landmarks import nme as nme_per_face
from gannotate.landmarks import scheme_for, to_scheme
from gannotate.metrics.registry import EvalInput, compute_metrics, register_metric
from gannotate.metrics.yaw import LANDMARK_YAW_BINS, bin_labels, bin_masks, yaw_of

__all__ = [
    "failure_rate",
    "ced",
    "auc",
    "EvalReport",
    "evaluate_points",
    "evaluate_folders",
    "markdown_table",
    "draw_ced",
]


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
    for label, sel in bin_masks(e.yaw, LANDMARK_YAW_BINS).items():
        out[label] = float(np.mean(e.nme[sel])) if sel.any() else float("nan")
        out[f"n_{label}"] = int(sel.sum())
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
        except InputFileError as e:  # read_pts names the file it could not read
            failures.append(Failure(e.path, str(e)))
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


def markdown_table(summaries: Mapping[str, dict]) -> str:
    """Rows = named summaries; columns: NME all, by yaw bin (with counts), FR@8, FR@10, AUC@8."""
    bins = bin_labels(LANDMARK_YAW_BINS)
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
