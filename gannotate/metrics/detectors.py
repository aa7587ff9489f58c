"""Detectors on real and generated faces: NME of one or several checkpoints, CED comparisons, fidelity.

Fidelity asks whether generated targets are ground truth: a detector's NME on a generated set
(targets as truth) over its NME on real faces; about 1 means the targets are as good as real labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from gannotate.errors import DatasetError, SchemeError
from gannotate.metrics.nme import EvalReport, draw_ced, evaluate_points, markdown_table

if TYPE_CHECKING:
    from gannotate.detector.predict import Detector

__all__ = [
    "evaluate_detector",
    "evaluate_detectors",
    "Comparison",
    "compare_checkpoints",
    "FidelityReport",
    "fidelity",
]


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
