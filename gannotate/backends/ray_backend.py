"""``gannotate augment --backend ray``: the same job, one Ray task per shard, merged by the driver.

The driver discovers the sources, splits them into ``n`` shards exactly as ``--shard i/n`` does
(:func:`gannotate.run.take_shard`), and runs each shard that is not done as a Ray task. A task is
the normal local job (:func:`gannotate.augment.run_augment`) writing ``OUT/shards/<i>/`` (its own
``dataset.h5``, ``images/``, ``manifest.json``); the driver then joins the finished shards with
:func:`gannotate.merge.merge_outputs` into ``OUT/dataset.h5``, ``OUT/images/``, ``OUT/manifest.json``
and ``OUT/preview.png``. So:

* **same arrays** — the result equals ``gannotate merge OUT s0 … s(n-1)`` of local ``--shard i/n``
  runs with the same seed, byte for byte (merge keeps shard order, a shard keeps its own order);
* **resumable** — a re-run skips shards that are done (:func:`gannotate.run.run_status`, the one
  definition of done) and resumes partial ones; a task whose worker dies is re-run by Ray
  (``max_retries``) and resumes its shard from the last committed batch; a shard that still
  fails is named in the manifest (``failures``, ``shards``) and the others are merged;
* **one renderer per worker** — a worker process keeps the renderer it built for the next shard
  it runs; a renderer on CUDA asks Ray for one GPU per task;
* **progress** — tasks report committed samples to a small actor; the driver sums them (rate, ETA)
  into the caller's progress object and the log.

* **one run per OUT** — the driver holds ``OUT``'s run lock (:func:`gannotate.io.filelock.run_lock`,
  the lock a local run takes) from start to merge, so a second driver or a local run on ``OUT`` is
  refused, ``--no-resume`` included; ``--no-resume`` also refuses while a shard task of an earlier
  driver still holds its shard;
* **same weights** — the identity a re-run is checked against includes ``generator_sha256`` (the gan
  renderer's weights), as a local resume's does.

With no address the driver starts a local Ray instance and stops it at the end; a reaper process
(:mod:`gannotate.backends.reaper`) stops it also when the driver is killed (kill -9). With an address
it joins that cluster. On a cluster, ``--input`` and ``--out`` must be on a file system every node sees, and
every node needs this gannotate installed. Ray is optional: ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from gannotate.augment import AugmentConfig, AugmentResult, run_augment, run_inputs
from gannotate.backends.base import Backend, register_backend
from gannotate.errors import DatasetError, GannotateError
from gannotate.io.folders import Failure
from gannotate.render import Renderer, RendererSpec, make_renderer, path_options
from gannotate.run.bookkeeping import (
    DATASET_NAME,
    IDENTITY_KEYS,
    RESUME_KEYS,
    SHARDS_DIR,
    ShardPlan,
    check_same_settings,
    check_writable,
    read_shard_plan,
    run_status,
    shard_dir,
    write_shard_plan,
)
from gannotate.run.manifest import read_manifest, write_manifest
from gannotate.run.progress import NullProgress, Progress
from gannotate.run.sources import sources_digest, take_shard

__all__ = ["RayBackend", "RayOptions", "ShardOutcome", "RayUnavailable", "INSTALL_HINT", "ray_available", "run_ray",
           "weights_identity"]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[ray]"'

#: renderers built in this worker process, kept for the next shard it runs (key: spec, factory)
_WORKER_RENDERERS: dict[tuple[RendererSpec, Any], Renderer] = {}


class RayUnavailable(GannotateError):
    """``--backend ray`` without Ray installed."""

    def __init__(self, detail: str = ""):
        super().__init__(f"--backend ray needs Ray, which is not installed{f' ({detail})' if detail else ''}; "
                         f"install it with: {INSTALL_HINT}")


def ray_available() -> bool:
    """True when ``import ray`` works here."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ray() -> Any:
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise RayUnavailable(str(e)) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray (the job itself is the :class:`~gannotate.augment.AugmentConfig`)."""

    address: str | None = None   # join this cluster ("auto", "HOST:6379", "ray://HOST:10001"); None → start a local one
    shards: int | None = None    # None → as an earlier run of this OUT split it, else one per worker slot
    num_cpus: int | None = None  # CPUs of a local instance (None → all of this machine's); ignored with an address
    max_retries: int = 3         # re-runs of a shard whose worker died (the shard resumes where it stopped)
    poll_s: float = 0.5          # how often the driver gathers progress and finished tasks
    log_every_s: float = 10.0    # how often the driver logs rate and ETA


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard task reports back (times are seconds; ``started`` is the task's wall clock)."""

    index: int
    n_sources: int
    n_written: int
    n_skipped: int
    n_total: int
    failures: list[Failure] = field(default_factory=list)
    attempt: int = 1            # 2+ when Ray re-ran the task after its worker died
    started: float = 0.0        # time.time() when the task began
    setup_s: float = 0.0        # getting the renderer (0 when the worker already had it)
    run_s: float = 0.0          # run_augment
    pid: int = 0
    node: str = ""


