"""One batch of augment's work: render each target from its side, score it, redraw what fails the gate.

A :class:`BatchJob` holds plain arrays (it travels to a render worker as an ``.npz``); a
:class:`BatchProcessor` turns it into a :class:`BatchResult` — the rows to commit, in slot order — the
same way in the parent (``--workers 1``) and in every worker process:

1. each sample's source side: the crop as photographed, or its mirror image (``np.fliplr``; landmarks
   ``x' = (W − 1) − x`` re-ordered by the scheme's flip table) where the plan says ``mirrored``;
2. render the batch (:func:`~gannotate.run.render_pool.render_batch`: images, masks, fit residuals);
3. score it (:class:`~gannotate.metrics.quality.QualityScorer`), plus ``invalid_share`` from the masks;
4. with a gate (``min_quality > 0``): each failing sample's slot gets the plan's next draw
   (:func:`gannotate.plan.redraw_target`), rendered and scored as a smaller batch, up to
   ``plan.max_draws`` draws (:data:`~gannotate.plan.MAX_DRAWS` by default); a slot whose draws all fail is dropped. A draw that fails
   hopelessly (:func:`gannotate.metrics.quality.hopeless`: YuNet barely sees a face) ends its slot at once:
   on held-out faces such slots almost never passed a later draw, and their redraws were a tenth of the
   renders (docs/quality.md, "Cost"). Redraws reuse the face's fits (:class:`gannotate.plan.SourceFit`).

Why the whole loop runs inside one call: a batch's result then depends on the batch alone, not on when
other batches come back from other workers, so a dataset is the same for any ``--workers``, shard or Ray.

Convention: crops uint8 (B, S, S, 3) RGB; points float32 (B, K, 2) (x, y), 0-based pixel centres.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gannotate.landmarks import flip_points
from gannotate.plan import PlanConfig, SourceFit, fit_source, redraw_target
from gannotate.render import Renderer

__all__ = ["BatchJob", "BatchResult", "BatchProcessor", "side_of", "worker_setup"]

_PLAN_ROWS = ("targets", "params", "pose", "mirrored", "turn")
_FITS_KEPT = 64  # faces whose fits a processor keeps for their redraws (a batch spans at most batch_size faces)


def side_of(crop: np.ndarray, points: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """The source side a sample renders from: ``(crop, points)`` as given, or their mirror image."""
    if not mirrored:
        return crop, points
    return np.ascontiguousarray(crop[:, ::-1]), flip_points(points, crop.shape[1]).astype(np.float32)


@dataclass(frozen=True)
class BatchJob:
    """The targets of one batch with what rendering and redrawing them needs.

    Attributes:
        crops: (B, S, S, 3) uint8 each sample's source crop, as photographed.
        points: (B, K, 2) float32 its landmarks.
        keys: (B,) str source keys (seed the redraws); slots: (B,) int target index in the face's plan.
        mirror_ok: (B,) bool the source's mirror image may be used (its 3D fit succeeded).
        targets (B, K, 2), params (B, P), pose (B, 3), mirrored (B,) bool, turn (B,) float32: the plan's rows.
        coverage: (B, S, S) uint8 how much of each crop pixel is the photo's (255; less where the crop extends
            past the photo and is filled: :attr:`gannotate.geometry.Crop.coverage`), or None: all of it.
    """

    crops: np.ndarray
    points: np.ndarray
    keys: np.ndarray
    slots: np.ndarray
    mirror_ok: np.ndarray
    targets: np.ndarray
    params: np.ndarray
    pose: np.ndarray
    mirrored: np.ndarray
    turn: np.ndarray
    coverage: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.slots)

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (``np.savez``-able without pickle); a None field is left out."""
        return {k: np.asarray(getattr(self, k)) for k in self.__dataclass_fields__ if getattr(self, k) is not None}

    @classmethod
    def from_arrays(cls, a: Any) -> "BatchJob":
        return cls(**{k: np.asarray(a[k]) for k in cls.__dataclass_fields__ if k in a})

    def coverage_of(self, idx: np.ndarray, mirrored: np.ndarray) -> np.ndarray | None:
        """(b, S, S) float32 coverage of rows ``idx`` on the side each renders from, or None where all are covered."""
        if self.coverage is None or not (self.coverage[idx] < 255).any():
            return None
        cov = self.coverage[idx].astype(np.float32) / 255.0
        return np.ascontiguousarray(np.where(np.asarray(mirrored, bool)[:, None, None], cov[:, :, ::-1], cov))


@dataclass
class BatchResult:
    """What a batch commits: ``keep`` (job rows, in order) and their ``rows`` (``DatasetWriter.append`` keywords).

    ``rows`` holds images, landmarks, params, pose and the optional fields (masks, fit_residual,
    mirrored, turn_deg, the quality measures, invalid_share). ``rejected`` counts failed draws per
    measure, ``redraws`` the extra draws made, ``dropped`` the slots left out (after ``plan.max_draws`` draws,
    or earlier when a draw was hopeless), ``hopeless`` those of them left out early.
    """

    keep: np.ndarray
    rows: dict[str, np.ndarray]
    rejected: Counter = field(default_factory=Counter)
    redraws: int = 0
    dropped: int = 0
    hopeless: int = 0


