"""The detector payoff protocol: does generated data make a landmark detector better, where, and how?

One experiment, in four resumable stages under ``out/``:

1. **split** (``split/``): the real photos by photo; photos with a turned face are test-only
   (:mod:`gannotate.payoff.split`).
2. **generate** (``generated/``): ``augment`` over each scenario's largest real training set, one set
   per renderer and yaw range (targets uniform in ±range), or ``data_draws`` sets of the same kind with
   successive ``augment`` seeds; a smaller scenario takes the samples of its own faces (filtered by
   source), so no test photo's renders ever train. Sets a user brings (``generated``) are filtered the
   same way.
3. **train** (``runs/<scenario>/<arm>/seed<k>/``): every arm × seed, in ``jobs`` processes of one
   torch thread; a run resumes from its last checkpoint. Every arm trains the same steps (a budget
   at which real-only has converged); recipes:

   * ``real``: the scenario's real faces only;
   * ``mixed``: real + generated, each batch ``real_share`` real (so real faces are seen as often
     per step as in ``real``, whatever the generated set's size);
   * ``pretrain``: generated only for ``steps``, then real only for ``steps`` from those weights.

   With several draws of a generated set, the run of detector seed k trains on draw k mod ``data_draws``:
   the spread over an arm's seeds then holds the draw of its data as well as the training's.
4. **score**: :mod:`gannotate.metrics.payoff` on every test set (``turned``, ``val``, and any given
   in ``tests``), written as ``payoff.json``, ``payoff.md`` and CED plots per yaw bin.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gannotate.detector.sampler import RECIPES
from gannotate.errors import GannotateError
from gannotate.payoff.split import Face, PayoffSplit, scenario_faces, split_photos
from gannotate.plan import DEFAULT_ENCLOSE, DEFAULT_TURN

__all__ = ["Scenario", "PayoffConfig", "Arm", "arms_of", "run_payoff", "prepare", "plan_jobs", "train_jobs", "train_all"]

log = logging.getLogger(__name__)

REAL_ARM = "real"


@dataclass(frozen=True)
class Scenario:
    """A situation users are in: which real faces they have.

    Attributes:
        name: e.g. ``frontal`` (S1), ``all`` (S2), ``few50`` (S3).
        max_yaw: only training faces below this |yaw| (None: all of them).
        n_faces: only this many faces, drawn by photo (None: all).
    """

    name: str
    max_yaw: float | None = None
    n_faces: int | None = None


SCENARIOS: dict[str, Scenario] = {
    "frontal": Scenario("frontal", max_yaw=20.0),
    "all": Scenario("all"),
    "few100": Scenario("few100", max_yaw=20.0, n_faces=100),
    "few50": Scenario("few50", max_yaw=20.0, n_faces=50),
}


@dataclass(frozen=True)
class Arm:
    """One way to train: a recipe over the scenario's real faces and (optionally) one generated set."""

    recipe: str  # "real", "mixed" or "pretrain"
    generated: str = ""  # key of the generated set, e.g. "profile±45"

    @property
    def name(self) -> str:
        if self.recipe == REAL_ARM:
            return REAL_ARM
        return self.generated if self.recipe == "mixed" else f"{self.generated} {self.recipe}"

    @property
    def dirname(self) -> str:
        return _slug(self.name)


def _slug(name: str) -> str:
    """An arm's or a set's name as a folder name: ``profile±45 gated`` → ``profile_pm45_gated``."""
    return name.replace("±", "_pm").replace(" ", "_")


