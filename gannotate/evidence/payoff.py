"""Detector payoff: does a renderer's data make a landmark detector better, and at which yaw range?

The question users ask before they spend compute. One experiment answers it per renderer:

* arm ``real``: the detector trained on the real training faces only;
* arm ``<renderer>±<r>``: the same network, steps and seed on the real faces plus ``augment``'s output
  of that renderer on the *same* training faces, targets drawn uniformly in yaw ±r.

Every arm runs once per seed (network init and batch order); each is scored on the same held-out
real faces (NME by |yaw| bin of the truth, FR@8, AUC@8) and, optionally, on further test sets.
The summary is the mean ± std over seeds, the difference to ``real`` and a verdict per arm:
*helps* / *hurts* only when the difference is larger than the seeds' spread
(√(s²_real + s²_arm)), *no change* otherwise — three seeds cannot resolve less.

Generated sets and trained arms are kept under ``out/``: a rerun skips what is complete, so an
interrupted experiment resumes. Arms train in ``jobs`` processes of one torch thread each (one
thread is fastest on a shared CPU).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gannotate.errors import GannotateError
from gannotate.render.base import RendererSpec

__all__ = ["PayoffConfig", "PayoffResult", "arm_name", "run_payoff", "summarise_arms", "payoff_markdown"]

log = logging.getLogger(__name__)

METRICS = ("nme", "nme_by_yaw/0-15", "nme_by_yaw/15-30", "nme_by_yaw/30-45", "nme_by_yaw/45+", "failure_8", "auc_8")
REAL_ARM = "real"


@dataclass(frozen=True)
class PayoffConfig:
    """One payoff experiment.

    Attributes:
        train, val: real training / validation faces (folder or list file; no photo in both).
        out: working folder (generated sets, arms, results); reruns resume from it.
        renderers: renderer specs whose data is tested.
        ranges: yaw half-ranges (degrees) of the generated targets, one arm per renderer and range.
        ranges_for: renderer name → its own ranges (overrides ``ranges``; e.g. fewer for a slow renderer).
        seeds: detector seeds (network init and batch order), the same for every arm.
        steps, batch_size, width: detector training (``detector.train.TrainConfig`` / ``DetectorConfig``).
        n_per_face: generated targets per training face.
        expression: expression jitter of the targets (model std units).
        jobs: arms trained at once (processes of one torch thread each).
        tests: further test sets, name → folder / list file of annotated faces.
        gen_seed: ``augment``'s seed (targets), the same for every renderer.
        train_missing: train the arm × seed runs not yet complete; False scores only the complete
            ones (a partial experiment: each arm's row says how many seeds it holds).
    """

    train: Path
    val: Path
    out: Path
    renderers: tuple[RendererSpec, ...]
    ranges: tuple[float, ...] = (60.0,)
    ranges_for: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 32
    width: int = 32
    n_per_face: int = 4
    expression: float = 0.5
    jobs: int = 1
    tests: Mapping[str, Path] = field(default_factory=dict)
    gen_seed: int = 0
    train_missing: bool = True

    def __post_init__(self) -> None:
        if not self.seeds:
            raise GannotateError("payoff: give at least one seed")
        for r in (self.ranges, *self.ranges_for.values()):
            if not r or any(x <= 0 for x in r):
                raise GannotateError(f"payoff: yaw ranges must be positive (and at least one), got {r}")
        if self.steps < 1 or self.jobs < 1 or self.n_per_face < 1:
            raise GannotateError("payoff: steps, jobs and n_per_face must be at least 1")

    def ranges_of(self, renderer: str) -> tuple[float, ...]:
        return tuple(self.ranges_for.get(renderer, self.ranges))


def arm_name(renderer: str, yaw_range: float) -> str:
    """``profile±60``: the renderer and the yaw half-range of its targets."""
    return f"{renderer}±{yaw_range:g}"


@dataclass
class PayoffResult:
    """Per test set: arm → {metric: (mean, std)} plus the deltas and verdicts against ``real``; CED plots."""

    summary: dict[str, dict[str, dict[str, Any]]]
    ced: dict[str, Path]
    per_seed: dict[str, dict[str, dict[str, dict]]]
    generated: dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Generation and training (resumable)
# ---------------------------------------------------------------------------------------------


def _generate(cfg: PayoffConfig, spec: RendererSpec, yaw_range: float) -> dict[str, Any]:
    """``augment`` the training faces with one renderer at yaw ±range (uniform); resumes a partial set."""
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.plan import PlanConfig

    out = cfg.out / "generated" / arm_name(spec.name, yaw_range).replace("±", "_pm")
    plan = PlanConfig(n=cfg.n_per_face, yaw=(-yaw_range, yaw_range), sampling="uniform",
                      expression=cfg.expression, seed=cfg.gen_seed)
    res = run_augment(AugmentConfig(out=out, input=cfg.train, plan=plan, renderer=spec, formats=("h5",),
                                    command=f"payoff: {arm_name(spec.name, yaw_range)}"))
    return {"dataset": str(out / "dataset.h5"), "samples": res.n_total, "failed_sources": len(res.failures)}


def _train_arm(sources: Sequence[str], run_dir: str, seed: int, steps: int, batch_size: int, width: int,
               val: str) -> str:
    """One arm, one seed, one torch thread (run in a worker process)."""
    import torch

    from gannotate.detector.data import AugmentConfig, canvas_size, load_training_faces
    from gannotate.detector.model import DetectorConfig
    from gannotate.detector.train import TrainConfig, train

    torch.set_num_threads(1)
    net_cfg = DetectorConfig(width=width)
    tcfg = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, num_threads=1)
    canvas = canvas_size(net_cfg.input_size, tcfg.margin)
    faces, _ = load_training_faces(list(sources), "ibug68", canvas)
    val_faces, _ = load_training_faces([val], "ibug68", canvas)
    return str(train(faces, run_dir, tcfg, net_cfg, AugmentConfig(), val=val_faces,
                     meta={"sources": list(sources), "seed": seed}))


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def summarise_arms(per_seed: Mapping[str, Mapping[int, Mapping[str, float]]]) -> dict[str, dict[str, Any]]:
    """arm → {metric: {mean, std, n, delta, verdict}}; ``delta`` and ``verdict`` are against the ``real`` arm.

    NME-like metrics improve downwards, AUC upwards; a difference counts only beyond the combined
    seed spread √(s²_real + s²_arm) (with one seed any difference counts, and the table says n = 1).
    """
    out: dict[str, dict[str, Any]] = {}
    for arm, seeds in per_seed.items():
        row: dict[str, Any] = {}
        for m in METRICS:
            vals = np.array([s.get(m, float("nan")) for s in seeds.values()], dtype=float)
            vals = vals[np.isfinite(vals)]
            mean = float(vals.mean()) if len(vals) else float("nan")
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            row[m] = {"mean": mean, "std": std, "n": int(len(vals))}
        out[arm] = row
    real = out.get(REAL_ARM)
    for arm, row in out.items():
        for m, cell in row.items():
            if real is None or arm == REAL_ARM:
                cell["delta"], cell["verdict"] = 0.0, ""
                continue
            ref = real[m]
            delta = cell["mean"] - ref["mean"]
            spread = math.hypot(cell["std"], ref["std"])
            better = delta > 0 if m == "auc_8" else delta < 0
            cell["delta"] = delta
            if not (math.isfinite(delta)):
                cell["verdict"] = ""
            elif abs(delta) > spread:
                cell["verdict"] = "helps" if better else "hurts"
            else:
                cell["verdict"] = "no change"
    return out


def _cell(c: Mapping[str, Any], fmt: str = ".2f") -> str:
    if not math.isfinite(c["mean"]):
        return "–"
    s = format(c["mean"], fmt)
    if c["n"] > 1:
        s += f" ± {format(c['std'], fmt)}"
    return s


def payoff_markdown(summary: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
    """One row per arm: mean ± std over seeds for each metric, the NME change against ``real`` and its verdict."""
    head = ["arm", "seeds", "NME %", "\\|yaw\\| 0-15", "15-30", "30-45", "45+", "FR@8 %", "AUC@8", "Δ NME vs real"]
    lines = ([f"**{title}**", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, row in summary.items():
        cells = [arm, str(row["nme"]["n"])] + [_cell(row[m]) for m in METRICS[:5]] + [_cell(row["failure_8"], ".1f"),
                                                                                       _cell(row["auc_8"], ".3f")]
        d = row["nme"]
        cells.append("–" if arm == REAL_ARM else f"{d['delta']:+.2f} ({d['verdict']})")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def best_range(summary: Mapping[str, Mapping[str, Any]], renderer: str) -> str:
    """The range arm of ``renderer`` with the lowest mean NME and its verdict, e.g. ``±15 (no change)``."""
    arms = {a: r for a, r in summary.items() if a.startswith(renderer + "±")}
    if not arms:
        return "–"
    a = min(arms, key=lambda k: arms[k]["nme"]["mean"])
    return f"{a[len(renderer):]} ({arms[a]['nme']['verdict']}, {arms[a]['nme']['delta']:+.2f})"


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


def run_payoff(cfg: PayoffConfig) -> PayoffResult:
    """Generate, train every arm × seed (skipping complete ones), score on every test set; write payoff.json/.md."""
    from joblib import Parallel, delayed

    from gannotate.evaluate import draw_ced, evaluate_detectors

    cfg.out.mkdir(parents=True, exist_ok=True)
    arms: dict[str, list[str]] = {REAL_ARM: [str(cfg.train)]}
    generated: dict[str, dict[str, Any]] = {}
    for spec in cfg.renderers:
        for r in cfg.ranges_of(spec.name):
            name = arm_name(spec.name, r)
            log.info("payoff: generating %s", name)
            generated[name] = _generate(cfg, spec, r)
            arms[name] = [str(cfg.train), generated[name]["dataset"]]

    def run_dir(arm: str, seed: int) -> Path:
        return cfg.out / "arms" / arm.replace("±", "_pm") / f"seed{seed}"

    from gannotate.detector.model import training_complete

    # Seed-major order: an experiment stopped early has every arm at the same number of seeds.
    todo = [(arm, s) for s in cfg.seeds for arm in arms if not training_complete(run_dir(arm, s) / "checkpoint.pt", cfg.steps)]
    log.info("payoff: %d arm × seed runs to train (%d complete)", len(todo), len(arms) * len(cfg.seeds) - len(todo))
    if cfg.train_missing:
        Parallel(n_jobs=cfg.jobs, backend="loky" if cfg.jobs > 1 else "sequential")(
            delayed(_train_arm)(arms[a], str(run_dir(a, s)), s, cfg.steps, cfg.batch_size, cfg.width, str(cfg.val))
            for a, s in todo)
    done = {(a, s) for a in arms for s in cfg.seeds if (a, s) not in todo or cfg.train_missing}

    tests = {"val": cfg.val, **dict(cfg.tests)}
    summary, per_seed_all, ceds = {}, {}, {}
    for test, truth in tests.items():
        per_seed: dict[str, dict[int, dict]] = {}
        pooled: dict[str, list[np.ndarray]] = {}
        runs = [(arm, s) for arm in arms for s in cfg.seeds if (arm, s) in done]
        reports = evaluate_detectors({r: run_dir(*r) / "checkpoint.pt" for r in runs}, truth)  # photos read once
        for arm, s in runs:
            per_seed.setdefault(arm, {})[s] = reports[arm, s].summary
            pooled.setdefault(arm, []).append(reports[arm, s].nme)
        if REAL_ARM not in per_seed:
            raise GannotateError("payoff: no complete run of the real-only arm to compare against")
        summary[test] = summarise_arms(per_seed)
        per_seed_all[test] = {a: {str(k): v for k, v in d.items()} for a, d in per_seed.items()}
        # Equal faces per seed: the pooled CED is the mean of the seeds' CEDs.
        ceds[test] = draw_ced({a: np.concatenate(v) for a, v in pooled.items()}, cfg.out / f"ced_{test}.png")
    result = PayoffResult(summary, ceds, per_seed_all, generated)
    _write(cfg, result)
    return result


def _write(cfg: PayoffConfig, res: PayoffResult) -> None:
    from gannotate.io.atomic import atomic_write_text

    doc = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items() if k != "renderers"}
           | {"renderers": [{"name": s.name, "options": dict(s.options)} for s in cfg.renderers],
              "tests": {k: str(v) for k, v in cfg.tests.items()},
              "ranges_for": {k: list(v) for k, v in cfg.ranges_for.items()}},
           "generated": res.generated, "summary": res.summary, "per_seed": res.per_seed,
           "ced": {k: str(v) for k, v in res.ced.items()}}
    atomic_write_text(cfg.out / "payoff.json", json.dumps(doc, indent=2, default=float) + "\n")
    parts = [payoff_markdown(s, f"test set: {t}") for t, s in res.summary.items()]
    best = [f"- {s.name}: best range {best_range(res.summary['val'], s.name)}" for s in cfg.renderers]
    atomic_write_text(cfg.out / "payoff.md", "\n".join(parts) + "\n" + "\n".join(best) + "\n")