@dataclass
class BatchProcessor:
    """Render, score and gate :class:`BatchJob` s (see the module doc).

    Args:
        renderer: the run's renderer.
        plan: the run's plan settings (mirror, gate, measures, and the draws of a redraw).
        model: the shape model (redraws fit and sample it); None when nothing is gated.
        scorer: a :class:`~gannotate.metrics.quality.QualityScorer` (None: built from ``plan.quality``).
    """

    renderer: Renderer
    plan: PlanConfig
    model: Any = None
    scorer: Any = None
    _fits: "OrderedDict[tuple[str, bool], SourceFit]" = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.scorer is None:
            from gannotate.metrics.quality import QualityScorer

            self.scorer = QualityScorer(tuple(self.plan.quality))

    def __call__(self, job: BatchJob) -> BatchResult:
        plan_rows = {k: np.array(getattr(job, k)) for k in _PLAN_ROWS}
        out = self._render_and_score(job, np.arange(len(job)), plan_rows)
        result = BatchResult(np.arange(len(job)), out)
        if not self.plan.gated or not len(job):
            return result
        fail = self._failing(out, result.rejected)
        again = self._worth_redrawing(out, fail, 0, result)
        for draw in range(1, self.plan.max_draws):
            idx = np.nonzero(again)[0]
            if not len(idx):
                break
            for i in idx:
                cfg = self.plan if job.mirror_ok[i] else replace(self.plan, mirror=False)
                new = redraw_target(self.model, job.points[i], str(job.keys[i]), cfg, int(job.slots[i]), draw,
                                    self._source_fit(job, i, cfg.mirror))
                for k, v in zip(_PLAN_ROWS, (new.points, new.params, new.pose, new.mirrored, new.turn)):
                    plan_rows[k][i] = v[0]
            sub = self._render_and_score(job, idx, plan_rows)
            for k, v in sub.items():
                out[k][idx] = v
            fail[idx] = self._failing(sub, result.rejected)
            again[idx] = self._worth_redrawing(sub, fail[idx], draw, result)
            result.redraws += len(idx)
        result.keep = np.nonzero(~fail)[0]
        result.dropped = int(fail.sum())
        result.rows = {k: v[result.keep] for k, v in out.items()}
        return result

    def _source_fit(self, job: BatchJob, i: int, mirror: bool) -> SourceFit:
        """Row ``i``'s face fits, shared by all its redraws (kept for the last faces seen)."""
        key = (str(job.keys[i]), bool(mirror))
        fit = self._fits.get(key)
        if fit is None or not fit.matches(job.points[i], mirror):
            fit = self._fits[key] = fit_source(self.model, job.points[i], mirror)
            while len(self._fits) > _FITS_KEPT:
                self._fits.popitem(last=False)
        return fit

    def _worth_redrawing(self, out: dict[str, np.ndarray], fail: np.ndarray, draw: int, result: BatchResult) -> np.ndarray:
        """Which failed samples of draw ``draw`` get another: not hopeless ones (counted), none after the last."""
        from gannotate.metrics.quality import hopeless

        if draw >= self.plan.max_draws - 1:
            return np.zeros_like(fail)
        lost = fail & hopeless(out, self.plan.min_quality)
        result.hopeless += int(lost.sum())
        return fail & ~lost

    def _failing(self, out: dict[str, np.ndarray], rejected: Counter) -> np.ndarray:
        from gannotate.metrics.quality import failing

        reasons = failing(out, self.plan.min_quality)
        for name, bad in reasons.items():
            rejected[name] += int(bad.sum())
        n = len(out["images"])
        return np.any(np.stack(list(reasons.values())), axis=0) if reasons else np.zeros(n, bool)

    def _render_and_score(self, job: BatchJob, idx: np.ndarray, plan_rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows ``idx`` of ``job`` with ``plan_rows``: rendered, scored → append keywords for those rows."""
        from gannotate.metrics.quality import invalid_share
        from gannotate.run.render_pool import render_batch

        mirrored = plan_rows["mirrored"][idx].astype(bool)
        sides = [side_of(job.crops[i], job.points[i], m) for i, m in zip(idx, mirrored)]
        images = np.stack([c for c, _ in sides])  # (b, S, S, 3)
        src = np.stack([p for _, p in sides]).astype(np.float32)  # (b, K, 2)
        tgt = plan_rows["targets"][idx].astype(np.float32)
        pose = plan_rows["pose"][idx].astype(np.float32)
        rendered = render_batch(self.renderer, images, src, tgt, job.coverage_of(idx, mirrored))
        out: dict[str, np.ndarray] = {
            "images": rendered.images, "landmarks": tgt, "params": plan_rows["params"][idx].astype(np.float32),
            "pose": pose, **rendered.extra, "mirrored": mirrored, "turn_deg": plan_rows["turn"][idx].astype(np.float32),
        }
        if "masks" in rendered.extra:
            out["invalid_share"] = invalid_share(rendered.extra["masks"], tgt)
        out.update(self.scorer.score(rendered.images, tgt, pose[:, 0], job.crops[idx], job.points[idx],
                                     [str(k) for k in job.keys[idx]], self.plan.min_quality))
        return out


def worker_setup(plan: PlanConfig, model: Any) -> Any:
    """A :class:`~gannotate.run.render_pool.RenderPool` ``setup``: each worker's processor of saved jobs."""

    def setup(renderer: Renderer) -> Any:
        processor = BatchProcessor(renderer, plan, model)
        return lambda arrays: processor(BatchJob.from_arrays(arrays))

    return setup
