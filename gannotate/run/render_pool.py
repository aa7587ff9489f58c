"""Render (and score) augment's batches in worker processes, handed back in submission order.

Why processes: a CPU renderer (warp, profile) is numpy code made of many small array operations that hold
the GIL between them, so threads do not overlap it; ``augment --workers N`` renders N batches at once in N
processes instead. The writer stays in the parent and commits batches in the order they were submitted, so
the dataset is byte-for-byte the serial run's, and a killed run loses only batches not yet committed
(resume redoes them).

Workers build their renderer from its :class:`~gannotate.render.RendererSpec` (plain data), not from a
pickled instance: a renderer's caches stay per process. Each worker then turns it into its batch
processor with the pool's ``setup`` (augment's :class:`~gannotate.run.gate.BatchProcessor`: render, score,
redraw), which it inherits through the fork, so the shape model it holds is not pickled.

Why ``fork``, started at once: ``spawn``/``forkserver`` re-run the caller's ``__main__``, which breaks any
script or notebook that calls ``run_augment`` without a main guard, and re-import numpy and OpenCV per
worker. Forking is safe when nothing else runs: the pool forks all its workers in its constructor, which
``augment`` calls before it opens the dataset or starts its loader threads, so the workers inherit neither
threads nor the HDF5 file and its lock.

Why batches and results travel as files and the pipes carry only their paths: a worker terminated while a
message larger than the pipe's atomic write was on its way (Ctrl-C stops the workers at once) left the other end waiting
for the rest of it for good, and ``augment`` hung in shutdown (CPython 3.11; both directions were seen). A path is
one write below ``PIPE_BUF``, which a pipe delivers whole or not at all.

Why workers never outlive the run: each asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG`` on Linux; elsewhere a thread that watches the parent's pid), so a kill -9 of
``augment`` takes its workers with it. Their batch files live in a staging folder under the run's
own ``OUT`` (``OUT/.render.staging-<pid>-<hex>``), which the next run on ``OUT`` removes when its
pid is gone (:func:`gannotate.io.atomic.remove_stale_staging`), never in a shared ``$TMPDIR``.

Why one thread per BLAS/OpenMP library, also for libraries loaded later: a worker may load a library
the parent never did (scipy's bundled OpenBLAS arrives with the first ``scipy.spatial`` import, inside
the first render); such a library reads ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` when it loads,
so the workers set those to 1 first (:data:`ONE_THREAD_ENV`). Libraries the parent had already loaded
keep the one-thread limit set around the fork. :func:`worker_thread_info` reports what a worker has.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

import numpy as np

from gannotate.errors import GannotateError
from gannotate.render import Renderer, RendererSpec, make_renderer
from gannotate.render.base import render_full_covered

__all__ = ["BatchOutput", "render_batch", "RenderPool", "ONE_THREAD_ENV", "RENDER_STAGING", "worker_thread_info",
           "single_blas_thread"]

#: environment a render worker sets before it loads anything: every BLAS/OpenMP library it loads later
#: (OpenBLAS, scipy's own OpenBLAS, MKL, BLIS, OpenMP runtimes, numexpr) starts with one thread
ONE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                                          "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                                          "NUMEXPR_NUM_THREADS")}
_PR_SET_PDEATHSIG = 1

T = TypeVar("T")
#: the name whose staging folders (``OUT/.render.staging-<pid>-<hex>``) hold a pool's batch files
RENDER_STAGING = "render"


@dataclass(frozen=True)
class BatchOutput:
    """Pixels and, for geometric renderers, what the dataset keeps beside them (``masks``, ``fit_residual``)."""

    images: np.ndarray
    extra: dict[str, np.ndarray]


def render_batch(
    renderer: Renderer, images: np.ndarray, src: np.ndarray, tgt: np.ndarray, coverage: np.ndarray | None = None
) -> BatchOutput:
    """One batch through ``renderer.render_full``: pixels, and the validity mask and model residual it has.

    ``coverage`` (B, H, W): see :func:`~gannotate.render.base.render_full_covered`.
    """
    full = render_full_covered(renderer, images, src, tgt, coverage)
    extra: dict[str, np.ndarray] = {}
    if full.valid is not None:
        extra["masks"] = full.valid
    if full.residual is not None:
        extra["fit_residual"] = np.asarray(full.residual, np.float32)
    return BatchOutput(full.images, extra)


class _Worker:
    """The batch processor of one worker process (set once by the pool's initializer)."""

    process: Callable[[dict[str, np.ndarray]], Any] | None = None


def _die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does (kill -9 included), so no worker is left behind.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent did not die before it
    took effect. Elsewhere: a daemon thread that polls the parent pid once a second.
    """
    import signal

    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="gannotate-parent-watch", daemon=True).start()


def _init_worker(spec: RendererSpec, setup: Callable[[Renderer], Callable[[dict[str, np.ndarray]], Any]],
                 parent: int) -> None:
    import signal

    _die_with_parent(parent)
    os.environ.update(ONE_THREAD_ENV)  # before any library the renderer loads lazily (see module doc)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool, once
    _Worker.process = setup(make_renderer(spec))


def worker_thread_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of this process: one dict per BLAS/OpenMP library with its ``num_threads``.

    Submitted to a worker (after a render) it tells whether every library there runs one thread.
    """
    from threadpoolctl import threadpool_info

    return threadpool_info()


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """BLAS at one thread in a job's own process: where it renders itself (``augment`` without render workers)
    and where it plans and fits faces for its workers.

    Why: a renderer's linear algebra is many tiny products and solves (3D fits, scipy's barycentric
    transforms of each triangulation), where a BLAS thread pool only adds hand-offs; and OpenBLAS's threads
    spin, so when the cores are busy (another job, a training run) a hand-off can wait for milliseconds, once
    for a whole second. Measured: 30 real photos × 9 targets, ``--workers 1``, beside a two-thread training
    run: 35–37 s at scipy's default two BLAS threads, 7.1–7.7 s at one; on an idle machine the same either way.
    scipy.spatial is imported first: its bundled OpenBLAS loads with it, and a limit reaches only libraries
    already loaded. OpenMP pools (torch's, for ``gan``) are not BLAS and keep their threads.
    """
    import scipy.spatial  # noqa: F401  (loads scipy's own OpenBLAS, so the limit below reaches it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@contextmanager
def _single_threaded_libraries() -> Iterator[None]:
    """BLAS and OpenCV at one thread while the workers fork (they keep it), restored in the parent after.

    Why: one process per core must not run thread pools inside each. OpenBLAS threads busy-wait, so two
    workers at its default two threads each ran 4× slower than one worker on 2 cores (measured); and
    setting the limit *inside* a forked child deadlocks OpenBLAS, so it is set here, before the fork.
    ``scipy.spatial`` (every CPU renderer's triangulations) is loaded first: the workers inherit it loaded
    and limited, rather than each spending half a second of CPU importing it during its first batch while
    the parent imports it too (:func:`single_blas_thread`).
    """
    import cv2
    import scipy.spatial  # noqa: F401  (see below)
    from threadpoolctl import threadpool_limits

    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        cv2.setNumThreads(cv_threads)


def _ready() -> bool:
    return _Worker.process is not None


@dataclass(frozen=True)
class _Raised:
    """A worker's exception, handed back through the result file and raised in the parent."""

    error: BaseException


def _render_in_worker(path: str) -> str:
    """Process the batch saved at ``path`` (and remove the file); the result goes to a file beside it, whose path
    is returned.

    Why a file: a result is many pipe writes long, and a worker stopped in the middle of them
    (``close(abort=True)``) left the executor's reader blocked for the rest: the parent hung for good in
    ``shutdown``. A path is one small write, which a pipe delivers whole or not at all.
    """
    import pickle

    assert _Worker.process is not None, "render worker used before its initializer ran"
    with np.load(path) as saved:
        batch = {k: saved[k] for k in saved.files}
    os.remove(path)
    try:
        result: Any = _Worker.process(batch)
    except Exception as e:  # noqa: BLE001 - handed to the parent, which raises it
        result = _Raised(e)
    out = path[: -len(".npz")] + ".result"
    with open(out + ".part", "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(out + ".part", out)
    return out


def _read_result(path: str) -> Any:
    """The result a worker left at ``path`` (this run's own staging file, removed once read)."""
    import pickle

    with open(path, "rb") as f:
        result = pickle.load(f)
    os.remove(path)
    if isinstance(result, _Raised):
        raise result.error
    return result


def _render_only(renderer: Renderer) -> Callable[[dict[str, np.ndarray]], BatchOutput]:
    """The default worker job: ``{"images", "src", "tgt"}`` → :func:`render_batch`."""
    return lambda b: render_batch(renderer, b["images"], b["src"], b["tgt"])


class RenderPool(Generic[T]):
    """``jobs`` worker processes processing batches; :meth:`submit` returns the batches now done, in order.

    Each worker builds ``setup(renderer)`` once and calls it on every batch it gets (a dict of arrays);
    the default renders ``{"images", "src", "tgt"}``. Each submitted batch carries a ``tag`` (the
    caller's bookkeeping for it) that comes back with its output. At most ``2 · jobs`` batches are in
    flight, so memory stays bounded however long the run.
    """

    def __init__(self, spec: RendererSpec, jobs: int, scratch: str | Path,
                 setup: Callable[[Renderer], Callable[[dict[str, np.ndarray]], Any]] = _render_only):
        """``scratch``: the run folder (``OUT``) whose staging folder holds the batch files."""
        from gannotate.io.atomic import make_staging, remove_stale_staging

        if jobs < 2:
            raise ValueError(f"RenderPool needs at least 2 jobs, got {jobs}")
        # batches travel as files, the pipe carries only their paths: a feeder thread blocked writing a
        # megabyte batch into the pipe of a worker that was terminated hung shutdown for good (CPython 3.11)
        remove_stale_staging(Path(scratch) / RENDER_STAGING)  # a killed run's batches (its pid is gone)
        self.tmp = make_staging(Path(scratch) / RENDER_STAGING)
        ctx = multiprocessing.get_context("fork")  # see the module doc: all workers start here, before any thread
        self._pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                         initargs=(spec, setup, os.getpid()))
        self._queue: deque[tuple[T, Future[Any]]] = deque()
        self._depth = 2 * jobs
        self.spec = spec
        self._n = 0
        try:
            with _single_threaded_libraries():
                self._pool.submit(_ready).result()  # a fork pool launches every worker on its first submit
        except BrokenProcessPool as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise GannotateError(f"cannot start {jobs} {spec.name} render workers: {e}") from e

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (tests, diagnostics)."""
        return [p.pid for p in (getattr(self._pool, "_processes", None) or {}).values()]

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` in one worker and return its result (tests, diagnostics)."""
        return self._pool.submit(fn, *args).result()

    def submit(self, tag: T, batch: dict[str, np.ndarray]) -> list[tuple[T, Any]]:
        """Queue a batch (plain arrays); return the oldest batches once more than ``2 · jobs`` are in flight."""
        path = os.path.join(self.tmp, f"{self._n}.npz")
        self._n += 1
        np.savez(path, **batch)
        try:
            self._queue.append((tag, self._pool.submit(_render_in_worker, path)))
        except BrokenProcessPool as e:
            raise self._died() from e
        done = []
        while len(self._queue) > self._depth:
            done.append(self._take())
        return done

    def drain(self) -> list[tuple[T, Any]]:
        """Every batch still in flight, in submission order."""
        return [self._take() for _ in range(len(self._queue))]

    def _take(self) -> tuple[T, Any]:
        tag, fut = self._queue.popleft()
        try:
            return tag, _read_result(fut.result())
        except BrokenProcessPool as e:
            raise self._died() from e

    def _died(self) -> GannotateError:
        return GannotateError(f"a {self.spec.name} render worker died (out of memory?); rerun the same command to resume")

    def close(self, abort: bool = False) -> None:
        """Stop the workers; batches not yet handed back are dropped (never committed).

        ``abort`` (an error or Ctrl-C in the parent): terminate the workers rather than let them finish
        the batches already queued to them, so the run stops at once (they would be dropped anyway).
        """
        if abort:
            for proc in list((getattr(self._pool, "_processes", None) or {}).values()):  # no public API before 3.14
                proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "RenderPool[T]":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(abort=exc_type is not None)
