"""Shared by the benchmark scripts: best-of timing, the machine's description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times)


def timed_augment(args: list[str], out: Path, tree: Path | None = None) -> tuple[float, dict]:
    """Wall seconds and manifest of one fresh ``gannotate augment ARGS --out OUT`` process, start-up included.

    ``tree``: run the package of another checkout (a reference release) instead of the installed one. ``out`` is
    emptied first: a run into a finished folder would resume it and render nothing. Exit 1 (some inputs failed,
    the run finished) is accepted.
    """
    shutil.rmtree(out, ignore_errors=True)
    env = None if tree is None else dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "gannotate.cli", "augment", *args, "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"augment ({tree or 'installed'}) failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, json.loads((out / "manifest.json").read_text())


def cpu_description() -> str:
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared)"


def emit(result: dict, out: Path) -> dict:
    """Print ``result`` as JSON and write it to ``out`` (folders created)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result