# --------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------


class _Board:
    """Ray actor: committed samples per shard, as the shard tasks report them (plus attempts)."""

    def __init__(self, totals: dict[int, int], done: dict[int, int]):
        self.total, self.done = dict(totals), dict(done)
        self.attempts: dict[int, int] = {}

    def begin(self, i: int) -> int:
        """A task attempt for shard ``i`` starts; returns its number (1 = first, 2 = first retry, ...)."""
        self.attempts[i] = self.attempts.get(i, 0) + 1
        return self.attempts[i]

    def start(self, i: int, total: int, done: int) -> None:
        self.total[i], self.done[i] = total, done  # a retried task restarts from what its file holds

    def advance(self, i: int, n: int) -> None:
        self.done[i] = self.done.get(i, 0) + n

    def snapshot(self) -> tuple[int, int, dict[int, int]]:
        return sum(self.done.values()), sum(self.total.values()), dict(self.attempts)


class _BoardProgress:
    """The job's Progress protocol inside a task: forwards to the board actor (fire and forget)."""

    def __init__(self, board: Any, index: int):
        self.board, self.index = board, index

    def start(self, total: int, done: int) -> None:
        self.board.start.remote(self.index, total, done)

    def advance(self, n: int) -> None:
        self.board.advance.remote(self.index, n)


def _worker_spec(spec: RendererSpec) -> RendererSpec:
    """Ray hides all but the task's GPU(s): ``cuda:N`` becomes ``cuda`` (the first visible one)."""
    opts = dict(spec.options)
    dev = str(opts.get("device") or "")
    if dev.startswith("cuda:"):
        return RendererSpec.of(spec.name, **{**opts, "device": "cuda"})
    return spec


def _renderer_for(spec: RendererSpec, factory: Callable[[RendererSpec], Renderer] | None) -> tuple[Renderer, float]:
    """This worker's renderer for ``spec`` (built once per worker process) and the seconds it took now."""
    key = (spec, factory)
    if key in _WORKER_RENDERERS:
        return _WORKER_RENDERERS[key], 0.0
    t = time.perf_counter()
    renderer = (factory or make_renderer)(_worker_spec(spec))
    _WORKER_RENDERERS[key] = renderer
    return renderer, time.perf_counter() - t


def _run_shard(cfg: AugmentConfig, index: int, board: Any, factory: Callable[[RendererSpec], Renderer] | None) -> ShardOutcome:
    """One Ray task: the normal local job on shard ``cfg.shard`` into ``cfg.out`` (resuming it)."""
    import socket

    import ray

    started = time.time()
    attempt = ray.get(board.begin.remote(index))  # waited for: a worker that dies later has still counted
    renderer, setup_s = _renderer_for(cfg.renderer, factory)
    t = time.perf_counter()
    res = run_augment(cfg, progress=_BoardProgress(board, index), renderer=renderer)
    return ShardOutcome(index, res.n_sources, res.n_written, res.n_skipped, res.n_total, list(res.failures),
                        attempt, started, setup_s, time.perf_counter() - t, os.getpid(), socket.gethostname())