@dataclass(frozen=True)
class PayoffConfig:
    """One payoff experiment.

    Attributes:
        real: annotated photos (folder or ``<landmarks> <image>`` list file, 68 points).
        out: working folder; reruns resume from it.
        root: image root of a list file (``io.folders.discover``).
        scenarios: names in :data:`SCENARIOS`.
        renderers: registered renderers (``warp``, ``profile``, ``gan`` with its shipped refiner) to generate with.
        ranges: yaw half-ranges (degrees) of the generated targets.
        generated: sets the user brings (name → .h5), used beside (or instead of) generated ones.
        recipes: recipes for the generated data (``mixed``, ``pretrain``).
        arms: arm names to run (empty: every renderer/range/recipe combination).
        seeds: detector seeds, shared by every arm.
        steps, batch_size, width: detector training per arm (pretrain: steps each phase).
        real_share: share of real faces per batch (``mixed``).
        n_per_face, expression, size, margin: ``augment`` settings of the generated sets.
        turned_yaw, val_fraction, split_seed: the split (:func:`split_photos`).
        tests: further test sets, name → folder / list file (e.g. clip frames).
        jobs: runs trained at once (processes of one torch thread each).
        gen_seed: ``augment``'s seed (of the first draw; draw d uses ``gen_seed + d``).
        data_draws: draws of each set generated here; detector seed k trains on draw k mod ``data_draws``.
            Why: one draw of the targets moves the turned faces' error as much as a training seed does
            (docs/results/payoff.md), so a single draw shared by every seed hides half of an arm's spread.
        gen_workers: ``augment``'s render processes.
        gate: generate as ``augment`` does by default: the nearer side (source or mirror), its quality gate
            and ``turn`` (its sets are named ``<renderer>±<range> gated``); off: every target from the
            source's own side, nothing rejected, the shape model's turn — as the headline sets were made.
        turn: how a gated set's targets turn the head (``augment --turn``).
        enclose: a gated set's targets keep the nose and mouth inside the jaw outline (``augment --enclose``).
    """

    real: Path
    out: Path
    root: Path | None = None
    scenarios: tuple[str, ...] = ("frontal",)
    renderers: tuple[str, ...] = ("profile",)
    ranges: tuple[float, ...] = (45.0, 60.0)
    generated: Mapping[str, Path] = field(default_factory=dict)
    recipes: tuple[str, ...] = ("mixed",)
    arms: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 1500
    batch_size: int = 32
    width: int = 32
    real_share: float = 0.5
    n_per_face: int = 4
    expression: float = 0.5
    size: int = 192
    margin: float = 0.4
    turned_yaw: float = 28.0
    val_fraction: float = 0.15
    split_seed: int = 0
    tests: Mapping[str, Path] = field(default_factory=dict)
    jobs: int = 1
    gen_seed: int = 0
    data_draws: int = 1
    gen_workers: int = 2
    gate: bool = False
    turn: str = DEFAULT_TURN
    enclose: bool = DEFAULT_ENCLOSE

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown:
            raise GannotateError(f"payoff: unknown scenario(s) {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
        bad = [r for r in self.recipes if r not in RECIPES]
        if bad:
            raise GannotateError(f"payoff: unknown recipe(s) {', '.join(bad)} (known: {', '.join(RECIPES)})")
        if not self.seeds or self.steps < 1 or self.jobs < 1 or self.n_per_face < 1 or self.data_draws < 1:
            raise GannotateError("payoff: give at least one seed; steps, jobs, n_per_face and data_draws must be at "
                                 "least 1")
        if any(r <= 0 for r in self.ranges):
            raise GannotateError(f"payoff: yaw ranges must be positive, got {self.ranges}")
        if not 0.0 < self.real_share < 1.0:
            raise GannotateError(f"payoff: real share must be strictly between 0 and 1, got {self.real_share}")

    def generated_keys(self) -> list[str]:
        """Generated sets, by name: ``<renderer>±<range>`` for generated ones, the user's names for theirs."""
        suffix = " gated" if self.gate else ""
        return [f"{r}±{x:g}{suffix}" for r in self.renderers for x in self.ranges] + list(self.generated)


def arms_of(cfg: PayoffConfig) -> list[Arm]:
    """Every arm of the experiment, ``real`` first (or those named in ``cfg.arms``)."""
    arms = [Arm(REAL_ARM)] + [Arm(rec, g) for g in cfg.generated_keys() for rec in cfg.recipes]
    if cfg.arms:
        names = {a.name: a for a in arms}
        missing = [n for n in cfg.arms if n not in names]
        if missing:
            raise GannotateError(f"payoff: unknown arm(s) {', '.join(missing)} (known: {', '.join(names)})")
        arms = [names[REAL_ARM]] + [names[n] for n in cfg.arms if n != REAL_ARM]
    return arms


# ---------------------------------------------------------------------------------------------
# Stages 1–2: split and generated sets
# ---------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What training and scoring need: list files per scenario / test set and the generated sets."""

    split: PayoffSplit
    train_lists: dict[str, Path]  # scenario → list file of its real faces
    train_faces: dict[str, list[Face]]
    test_lists: dict[str, Path]  # test name → list file / folder
    generated: dict[str, list[Path]]  # generated key → its draws' .h5 (a user's set: one)


def _write_faces(path: Path, faces: Sequence[Face]) -> Path:
    from gannotate.detector.data import write_list_file

    return write_list_file(path, [(f.landmarks, f.image) for f in faces])


def prepare(cfg: PayoffConfig, generate: bool = True) -> Prepared:
    """Split the photos, write the list files and generate (or resume) every generated set.

    With ``generate`` off the sets are only located (scoring a running experiment must not take the
    lock a generating or resuming ``augment`` holds).
    """
    split = split_photos(cfg.real, cfg.root, cfg.turned_yaw, cfg.val_fraction, cfg.split_seed)
    sdir = cfg.out / "split"
    faces = {s: scenario_faces(split.train, SCENARIOS[s].max_yaw, SCENARIOS[s].n_faces, cfg.split_seed)
             for s in cfg.scenarios}
    lists = {s: _write_faces(sdir / f"train_{s}.txt", f) for s, f in faces.items()}
    tests = {"turned": _write_faces(sdir / "test_turned.txt", split.turned)}
    if split.val:
        tests["val"] = _write_faces(sdir / "test_val.txt", split.val)
    tests.update({k: Path(v) for k, v in cfg.tests.items()})
    log.info("payoff split: %d training faces (%s), %d turned test faces on %d photos, %d validation faces",
             len(split.train), ", ".join(f"{s} {len(f)}" for s, f in faces.items()), len(split.turned),
             len(split.photos("turned")), len(split.val))
    # Generate from the union of the scenarios' faces: a smaller scenario filters its own samples out.
    union = sorted({f for fs in faces.values() for f in fs}, key=lambda f: str(f.landmarks))
    gen_input = _write_faces(sdir / "generate_from.txt", union)
    generated = {k: [Path(v)] for k, v in cfg.generated.items()}
    keys = iter(cfg.generated_keys())
    for spec in cfg.renderers:
        for r in cfg.ranges:
            key = next(keys)
            generated[key] = []
            for draw in range(cfg.data_draws):
                folder = cfg.out / "generated" / (_slug(key) + (f"_draw{draw}" if draw else ""))
                generated[key].append(_generate(cfg, spec, r, gen_input, folder, cfg.gen_seed + draw) if generate
                                      else folder / "dataset.h5")
    return Prepared(split, lists, faces, tests, generated)


def _generate(cfg: PayoffConfig, renderer: str, yaw_range: float, input_list: Path, out: Path, seed: int) -> Path:
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.plan import DEFAULT_MIN_QUALITY, PlanConfig
    from gannotate.render.base import RendererSpec

    plan = PlanConfig(n=cfg.n_per_face, yaw=(-yaw_range, yaw_range), sampling="uniform",
                      expression=cfg.expression, seed=seed, mirror=cfg.gate,
                      min_quality=DEFAULT_MIN_QUALITY if cfg.gate else 0.0,
                      turn=cfg.turn if cfg.gate else "shape-model", enclose=cfg.enclose and cfg.gate)
    log.info("payoff: generating %s ±%g (seed %d) into %s", renderer, yaw_range, seed, out)
    run_augment(AugmentConfig(out=out, input=input_list, plan=plan, renderer=RendererSpec(renderer),
                              formats=("h5",), size=cfg.size, margin=cfg.margin, workers=cfg.gen_workers,
                              command=f"payoff: {renderer} ±{yaw_range:g} seed {seed}"))
    return out / "dataset.h5"


# ---------------------------------------------------------------------------------------------
# Stage 3: training (resumable, parallel)
# ---------------------------------------------------------------------------------------------


def run_dir(cfg: PayoffConfig, scenario: str, arm: Arm, seed: int) -> Path:
    """An arm's run folder; an arm on several draws of its data has its own (a run on one draw is not one on many)."""
    draws = cfg.data_draws > 1 and arm.generated and arm.generated not in cfg.generated
    return cfg.out / "runs" / scenario / (arm.dirname + (f"_draws{cfg.data_draws}" if draws else "")) / f"seed{seed}"


@dataclass(frozen=True)
class _Job:
    """One arm × seed of one scenario, as plain data for a worker process."""

    run_dir: str
    real_list: str
    source_keys: tuple[str, ...]
    generated: str  # .h5 or ""
    recipe: str
    seed: int
    steps: int
    batch_size: int
    width: int
    real_share: float
    val_list: str


def plan_jobs(cfg: PayoffConfig, prep: Prepared) -> list[_Job]:
    """Seed-major, two-phase (pretrain) arms last: an experiment stopped early has every one-phase
    arm at the same number of seeds, and the costliest arms are the ones left out."""
    from gannotate.detector.model import training_complete

    jobs = []
    for seed in cfg.seeds:
        for scenario in cfg.scenarios:
            keys = tuple(sorted(k for f in prep.train_faces[scenario] for k in f.source_keys()))
            for arm in arms_of(cfg):
                d = run_dir(cfg, scenario, arm, seed)
                if training_complete(d / "checkpoint.pt", cfg.steps):
                    continue
                sets = prep.generated[arm.generated] if arm.generated else []
                jobs.append(_Job(str(d), str(prep.train_lists[scenario]), keys,
                                 str(sets[seed % len(sets)]) if sets else "", arm.recipe, seed,
                                 cfg.steps, cfg.batch_size, cfg.width, cfg.real_share,
                                 str(prep.test_lists.get("val", prep.test_lists["turned"]))))
    return sorted(jobs, key=lambda j: j.recipe == "pretrain")  # stable: seed-major within each group


def _train_job(job: _Job) -> str:
    """Train one job in this (worker) process with one torch thread; returns the checkpoint path."""
    import torch

    from gannotate.detector.data import CropAugmentConfig, canvas_size, faces_from_hdf5, load_training_faces
    from gannotate.detector.model import DetectorConfig
    from gannotate.detector.train import DetectorTrainConfig, train_with_generated
    from gannotate.landmarks import get_scheme

    torch.set_num_threads(1)
    net_cfg = DetectorConfig(width=job.width)
    tcfg = DetectorTrainConfig(steps=job.steps, batch_size=job.batch_size, seed=job.seed, num_threads=1,
                               real_share=job.real_share)
    canvas = canvas_size(net_cfg.input_size, tcfg.margin)
    real, _ = load_training_faces([job.real_list], "ibug68", canvas)
    val, _ = load_training_faces([job.val_list], "ibug68", canvas)
    gen = (faces_from_hdf5(job.generated, get_scheme("ibug68"), canvas, sources=job.source_keys)
           if job.generated else None)
    meta = {"sources": [job.real_list] + ([job.generated] if job.generated else []), "seed": job.seed,
            "n_generated_faces": 0 if gen is None else len(gen)}
    return str(train_with_generated(real, gen, job.run_dir, tcfg, job.recipe if gen is not None else "mixed",
                                    net_cfg, CropAugmentConfig(), val=val, meta=meta))


def train_jobs(jobs: Sequence[_Job], n_jobs: int = 1) -> None:
    """Train ``jobs`` (from :func:`plan_jobs`, of one or several experiments) in ``n_jobs`` processes of one
    torch thread each; logs each finished run with an ETA."""
    from joblib import Parallel, delayed

    if not jobs:
        return
    t0 = time.time()
    par = Parallel(n_jobs=n_jobs, backend="loky" if n_jobs > 1 else "sequential", return_as="generator_unordered")
    for i, ckpt in enumerate(par(delayed(_train_job)(j) for j in jobs), 1):
        rate = (time.time() - t0) / i
        log.info("payoff: run %d/%d done (%s) · %.1f min per run · ETA %.0f min", i, len(jobs), ckpt, rate / 60,
                 rate * (len(jobs) - i) / 60)


def train_all(cfg: PayoffConfig, prep: Prepared) -> None:
    """Train every missing run of ``cfg`` in ``cfg.jobs`` processes."""
    jobs = plan_jobs(cfg, prep)
    total = len(cfg.seeds) * len(cfg.scenarios) * len(arms_of(cfg))
    log.info("payoff: %d runs to train (%d complete), %d at a time", len(jobs), total - len(jobs), cfg.jobs)
    train_jobs(jobs, cfg.jobs)


def run_payoff(cfg: PayoffConfig, train_missing: bool = True) -> dict[str, Any]:
    """All four stages; returns the scored document (also written to ``out/payoff.json``)."""
    from gannotate.metrics.payoff import score_experiment

    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str) + "\n")
    prep = prepare(cfg, generate=train_missing)
    if train_missing:
        train_all(cfg, prep)
    runs = {(s, a.name, seed): run_dir(cfg, s, a, seed) / "checkpoint.pt"
            for s in cfg.scenarios for a in arms_of(cfg) for seed in cfg.seeds}
    return score_experiment(runs, prep.test_lists, cfg.out, cfg.steps)
