"""Scoring the detector payoff: per-face errors by |yaw|, seeds' spread, a paired bootstrap, verdicts.

Two error measures per test face, both per |yaw| range of the truth (shape-model estimate):

* ``nme``: ours (68 points / outer-eye distance, %), comparable with everything else in gannotate;
* ``box51``: the field's large-pose measure (51 inner points / √(w·h) of the truth box, %), which
  does not explode as the eyes close up towards profile (``landmarks.nme_box_inner``).

Each arm is compared with ``real`` (same scenario, same seeds) twice: by the seeds' spread (the
difference of the means beyond √(s²_real + s²_arm)) and by a paired bootstrap over test faces of
the per-face difference averaged over seeds (95% interval). A verdict (*helps* / *hurts*) is given
only where both agree; otherwise *no change* (both say so) or *unclear*.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gannotate.errors import GannotateError
from gannotate.metrics.yaw import LANDMARK_YAW_BINS, bin_label

__all__ = ["RANGES", "FaceScores", "score_faces", "paired_bootstrap", "summarise", "verdict", "payoff_markdown",
           "score_experiment"]

RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, math.inf),
    **{bin_label(lo, hi): (lo, hi) for lo, hi in LANDMARK_YAW_BINS},
    "<28": (0.0, 28.0), "30+": (30.0, math.inf), "35+": (35.0, math.inf),
}
"""|yaw| ranges (degrees) scored: all faces, the landmark bins of :mod:`gannotate.metrics.yaw`, then
the headline groups (the frontal side of the turned split, and the goals' 30°+ and 35°+)."""

MEASURES = ("nme", "box51")
REAL = "real"


@dataclass(frozen=True)
class FaceScores:
    """One detector on one test set: per-face errors (%) and |yaw| (degrees), faces in a fixed order."""

    keys: tuple[str, ...]
    yaw: np.ndarray  # (N,)
    nme: np.ndarray  # (N,)
    box51: np.ndarray  # (N,)

    def mask(self, rng: str) -> np.ndarray:
        lo, hi = RANGES[rng]
        return (self.yaw >= lo) & (self.yaw < hi)

    def to_dict(self) -> dict:
        return {"keys": list(self.keys), "yaw": self.yaw.round(2).tolist(), "nme": self.nme.round(4).tolist(),
                "box51": self.box51.round(4).tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FaceScores":
        return cls(tuple(d["keys"]), *(np.asarray(d[k], np.float64) for k in ("yaw", "nme", "box51")))


def score_faces(keys: Sequence[str], pred: np.ndarray, truth: np.ndarray) -> FaceScores:
    """Per-face scores of (N, 68, 2) predictions against the truth."""
    from gannotate.metrics.yaw import yaw_of
    from gannotate.landmarks import nme, nme_box_inner

    yaw = yaw_of(truth)
    if yaw is None:
        raise GannotateError("the payoff scores 68-point faces only")
    return FaceScores(tuple(keys), np.abs(yaw), nme(pred, truth), nme_box_inner(pred, truth))


def paired_bootstrap(diff: np.ndarray, n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of per-face paired differences (resampling faces).

    Args:
        diff: (N,) per-face difference arm − real (already averaged over seeds).
    Returns:
        (low, high) of the ``level`` interval; (nan, nan) with fewer than 2 faces.
    """
    d = np.asarray(diff, np.float64)
    if d.size < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def verdict(delta: float, spread: float, ci: tuple[float, float]) -> str:
    """*helps* / *hurts* where the seeds' spread and the bootstrap agree; *no change* where neither sees a
    difference; *unclear* where they disagree (lower is better)."""
    if not (math.isfinite(delta) and all(math.isfinite(c) for c in ci)):
        return ""
    by_seeds = abs(delta) > spread
    by_faces = ci[1] < 0 or ci[0] > 0
    if by_seeds and by_faces:
        return "helps" if delta < 0 else "hurts"
    return "no change" if not (by_seeds or by_faces) else "unclear"


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def summarise(arms: Mapping[str, Mapping[int, FaceScores]]) -> dict[str, dict[str, Any]]:
    """arm → {measure/range: {mean, std, n_seeds, n_faces, delta, rel, ci, verdict}} against ``real``.

    ``rel`` is the relative change of the mean (arm / real − 1); ``ci`` the bootstrap interval of the
    paired difference over faces, both on the seeds ``real`` and the arm share.
    """
    if REAL not in arms:
        raise GannotateError("payoff: no complete run of the real-only arm to compare against")
    out: dict[str, dict[str, Any]] = {}
    for arm, seeds in arms.items():
        row: dict[str, Any] = {}
        shared = sorted(set(seeds) & set(arms[REAL]))
        for m in MEASURES:
            for r in RANGES:
                per_seed = np.array([_mean(getattr(s, m)[s.mask(r)]) for s in seeds.values()])
                cell: dict[str, Any] = {
                    "mean": _mean(per_seed), "std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
                    "n_seeds": len(per_seed), "n_faces": int(next(iter(seeds.values())).mask(r).sum())}
                if arm != REAL and shared:
                    a = np.mean([getattr(seeds[s], m) for s in shared], axis=0)
                    b = np.mean([getattr(arms[REAL][s], m) for s in shared], axis=0)
                    sel = arms[REAL][shared[0]].mask(r)
                    ref = np.array([_mean(getattr(arms[REAL][s], m)[sel]) for s in shared])
                    own = np.array([_mean(getattr(seeds[s], m)[sel]) for s in shared])
                    delta = _mean(own) - _mean(ref)
                    spread = math.hypot(own.std(ddof=1), ref.std(ddof=1)) if len(shared) > 1 else 0.0
                    ci = paired_bootstrap((a - b)[sel])
                    cell.update(delta=delta, rel=delta / _mean(ref) if _mean(ref) else float("nan"), ci=list(ci),
                                verdict=verdict(delta, spread, ci), seeds_compared=shared)
                row[f"{m}/{r}"] = cell
        for name, fn in (("fr8", lambda x: 100.0 * float(np.mean(x > 8.0))), ("auc8", _auc8)):
            vals = np.array([fn(s.nme) for s in seeds.values()])
            row[name] = {"mean": _mean(vals), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}
        out[arm] = row
    return out


def _auc8(nmes: np.ndarray) -> float:
    from gannotate.metrics.nme import auc

    return auc(nmes, 8.0)


def _fmt(c: Mapping[str, Any], fmt: str = ".2f") -> str:
    if not math.isfinite(c.get("mean", float("nan"))):
        return "–"
    s = format(c["mean"], fmt)
    return s + (f" ± {format(c['std'], fmt)}" if c.get("n_seeds", 2) > 1 else "")


def _delta(c: Mapping[str, Any]) -> str:
    if "delta" not in c or not math.isfinite(c["delta"]):
        return "–"
    lo, hi = c["ci"]
    return f"{100 * c['rel']:+.0f}% [{lo:+.2f}, {hi:+.2f}] {c['verdict']}"


def payoff_markdown(summary: Mapping[str, Mapping[str, Any]], title: str = "", measure: str = "nme") -> str:
    """One row per arm: mean ± std over seeds per |yaw| range, FR/AUC, and the change against real at 30°+,
    35°+ and <28° (relative change, bootstrap 95% interval of the paired difference, verdict)."""
    ranges = ("all", "0-15", "15-30", "30-45", "45+", "30+", "35+")
    head = ["arm", "seeds"] + [f"{measure} {r}" if i == 0 else r for i, r in enumerate(ranges)] + [
        "FR@8 %", "AUC@8", "Δ 30+ vs real", "Δ 35+ vs real", "Δ <28 vs real"]
    lines = ([f"**{title}**", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, row in summary.items():
        first = row[f"{measure}/all"]
        n = [f"{first['n_seeds']}"]
        cells = [arm] + n + [_fmt(row[f"{measure}/{r}"]) for r in ranges] + [
            _fmt(row["fr8"] | {"n_seeds": first["n_seeds"]}, ".1f"), _fmt(row["auc8"] | {"n_seeds": first["n_seeds"]}, ".3f"),
            _delta(row[f"{measure}/30+"]), _delta(row[f"{measure}/35+"]), _delta(row[f"{measure}/<28"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    faces = next(iter(summary.values()))
    lines.append("")
    lines.append("Faces per range: " + ", ".join(f"{r} {faces[f'{measure}/{r}']['n_faces']}" for r in ranges) + ".")
    return "\n".join(lines) + "\n"


def score_experiment(runs: Mapping[tuple[str, str, int], Path], tests: Mapping[str, Path], out: Path,
                     steps: int) -> dict[str, Any]:
    """Score every complete run on every test set; write ``payoff.json``, ``payoff.md`` and CEDs per bin.

    Args:
        runs: (scenario, arm, seed) → checkpoint; incomplete or missing ones are left out (a partial
            experiment: each row says how many seeds it holds).
        tests: test name → folder / list file of annotated photos.
        out: where the outputs go.
        steps: a run is complete when its checkpoint holds this many steps.
    """
    from gannotate.detector.model import training_complete
    from gannotate.detector.predict import Detector, predict_annotated_many
    from gannotate.metrics.nme import draw_ced
    from gannotate.io.atomic import atomic_write_text

    done = {k: p for k, p in runs.items() if training_complete(p, steps)}
    if not done:
        raise GannotateError(f"payoff: no complete run under {out} to score yet")
    dets = {k: Detector.load(p) for k, p in done.items()}
    doc: dict[str, Any] = {"tests": {}, "per_face": {}}
    md: list[str] = []
    for test, truth in tests.items():
        failures: list = []
        keys, truths, preds = [], [], {k: [] for k in dets}
        for key, pred, t in predict_annotated_many(truth, dets, failures):  # each photo read once
            keys.append(key)
            truths.append(t)
            for k, p in pred.items():
                preds[k].append(p)
        truth_arr = np.stack(truths)
        scores = {k: score_faces(keys, np.stack(v), truth_arr) for k, v in preds.items()}
        for scenario in sorted({k[0] for k in scores}):
            arms: dict[str, dict[int, FaceScores]] = {}
            for (s, arm, seed), fs in sorted(scores.items(), key=lambda kv: (kv[0][1] != REAL, kv[0])):
                if s == scenario:
                    arms.setdefault(arm, {})[seed] = fs
            if REAL not in arms:
                continue
            summary = summarise(arms)
            doc["tests"].setdefault(test, {})[scenario] = summary
            doc["per_face"].setdefault(test, {})[scenario] = {a: {str(s): fs.to_dict() for s, fs in d.items()}
                                                              for a, d in arms.items()}
            for m in MEASURES:
                md.append(payoff_markdown(summary, f"{scenario} · test {test} · {m}", m))
            for r in ("0-15", "15-30", "30-45", "45+", "30+"):
                curves = {a: np.concatenate([fs.nme[fs.mask(r)] for fs in d.values()]) for a, d in arms.items()}
                if all(len(c) for c in curves.values()):
                    draw_ced(curves, out / "ced" / f"{scenario}_{test}_{r.replace('+', 'plus')}.png",
                             limit=20.0 if r in ("30-45", "45+", "30+") else 10.0)
    atomic_write_text(out / "payoff.json", json.dumps(doc, default=float) + "\n")
    atomic_write_text(out / "payoff.md", "\n".join(md))
    return doc