# --------------------------------------------------------------------------------------------
# driver side
# --------------------------------------------------------------------------------------------


class _Aggregate:
    """Sums the board into the caller's Progress (advance by deltas) and logs rate and ETA."""

    def __init__(self, progress: Progress, total: int, done: int, log_every_s: float):
        self.progress, self.total, self.reported = progress, total, done
        self.t0, self.done0, self.log_every_s, self.last_log = time.perf_counter(), done, log_every_s, 0.0
        progress.start(total, done)

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return (self.reported - self.done0) / dt if dt > 0 else 0.0

    def update(self, done: int, total: int, running: int, finished: int, n_shards: int) -> None:
        self.total = max(total, self.total)
        if done > self.reported:
            self.progress.advance(done - self.reported)
            self.reported = done
        rate = self.rate()
        eta = (self.total - self.reported) / rate if rate > 0 else float("nan")
        text = f"{rate:.0f} targets/s, {running} running, {finished}/{n_shards} shards done"
        note = getattr(self.progress, "note", None)
        if note is not None:
            note(text)
        now = time.perf_counter()
        if now - self.last_log >= self.log_every_s:
            self.last_log = now
            log.info("ray: %d/%d samples, %s, ETA %.0f s", self.reported, self.total, text, eta)


def _n_shards(ray: Any, options: RayOptions, recorded: ShardPlan | None, per_task: dict[str, float], n_sources: int,
              out: Path) -> int:
    """How many shards: as asked, else as recorded by an earlier run, else one per worker slot."""
    if recorded is not None:
        if options.shards is not None and options.shards != recorded.n:
            raise DatasetError(out / SHARDS_DIR, f"cannot resume: split into {recorded.n} shards there, --shards "
                                                 f"{options.shards} now; use --shards {recorded.n}, or --no-resume")
        return recorded.n
    if options.shards is not None:
        return options.shards
    res = ray.cluster_resources()
    slots = int(res.get("GPU", 0) // per_task["num_gpus"]) if per_task.get("num_gpus") else int(
        res.get("CPU", 1) // per_task["num_cpus"])
    return max(1, min(n_sources, slots))


def _task_resources(cfg: AugmentConfig) -> dict[str, Any]:
    """Ray options of a shard task: its prepare threads as CPUs; one GPU (kept warm) for a CUDA renderer."""
    res: dict[str, Any] = {"num_cpus": cfg.workers}
    dev = str(cfg.renderer.kwargs().get("device") or "")
    if dev.startswith("cuda"):
        res.update(num_gpus=1, max_calls=0)  # Ray's default for GPU tasks is a new process per task
    return res


def _check_feasible(cluster: dict[str, float], per_task: dict[str, Any], local: bool) -> None:
    """A task that asks for more than the cluster has waits forever: refuse (local) or warn (a cluster may grow)."""
    short = [f"{per_task[k]:g} {name}" for k, name in (("num_gpus", "GPU"), ("num_cpus", "CPU"))
             if per_task.get(k) and cluster.get(name, 0) < per_task[k]]
    if not short:
        return
    msg = (f"each shard task needs {' and '.join(short)}, the Ray cluster has "
           f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU; lower --workers or use --device cpu")
    if local:
        raise GannotateError(msg)
    log.warning("ray: %s (waiting for the cluster to grow)", msg)


def _absolute(cfg: AugmentConfig) -> AugmentConfig:
    """Paths made absolute in the driver: a worker's working folder is not the driver's."""
    paths = path_options(cfg.renderer.name)
    opts = {k: (str(Path(v).resolve()) if isinstance(v, str) and k in paths and Path(v).exists() else v)
            for k, v in cfg.renderer.options}
    return replace(
        cfg, out=Path(cfg.out).resolve(), input=None if cfg.input is None else Path(cfg.input).resolve(),
        model_path=None if cfg.model_path is None else Path(cfg.model_path).resolve(),
        renderer=RendererSpec(cfg.renderer.name, tuple(opts.items())),
    )


def _reason(e: BaseException) -> str:
    """One line for a failed task: the error's own first line (Ray wraps it in a traceback)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException) and str(cause):
        return f"{type(cause).__name__}: {str(cause).splitlines()[0][:300]}"
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1][:300] if lines else ''}"


def run_ray(
    cfg: AugmentConfig,
    options: RayOptions | None = None,
    progress: Progress | None = None,
    renderer_factory: Callable[[RendererSpec], Renderer] | None = None,
) -> AugmentResult:
    """Run ``cfg`` on Ray, one task per shard, and merge the shards into ``cfg.out`` (module docstring).

    Args:
        cfg: the job, as for a local run (``cfg.shard`` must be ``(0, 1)``: the backend shards).
        options: cluster address, number of shards, retries.
        progress: receives ``start(total, done)`` then ``advance(k)`` as shards commit batches,
            and ``note(text)`` (rate, shards running) when it has that method.
        renderer_factory: builds the renderer from the spec in each worker [default:
            :func:`gannotate.render.make_renderer`]; must be picklable (tests, custom renderers).

    Returns:
        AugmentResult of the merged run: written = samples rendered by this run's tasks, skipped =
        samples found done, failures = inputs that failed plus shards that could not be run.

    Raises:
        RayUnavailable: Ray is not installed.
        DatasetError: ``out`` not writable, or made with other settings (seed, plan, renderer, shards).
    """
    from gannotate.io.filelock import run_lock

    ray = _import_ray()
    options = options or RayOptions()
    progress = progress or NullProgress()
    _check_unsharded(cfg)
    check_writable(Path(cfg.out))
    with run_lock(cfg.out):  # one run per OUT, from the first check to the merge
        return _run_locked(ray, _absolute(cfg), options, progress, renderer_factory)


def _check_unsharded(cfg: AugmentConfig) -> None:
    """The backend shards the job itself: a job that is one shard already is refused."""
    if tuple(cfg.shard) != (0, 1):
        raise GannotateError("--shard runs one shard by hand; with --backend ray give --shards N instead")


@register_backend
class RayBackend(Backend):
    """``--backend ray``: :func:`run_ray` with options ``address`` and ``shards`` (see :class:`RayOptions`)."""

    name = "ray"
    help = f"one Ray task per shard, merged into OUT ({INSTALL_HINT})"
    options = ("address", "shards")

    def check(self, cfg: AugmentConfig) -> None:
        if not ray_available():
            raise RayUnavailable()
        _check_unsharded(cfg)

    def run(self, cfg: AugmentConfig, progress: Progress | None = None, **options: Any) -> AugmentResult:
        return run_ray(cfg, RayOptions(**options), progress=progress)


def weights_identity(spec: RendererSpec) -> dict[str, str]:
    """The ``dataset_attrs`` a spec fixes (gan: its weights' ``generator_sha256``), else {}.

    Why here: the driver never builds the renderer, yet a re-run with other weights must be refused
    before it counts finished shards as done.
    """
    from gannotate.render import spec_identity

    return spec_identity(spec)


def _start_over(out: Path) -> None:
    """``--no-resume``: delete the shard folders, refused while any of them is still held by a task."""
    from gannotate.io.filelock import check_not_in_use

    shards = out / SHARDS_DIR
    if shards.is_dir():
        for d in sorted(shards.iterdir()):
            if d.is_dir():
                check_not_in_use(d)
                check_not_in_use(d / DATASET_NAME)
    shutil.rmtree(shards, ignore_errors=True)


def _run_locked(ray: Any, cfg: AugmentConfig, options: RayOptions, progress: Progress,
                renderer_factory: Callable[[RendererSpec], Renderer] | None) -> AugmentResult:
    """:func:`run_ray` once ``cfg.out``'s run lock is held."""
    from gannotate.backends.reaper import start_reaper

    t0 = time.time()
    out = cfg.out
    inputs = run_inputs(cfg)  # the local job's own setup: same faces, same identity
    sources, discovery_failures, model_sha = inputs.sources, inputs.failures, inputs.model_sha256
    identity = inputs.identity(cfg, cfg.renderer.name)
    identity.update(weights_identity(cfg.renderer))
    if not cfg.resume:  # start over: the shard folders are this backend's own
        _start_over(out)
    recorded = read_shard_plan(out)
    if recorded is not None:
        check_same_settings(out / SHARDS_DIR, recorded.identity, identity, IDENTITY_KEYS)
    per_task = _task_resources(cfg)

    owns = not ray.is_initialized()
    reaper = None
    if owns:
        if options.address is None:
            ray.init(num_cpus=options.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            reaper = start_reaper()  # the local instance's processes end with this driver, kill -9 included
        else:
            ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    try:
        _check_feasible(ray.cluster_resources(), per_task, local=options.address is None)
        n = _n_shards(ray, options, recorded, per_task, len(sources), out)
        write_shard_plan(out, ShardPlan(n, identity))
        for stale in (out / SHARDS_DIR).glob("*"):  # shards of an earlier, larger split are not part of this one
            if stale.is_dir() and stale.name.isdigit() and int(stale.name) >= n:
                shutil.rmtree(stale)
        shard_cfgs = [replace(cfg, out=shard_dir(out, i), shard=(i, n), resume=True, preview_sources=0) for i in range(n)]
        digests = [sources_digest([s.key for s in take_shard(sources, (i, n))]) for i in range(n)]
        todo, skipped, totals, done0 = [], {}, {}, {}
        for i in range(n):
            status = run_status(shard_dir(out, i), digests[i])
            check_same_settings(shard_dir(out, i) / DATASET_NAME, status.attrs or {}, {**identity, "shard": f"{i}/{n}"},
                                RESUME_KEYS)  # refuse before any work, as a local resume does
            expected = len(take_shard(sources, (i, n))) * cfg.plan.n
            if status.done:
                skipped[i] = status.n_samples
                totals[i] = done0[i] = status.n_samples
            else:
                todo.append(i)
                totals[i], done0[i] = max(expected, status.n_samples), status.n_samples
        log.info("ray: %d shards, %d done already, %d to run", n, len(skipped), len(todo))

        digest_all = sources_digest([s.key for s in sources])
        merged = run_status(out, digest_all)
        man = read_manifest(out) or {}
        if not todo and merged.done and man.get("backend", {}).get("shards") == n:  # nothing changed since
            _check_finished(out / DATASET_NAME)
            progress.start(merged.n_samples, merged.n_samples)
            return AugmentResult(out, man.get("counts", {}).get("sources_ok", 0), 0, merged.n_samples, merged.n_samples,
                                 [Failure(**f) for f in man.get("failures", [])], out / "manifest.json",
                                 out / "preview.png" if (out / "preview.png").is_file() else None)

        board = ray.remote(num_cpus=0)(_Board).remote(totals, done0)
        task = ray.remote(_run_shard).options(max_retries=options.max_retries, **per_task)
        agg = _Aggregate(progress, sum(totals.values()), sum(done0.values()), options.log_every_s)
        submitted = time.time()
        pending = {task.remote(shard_cfgs[i], i, board, renderer_factory): i for i in todo}
        outcomes: dict[int, ShardOutcome] = {}
        failed: dict[int, str] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=options.poll_s)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        outcomes[i] = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the task raised, or its worker died max_retries + 1 times
                        failed[i] = _reason(e)
                        log.warning("ray: shard %d/%d failed: %s", i, n, failed[i])
                done_now, total_now, _ = ray.get(board.snapshot.remote())
                agg.update(done_now, total_now, len(pending), len(skipped) + len(outcomes), n)
        except BaseException:  # the driver is interrupted: stop the tasks so a re-run finds no writer
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.wait(list(pending), num_returns=len(pending), timeout=30)
            raise
        _, _, attempts = ray.get(board.snapshot.remote())
        ray.kill(board)

        records = _shard_records(n, skipped, outcomes, failed, attempts, submitted)
        shard_failures = [Failure(str(shard_dir(out, i)), f"shard {i}/{n} failed: {failed[i]}; "
                                                          "re-run the same command to resume it") for i in sorted(failed)]
        n_written = sum(o.n_written for o in outcomes.values())
        elapsed = time.time() - t0
        extra = {
            "sources_digest": digest_all,
            "backend": {"name": "ray", "address": options.address or "local", "ray_version": ray.__version__,
                        "shards": n, "max_retries": options.max_retries, "task_resources": per_task},
            "shards": records,
            "throughput": {"samples_written": n_written, "seconds": round(elapsed, 3),
                           "images_per_s": round(n_written / elapsed, 2) if elapsed > 0 else None},
            "config": cfg,
            "elapsed_s": elapsed,
        }
        ok = [i for i in range(n) if i in skipped or i in outcomes]
        if ok:
            res = _merge(out, [shard_dir(out, i) for i in ok], cfg, discovery_failures + shard_failures, not failed, extra)
        else:
            path = write_manifest(out, command=cfg.command, seed=cfg.plan.seed, renderer=cfg.renderer.name,
                                  model_sha256=model_sha, complete=False, counts={"samples_total": 0},
                                  failures=sorted(set(discovery_failures + shard_failures), key=lambda f: f.path),
                                  **extra)
            res = AugmentResult(out, 0, 0, 0, 0, sorted(set(discovery_failures + shard_failures), key=lambda f: f.path),
                                path, None)
        n_skipped = sum(skipped.values()) + sum(o.n_skipped for o in outcomes.values())
        return replace(res, n_written=n_written, n_skipped=n_skipped)
    finally:
        if owns:
            ray.shutdown()
        if reaper is not None:
            reaper.stop()


def _check_finished(path: Path, tail: int = 16) -> None:
    """Check a finished run's dataset as a local rerun does before it says "already done": the
    ground truth of every row (on open) and the images of the last ``tail`` rows.

    Raises:
        DatasetCorruptError: a row no longer matches its checksums (exit 4).
    """
    from gannotate.errors import DatasetCorruptError
    from gannotate.io.hdf5 import DatasetReader

    with DatasetReader(path) as r:
        bad = r.verify(range(max(0, len(r) - tail), len(r)))
    if bad:
        raise DatasetCorruptError(path, bad)


def _shard_records(n: int, skipped: dict[int, int], outcomes: dict[int, ShardOutcome], failed: dict[int, str],
                   attempts: dict[int, int], submitted: float) -> list[dict[str, Any]]:
    """The manifest's ``shards``: per shard its state (skipped / done / failed), samples, attempts and times."""
    records = []
    for i in range(n):
        rec: dict[str, Any] = {"index": i, "dir": f"{SHARDS_DIR}/{i}"}
        if i in skipped:
            rec.update(state="skipped", samples=skipped[i])
        elif i in outcomes:
            o = outcomes[i]
            rec.update(state="done", samples=o.n_total, written=o.n_written, resumed_from=o.n_skipped,
                       attempts=o.attempt, queued_s=round(max(0.0, o.started - submitted), 3),
                       setup_s=round(o.setup_s, 3), run_s=round(o.run_s, 3), node=o.node, pid=o.pid)
        else:
            rec.update(state="failed", attempts=attempts.get(i, 0), reason=failed[i])
        records.append(rec)
    return records


def _merge(out: Path, dirs: list[Path], cfg: AugmentConfig, failures: list[Failure], complete: bool,
           extra: dict[str, Any]) -> AugmentResult:
    from gannotate.merge import merge_outputs

    return merge_outputs(out, dirs, command=cfg.command, failures=failures, complete=complete, extra=extra,
                         locked=True)  # the driver holds OUT's run lock
