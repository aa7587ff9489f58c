"""Which target shapes each face gets: pose spread, expression jitter, in-plane roll; deterministic.

For one input face (its landmarks in the crop frame), :func:`plan_face` fits the point
distribution model, keeps the face's scale and centre, and makes ``n`` targets:

* yaw over ``yaw`` degrees, evenly (``sampling="grid"``) or uniformly at random (``"uniform"``);
* pitch and roll (in-plane rotation) drawn uniformly from their ranges when given, else the fitted
  values are kept;
* expression = fitted expression + ``expression`` · model std · N(0, 1) (clipped at ±2.5),
  in shape-model units.

Randomness comes from a per-face generator seeded with ``(seed, hash(face key))``, so a face gets the
same plan whether it runs alone, in a shard or after a resume.

**Nearer side** (``mirror``, on by default): each target is rendered from the source or from its mirror
image (image flipped, landmarks flipped with the scheme's flip table), whichever needs the smaller yaw
turn; the plan records the choice (``mirrored``) and the turn (``turn``). Why: renders break where the
target turns the head away from what the photo shows (README, "Which renderer"); a face at +25° asked
for −45° turns 70° from the photo but only 20° from its mirror. The choice uses the shape model's fit
of the source and of its mirror, so it is part of the plan: deterministic, the same in every worker.

**Redraws** (the quality gate, :mod:`gannotate.metrics.quality`): a target whose render fails the gate
is replaced by :func:`redraw_target`'s draw ``d`` of the same slot, from a generator seeded with
``(seed, key, slot, d)`` — the same replacement wherever and whenever it is made. What every draw of a
face shares (the shape-model fit of it and of its mirror, its 3D face fit) is a :class:`SourceFit`, made
once by :func:`fit_source` and passed to each draw: a redraw then costs its own target only (the fits
were 80 % of a redraw's CPU), with the same result as fitting afresh.

Convention: points are float32 ``(K, 2)`` / ``(n, K, 2)`` ``(x, y)``, 0-based pixel centres, in the
crop; angles in degrees; pose rows are ``(yaw, pitch, roll)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gannotate.errors import GannotateError, check_points
from gannotate.landmarks import flip_points

__all__ = ["PlanConfig", "Plan", "SourceFit", "face_rng", "fit_source", "plan_face", "redraw_target", "pose_of",
           "DEFAULT_EXPRESSION_SCALE",
           "DEFAULT_MIN_QUALITY", "DEFAULT_QUALITY_MEASURES", "QUALITY_MEASURES", "MAX_DRAWS"]

#: Expression jitter (in model standard deviations) when neither the user nor the model sets one.
DEFAULT_EXPRESSION_SCALE = 0.5
_TRUNCATION = 2.5  # expression noise is clipped here (std units), as PointDistributionModel.sample does


#: |yaw| up to which the shape model's targets are 3D-consistent faces. Beyond it the cubic pose basis runs out
#: of training faces and the far-side jaw bulges past the nose: the profile renderer's 3D fit to the targets
#: leaves a median 4.4 / 5.5 / 7.3% NME at 0–15 / 15–30 / 30–45°, but 10.2% at 45–52.5° and 16.5% at 52.5–60°
#: (``fit_residual`` of 1,640 profile targets at ±60°, README "Which yaw range"). Beyond it, targets are
#: re-drawn by the 3D face (``large_yaw="3d"``, :mod:`gannotate.targets3d`) unless asked otherwise.
#: The same limit of real annotated faces bounds the shipped detector (``reader_nme`` is judged up to it,
#: :mod:`gannotate.metrics.quality`) and opens the last landmark-accuracy bin (:mod:`gannotate.metrics.yaw`):
#: the one definition of the 45° line.
RELIABLE_YAW = 45.0
#: what targets beyond :data:`RELIABLE_YAW` are: "3d" (the 3D face's rendition), "shape-model" (as drawn)
LARGE_YAW_TARGETS = ("3d", "shape-model")
#: how a target turns the head (measured in docs/results/renderers.md, "Targets that turn like a head"):
#: "shape-model" (the shape model's pose basis, the paper's way; its faces grow a longer chin as they turn),
#: "3d" (the source's 3D face turned rigidly, :func:`gannotate.targets3d.turned_targets`; the shape model adds
#: only the expression jitter; the jaw marched along the mesh's silhouette) or "mixed" (:data:`MIXED_3D_SHARE`
#: of the way from "shape-model" to "3d", keeping the shape model's jaw contour laid on the turned inner
#: points, :func:`gannotate.targets3d.with_shape_model_jaw`).
TURNS = ("shape-model", "mixed", "3d")
#: the turns that move the source's 3D face
TURNED_BY_3D = ("mixed", "3d")
#: "mixed": how far a target's inner points move from the shape model's turn towards the 3D face's within ±45°
#: (all the way by 60°, where the shape model's own targets leave the head, so from there "mixed" is "3d").
#: Half: nearly as many 45° renders read as faces as with all of the way (86% vs 88% on 69 held-out faces), and
#: a detector trained with its data gains what one trained with the shape model's gains (all of the way: less).
MIXED_3D_SHARE = 0.5
#: ``gannotate augment``'s turn (:class:`PlanConfig` keeps the paper's, "shape-model", for library callers).
#: Measured on 69 held-out faces with the nearer side and the gate: dlib finds 86% of its 45° renders against
#: 76% with the shape model's turn, and a detector trained with its data gains as much on real turned faces
#: (−30% at 30°+ for both, 5 seeds; docs/results/renderers.md, "Targets that turn like a head").
DEFAULT_TURN = "mixed"
#: ``gannotate augment`` keeps each target's nose tip and mouth corners inside its jaw outline within ±45°
#: (:mod:`gannotate.outline`; ``PlanConfig.enclose``, off for library callers as the paper's targets are).
DEFAULT_ENCLOSE = True

#: Per-sample quality measures the job can compute (:mod:`gannotate.metrics.quality` defines them).
QUALITY_MEASURES = ("face_score", "reader_nme", "identity")
#: The measures a plain run computes. SFace ``identity`` costs about 20 ms of CPU per sample (more than a
#: profile render), so it is asked for by name (``--quality face_score,reader_nme,identity``).
DEFAULT_QUALITY_MEASURES = ("face_score", "reader_nme")
#: The gate a plain ``gannotate augment`` applies (``--min-quality``); 0.5 puts each measure at its own pass
#: line (YuNet score 0.90, reader NME 10 %, SFace cosine 0.363: each what real faces pass). Chosen from
#: measurements on held-out photos: docs/quality.md.
#: ``PlanConfig`` itself keeps every sample unless asked: recipes and evidence that measure a renderer
#: (compare_renderers, payoff) must see its failures, not a gated selection.
DEFAULT_MIN_QUALITY = 0.5
#: Draws per target slot under the gate (``--max-draws``): the plan's own, then up to ``MAX_DRAWS - 1`` redraws; a
#: slot whose draws all fail is left out of the dataset (counted in the manifest). A slot that failed twice is
#: mostly a hard face at that yaw: the third and fourth draws passed 10–21% of the time (profile, held-out faces:
#: 69 × 9 slots over ±45° and ±60°, 30 × 40 over ±45°). ``--max-draws 3`` is about 4% faster for 1–2.4% fewer
#: samples (docs/quality.md, "Cost"); the default keeps the samples.
MAX_DRAWS = 4
#: the draws every gated dataset made before ``max_draws`` was an option had (its identity leaves this value out)
_DRAWS_BEFORE_OPTION = 4


@dataclass(frozen=True)
class PlanConfig:
    """How targets are chosen (the CLI's --n, --poses, --pose-sampling, --pitch, --roll, --expression)."""

    n: int = 8                                   # targets per face
    yaw: tuple[float, float] = (-45.0, 45.0)     # degrees, target yaw range
    sampling: str = "grid"                       # "grid" (evenly spaced) or "uniform" (random)
    pitch: tuple[float, float] | None = None     # degrees; None keeps the face's pitch
    roll: tuple[float, float] | None = None      # degrees in-plane; None keeps the face's roll
    expression: float | None = None              # σ in model std units; None → the model's default
    seed: int = 0
    large_yaw: str = "3d"                        # targets beyond ±45°: "3d" (re-drawn by the 3D face) | "shape-model"
    turn: str = "shape-model"                    # how targets turn the head: one of TURNS (the CLI's default: DEFAULT_TURN)
    enclose: bool = False                        # nose tip and mouth corners inside the jaw outline within ±45° (the CLI's: on)
    mirror: bool = True                          # render each target from the source or its mirror, the nearer in yaw
    min_quality: float = 0.0                     # quality gate in [0, 1]; 0 keeps every sample (the CLI's default: DEFAULT_MIN_QUALITY)
    quality: tuple[str, ...] = DEFAULT_QUALITY_MEASURES  # per-sample measures computed (and gated on)
    max_draws: int = MAX_DRAWS                   # draws per slot under the gate (the plan's own + redraws)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise GannotateError(f"plan: n must be at least 1, got {self.n}")
        if self.sampling not in ("grid", "uniform"):
            raise GannotateError(f"plan: sampling must be 'grid' or 'uniform', got {self.sampling!r}")
        for name in ("yaw", "pitch", "roll"):
            r = getattr(self, name)
            if r is not None and r[0] > r[1]:
                raise GannotateError(f"plan: {name} range {r[0]}:{r[1]} has start > end")
        if self.expression is not None and self.expression < 0:
            raise GannotateError(f"plan: expression scale must be >= 0, got {self.expression}")
        if self.large_yaw not in LARGE_YAW_TARGETS:
            raise GannotateError(f"plan: large_yaw must be one of {LARGE_YAW_TARGETS}, got {self.large_yaw!r}")
        if self.turn not in TURNS:
            raise GannotateError(f"plan: turn must be one of {TURNS}, got {self.turn!r}")
        if not 0.0 <= self.min_quality <= 1.0:
            raise GannotateError(f"plan: min_quality must be in [0, 1], got {self.min_quality}")
        if self.max_draws < 1:
            raise GannotateError(f"plan: max_draws must be at least 1, got {self.max_draws}")
        bad = [m for m in self.quality if m not in QUALITY_MEASURES]
        if bad or len(set(self.quality)) != len(self.quality):
            raise GannotateError(f"plan: quality measures must be distinct names from {list(QUALITY_MEASURES)}, "
                                 f"got {list(self.quality)}")

    @property
    def beyond_reliable(self) -> bool:
        """Does the yaw range leave :data:`RELIABLE_YAW`? (Only then does ``large_yaw`` change anything.)"""
        return max(abs(self.yaw[0]), abs(self.yaw[1])) > RELIABLE_YAW

    @property
    def uses_3d_targets(self) -> bool:
        """Are targets beyond :data:`RELIABLE_YAW` re-drawn by the 3D face? (Turned in 3D, they need not be.)"""
        return self.beyond_reliable and self.large_yaw == "3d" and self.turn == "shape-model"

    @property
    def uses_face_model(self) -> bool:
        """Do any targets come from the (non-commercial) 3D face model? Then the dataset carries its licence."""
        return self.uses_3d_targets or self.turn in TURNED_BY_3D

    def yaw_warning(self) -> str | None:
        """A line for the user when targets beyond :data:`RELIABLE_YAW` are left as the shape model drew them."""
        if not self.beyond_reliable or self.large_yaw == "3d" or self.turn in TURNED_BY_3D:
            return None
        worst = max(abs(self.yaw[0]), abs(self.yaw[1]))
        return (f"yaw up to {worst:g}° with shape-model targets: beyond ±{RELIABLE_YAW:g}° the shape model extrapolates"
                " and its far-side jaw is not a real face's (README, 'Which yaw range'); those samples teach"
                " implausible shapes (the default, large_yaw 3d, re-draws them with the 3D face)")

    @property
    def gated(self) -> bool:
        """Does the quality gate reject anything (``min_quality > 0``)?"""
        return self.min_quality > 0.0

    def identity(self) -> dict[str, Any]:
        """The plan as recorded in a dataset's identity: each option only where it changes the samples.

        ``large_yaw`` only beyond ±45° (and turned by the shape model), ``turn`` only when 3D, ``mirror`` only when on, ``min_quality`` only when it gates,
        ``max_draws`` only when it gates with other than the 4 draws gated datasets had before it was an option, and
        ``quality`` only when it is not the default, ``enclose`` only when on. Why: a dataset made before an option existed (which
        made what the option's "off" value makes) stays resumable, while one made otherwise is refused
        rather than silently mixed.
        """
        from dataclasses import asdict

        d = asdict(self)
        if not (self.beyond_reliable and self.turn == "shape-model"):
            d.pop("large_yaw")
        if self.turn == "shape-model":
            d.pop("turn")
        if not self.mirror:
            d.pop("mirror")
        if not self.gated:
            d.pop("min_quality")
        if not self.gated or self.max_draws == _DRAWS_BEFORE_OPTION:
            d.pop("max_draws")
        if tuple(self.quality) == DEFAULT_QUALITY_MEASURES:
            d.pop("quality")
        if not self.enclose:
            d.pop("enclose")
        return d


@dataclass(frozen=True)
class Plan:
    """The targets for one face.

    Attributes:
        source_params: (P,) float32 fitted parameter vector of the input (``Params.to_vector``).
        params: (n, P) float32 target parameter vectors.
        points: (n, K, 2) float32 target landmarks in the crop frame (= ``model.instances(params)``).
        pose: (n, 3) float32 target (yaw, pitch, roll) in degrees.
        mirrored: (n,) bool, render from the mirror image of the source (see the module doc).
        turn: (n,) float32 degrees, |target yaw − yaw of the side rendered from|.
    """

    source_params: np.ndarray
    params: np.ndarray
    points: np.ndarray
    pose: np.ndarray
    mirrored: np.ndarray
    turn: np.ndarray

    def __len__(self) -> int:
        return len(self.params)


def face_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the face's stable ``key`` (not on run order)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def pose_of(params: Any) -> np.ndarray:
    """(N, 3) float32 (yaw, pitch, roll) of PDM ``Params``; roll is the in-plane rotation theta."""
    return np.stack([np.asarray(params.yaw), np.asarray(params.pitch), np.asarray(params.theta)], axis=-1).astype(
        np.float32
    )


def _centre(points: np.ndarray) -> np.ndarray:
    """Landmark-box centre of (..., K, 2) points → (..., 2)."""
    return (points.min(axis=-2) + points.max(axis=-2)) / 2.0


@dataclass
class SourceFit:
    """What every draw of one face shares: made once by :func:`fit_source`, reused by each redraw.

    Attributes:
        points: (K, 2) float32 the face's landmarks (as checked); mirror: whether ``mirror_yaw`` was fitted.
        base: the shape model's ``Params`` fit of the face; yaw: its yaw; mirror_yaw: its mirror image's yaw
            (None without ``mirror``).
        face3d: the 3D face fit of the source, made on the first target beyond ±45° that needs it.
    """

    points: np.ndarray
    mirror: bool
    base: Any
    yaw: float
    mirror_yaw: float | None
    face3d: Any = None

    def matches(self, points: np.ndarray, mirror: bool) -> bool:
        return self.mirror == mirror and np.array_equal(self.points, points)

    def face3d_fit(self) -> Any:
        """The source's 3D face fit (:func:`gannotate.targets3d.fit_source`), fitted on first use."""
        if self.face3d is None:
            from gannotate.targets3d import fit_source as fit_face

            self.face3d = fit_face(self.points)
        return self.face3d


def fit_source(model: Any, points: np.ndarray, mirror: bool) -> SourceFit:
    """The shape-model fit of a face, its yaw, and (with ``mirror``) the yaw of its mirror image."""
    pts = check_points(points, model.n_points, "points")
    base = model.fit(pts[None].astype(np.float64))
    yaw = float(pose_of(base)[0, 0])
    mirror_yaw = None
    if mirror:
        flipped = flip_points(pts.astype(np.float64), 0)  # the pose does not depend on the image width
        mirror_yaw = float(pose_of(model.fit(flipped[None]))[0, 0])
    return SourceFit(pts.copy(), mirror, base, yaw, mirror_yaw)


def _source_fit(model: Any, pts: np.ndarray, mirror: bool, fit: SourceFit | None) -> SourceFit:
    """``fit`` when it is this face's (with this ``mirror``), else a fresh one."""
    if fit is not None and fit.matches(pts, mirror):
        return fit
    return fit_source(model, pts, mirror)


def _sides(target_yaw: np.ndarray, yaw: float, mirror_yaw: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(mirrored, turn)``: per target, the side needing the smaller yaw turn (ties: the source itself)."""
    turn = np.abs(np.asarray(target_yaw, np.float64) - yaw)
    if mirror_yaw is None:
        return np.zeros(len(turn), bool), turn.astype(np.float32)
    turn_m = np.abs(np.asarray(target_yaw, np.float64) - mirror_yaw)
    mirrored = turn_m < turn
    return mirrored, np.where(mirrored, turn_m, turn).astype(np.float32)


def _targets(model: Any, fit: SourceFit, yaw: np.ndarray, rng: np.random.Generator,
             cfg: PlanConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets at ``yaw`` (n,) with pitch, roll and expression drawn from ``rng``: (params, points, pose)."""
    pts, base = fit.points, fit.base
    n = len(yaw)
    # draw every random number in a fixed order, whatever is kept, so options do not shift others
    pitch_u, roll_u = rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.0, n)
    noise = np.clip(rng.standard_normal((n, int(model.n_expression))), -_TRUNCATION, _TRUNCATION)

    tgt = base[np.zeros(n, dtype=np.int64)]  # the fitted face, n times (float64, exact)
    changes: dict[str, np.ndarray] = {"yaw": np.asarray(yaw, np.float64)}
    if cfg.pitch is not None:
        changes["pitch"] = cfg.pitch[0] + (cfg.pitch[1] - cfg.pitch[0]) * pitch_u
    if cfg.roll is not None:
        changes["theta"] = cfg.roll[0] + (cfg.roll[1] - cfg.roll[0]) * roll_u
    sigma = DEFAULT_EXPRESSION_SCALE if cfg.expression is None else cfg.expression
    std = np.asarray(model.expression_std, dtype=np.float64)
    changes["expression"] = np.asarray(tgt.expression, dtype=np.float64) + sigma * std * noise
    tgt = replace(tgt, **changes)

    # keep the centre: translation is additive in the PDM, so shift tx/ty by the box-centre offset
    shift = _centre(pts.astype(np.float64)) - _centre(np.asarray(model.instances(tgt), np.float64))  # (n, 2)
    tgt = replace(tgt, tx=np.asarray(tgt.tx, np.float64) + shift[:, 0], ty=np.asarray(tgt.ty, np.float64) + shift[:, 1])
    target_points = np.asarray(model.instances(tgt), dtype=np.float32)
    pose = pose_of(tgt)
    if cfg.turn in TURNED_BY_3D:  # the head turns as the source's 3D face does; the shape model adds the expression
        from gannotate.targets3d import blend_weight, turned_targets, with_shape_model_jaw

        calm = np.asarray(model.instances(replace(tgt, expression=base[np.zeros(n, dtype=np.int64)].expression)), np.float64)
        expression = target_points.astype(np.float64) - calm
        turned = turned_targets(pts, pose_of(base)[0], pose, source_fit=fit.face3d_fit()) + expression.astype(np.float32)
        if cfg.turn == "mixed":
            share = (MIXED_3D_SHARE + (1.0 - MIXED_3D_SHARE) * blend_weight(pose[:, 0]))[:, None, None]
            turned = (1.0 - share) * target_points + share * with_shape_model_jaw(turned, target_points, pose[:, 0])
        target_points = np.asarray(turned, np.float32)
    elif cfg.uses_3d_targets:  # beyond ±45°: the shape model's request as a real head shows it
        from gannotate.targets3d import blend_weight, consistent_targets

        face3d = fit.face3d_fit() if (blend_weight(pose[:, 0]) > 0).any() else None
        target_points = consistent_targets(pts, pose_of(base)[0], target_points, pose, source_fit=face3d)
    moved = np.full(n, cfg.turn in TURNED_BY_3D or cfg.uses_3d_targets)  # the 3D face moved the jaw
    if cfg.enclose:
        from gannotate.outline import enclose

        enclosed = enclose(target_points, pose[:, 0], RELIABLE_YAW)
        moved |= (enclosed != target_points).any(axis=(1, 2))
        target_points = enclosed
    if moved.any():
        # the jaw moved, so the landmark box moved: centre it again, as every target is centred
        shift = _centre(pts.astype(np.float64)) - _centre(target_points[moved].astype(np.float64))
        target_points[moved] += shift[:, None, :].astype(np.float32)
    return np.asarray(tgt.to_vector(), np.float32), target_points, pose


def _grid(cfg: PlanConfig) -> np.ndarray:
    a, b = cfg.yaw
    return np.linspace(a, b, cfg.n) if cfg.n > 1 else np.array([(a + b) / 2.0])


def plan_face(model: Any, points: np.ndarray, key: str, cfg: PlanConfig, fit: SourceFit | None = None) -> Plan:
    """Fit the shape model to one face and make ``cfg.n`` targets.

    Scale is kept by construction (the fitted scale is reused); the centre is kept by translating each
    target so that its landmark-box centre is the input's, which keeps turned faces inside the crop.

    Args:
        model: a ``shape_model.pdm.PointDistributionModel``.
        points: (K, 2) landmarks of the input in the crop frame.
        key: the face's stable id (seeds its generator).
        cfg: the plan settings.
        fit: this face's :func:`fit_source` (made here when None or another face's).

    Returns:
        Plan with n targets.
    """
    pts = check_points(points, model.n_points, "points")
    rng = face_rng(cfg.seed, key)
    fit = _source_fit(model, pts, cfg.mirror, fit)
    yaw = _grid(cfg) if cfg.sampling == "grid" else rng.uniform(cfg.yaw[0], cfg.yaw[1], cfg.n)
    params, target_points, pose = _targets(model, fit, yaw, rng, cfg)
    mirrored, turn = _sides(pose[:, 0], fit.yaw, fit.mirror_yaw)
    return Plan(
        source_params=np.asarray(fit.base.to_vector(), np.float32).reshape(-1),
        params=params,
        points=target_points,
        pose=pose,
        mirrored=mirrored,
        turn=turn,
    )


def redraw_target(model: Any, points: np.ndarray, key: str, cfg: PlanConfig, slot: int, draw: int,
                  fit: SourceFit | None = None) -> Plan:
    """Draw ``draw`` (≥ 1) of target ``slot``: the replacement for a target that failed the quality gate.

    Yaw: a new uniform draw over ``cfg.yaw`` (``sampling="uniform"``), or, on a grid, the slot's grid yaw
    moved uniformly within half a grid step (so the yaw spread stays the one asked for); pitch, roll and
    expression are drawn afresh as :func:`plan_face` draws them. Depends only on ``(seed, key, slot, draw)``.
    ``fit``: the face's :func:`fit_source`, shared by its draws (made here when None or another face's).

    Returns:
        Plan with one target.
    """
    if draw < 1 or not 0 <= slot < cfg.n:
        raise GannotateError(f"redraw: need draw >= 1 and 0 <= slot < {cfg.n}, got draw {draw}, slot {slot}")
    pts = check_points(points, model.n_points, "points")
    rng = face_rng(cfg.seed, f"{key}\x00redraw\x00{slot}\x00{draw}")
    fit = _source_fit(model, pts, cfg.mirror, fit)
    a, b = cfg.yaw
    if cfg.sampling == "uniform":
        yaw = rng.uniform(a, b, 1)
    else:
        half = (b - a) / (2.0 * (cfg.n - 1)) if cfg.n > 1 else (b - a) / 2.0
        yaw = np.clip(_grid(cfg)[slot] + rng.uniform(-half, half, 1), a, b)
    params, target_points, pose = _targets(model, fit, yaw, rng, cfg)
    mirrored, turn = _sides(pose[:, 0], fit.yaw, fit.mirror_yaw)
    return Plan(np.asarray(fit.base.to_vector(), np.float32).reshape(-1), params, target_points, pose, mirrored, turn)
