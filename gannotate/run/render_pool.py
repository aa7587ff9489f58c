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
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

import numpy as np

from gannotate.errors import GannotateError
from gannotate.render import Renderer, RendererSpec, make_renderer

__all__ = ["BatchOutput", "render_batch", "RenderPool"]

T = TypeVar("T")


@dataclass(frozen=True)
class BatchOutput:
    """Pixels and, for geometric renderers, what the dataset keeps beside them (``masks``, ``fit_residual``)."""

    images: np.ndarray
    extra: dict[str, np.ndarray]


def render_batch(renderer: Renderer, images: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> BatchOutput:
    """One batch through ``renderer``: ``render_full`` where it has one (validity mask, model residual)."""
    extra: dict[str, np.ndarray] = {}
    if hasattr(renderer, "render_full"):
        full = renderer.render_full(images, src, tgt)
        extra["masks"] = full.valid
        if full.residual is not None:
            extra["fit_residual"] = np.asarray(full.residual, np.float32)
        return BatchOutput(full.images, extra)
    return BatchOutput(renderer.render(images, src, tgt), extra)


class _Worker:
    """The batch processor of one worker process (set once by the pool's initializer)."""

    process: Callable[[dict[str, np.ndarray]], Any] | None = None


def _init_worker(spec: RendererSpec, setup: Callable[[Renderer], Callable[[dict[str, np.ndarray]], Any]]) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool, once
    _Worker.process = setup(make_renderer(spec))


@contextmanager
def _single_threaded_libraries() -> Iterator[None]:
    """BLAS and OpenCV at one thread while the workers fork (they keep it), restored in the parent after.

    Why: one process per core must not run thread pools inside each. OpenBLAS threads busy-wait, so two
    workers at its default two threads each ran 4× slower than one worker on 2 cores (measured); and
    setting the limit *inside* a forked child deadlocks OpenBLAS, so it is set here, before the fork.
    """
    import cv2
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


def _render_in_worker(path: str) -> Any:
    """Process the batch saved at ``path`` (and remove the file)."""
    assert _Worker.process is not None, "render worker used before its initializer ran"
    with np.load(path) as saved:
        batch = {k: saved[k] for k in saved.files}
    os.remove(path)
    return _Worker.process(batch)


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

    def __init__(self, spec: RendererSpec, jobs: int,
                 setup: Callable[[Renderer], Callable[[dict[str, np.ndarray]], Any]] = _render_only):
        if jobs < 2:
            raise ValueError(f"RenderPool needs at least 2 jobs, got {jobs}")
        ctx = multiprocessing.get_context("fork")  # see the module doc: all workers start here, before any thread
        self._pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(spec, setup))
        self._queue: deque[tuple[T, Future[Any]]] = deque()
        self._depth = 2 * jobs
        self.spec = spec
        # batches travel as files, the pipe carries only their paths: a feeder thread blocked writing a
        # megabyte batch into the pipe of a worker that was terminated hung shutdown for good (CPython 3.11)
        self._tmp = tempfile.TemporaryDirectory(prefix="gannotate-render-")
        self._n = 0
        try:
            with _single_threaded_libraries():
                self._pool.submit(_ready).result()  # a fork pool launches every worker on its first submit
        except BrokenProcessPool as e:
            raise GannotateError(f"cannot start {jobs} {spec.name} render workers: {e}") from e

    def submit(self, tag: T, batch: dict[str, np.ndarray]) -> list[tuple[T, Any]]:
        """Queue a batch (plain arrays); return the oldest batches once more than ``2 · jobs`` are in flight."""
        path = os.path.join(self._tmp.name, f"{self._n}.npz")
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
            return tag, fut.result()
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
        self._tmp.cleanup()

    def __enter__(self) -> "RenderPool[T]":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(abort=exc_type is not None)
