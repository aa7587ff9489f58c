"""What every training run keeps on disk, whatever it trains: its folder, checkpoint, RNG state and stats.

A run folder (:class:`RunDir`) holds::

    config.json     the run's settings and what it read (written once, atomically)
    stats.jsonl     one JSON row per log interval (appended; :class:`StatsWindow` makes the rows)
    checkpoint.pt   the latest checkpoint (replaced atomically, verified before it replaces the last one)
    samples/        preview images

Checkpoints hold only tensors and plain Python values, so they load with ``weights_only=True``
(:func:`load_checkpoint` refuses anything else, and any file not of the expected ``kind`` and
``format_version``). :func:`rng_state` / :func:`set_rng_state` carry the torch, numpy, Python (and
CUDA) generators through a checkpoint, so a resumed run draws what an uninterrupted one would.

Example:
    >>> run = RunDir("outputs/train/00001").create()
    >>> run.write_config({"config": cfg.to_dict()})
    >>> window = StatsWindow()
    >>> window.add({"Loss/G/total": 1.2}); run.append_stats({"step": 1} | window.row(batch_size=8))
    >>> save_checkpoint(run.checkpoint, {"kind": "my-train", "format_version": 1, "rng": rng_state(), ...})
    >>> ckpt = load_checkpoint(run.checkpoint, kind="my-train", format_version=1)
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from gannotate.errors import CheckpointError
from gannotate.io.atomic import atomic_path, atomic_write_text
from gannotate.models.checkpoint import safe_load

__all__ = [
    "CHECKPOINT_NAME",
    "RunDir",
    "StatsWindow",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "seed_all",
    "default_device",
]


#: The checkpoint's file name in a run folder (the latest state; earlier ones are not kept).
CHECKPOINT_NAME = "checkpoint.pt"


class RunDir:
    """A training run's folder and the names of what it holds (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def stats(self) -> Path:
        return self.path / "stats.jsonl"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def create(self) -> "RunDir":
        """Make the folder and ``samples/`` (existing ones are kept: a resumed run appends)."""
        self.samples.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, doc: Mapping[str, Any]) -> Path:
        """Write ``config.json`` atomically (values JSON cannot hold are written as ``str``)."""
        return atomic_write_text(self.config, json.dumps(doc, indent=2, default=str))

    def append_stats(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``stats.jsonl``."""
        with open(self.stats, "a") as f:
            f.write(json.dumps(row) + "\n")

    def read_stats(self) -> list[dict[str, Any]]:
        """The rows of ``stats.jsonl`` (none when the run has not logged yet)."""
        if not self.stats.is_file():
            return []
        return [json.loads(line) for line in self.stats.read_text().splitlines() if line.strip()]


class StatsWindow:
    """Per-step values collected between two log rows; :meth:`row` averages them and adds the throughput."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.steps = 0
        self.t0 = time.perf_counter()

    def add(self, stats: Mapping[str, float]) -> None:
        """Record one step's values (each key's mean goes into the row)."""
        for k, v in stats.items():
            self.values.setdefault(k, []).append(v)
        self.steps += 1

    def row(self, batch_size: int) -> dict[str, float]:
        """``steps_per_s``, ``images_per_s`` and each recorded key's mean since the last :meth:`reset`."""
        dt = time.perf_counter() - self.t0
        out = {"steps_per_s": self.steps / dt, "images_per_s": self.steps * batch_size / dt}
        return out | {k: float(np.mean(v)) for k, v in self.values.items()}


def save_checkpoint(path: str | Path, state: Mapping[str, Any], verify: bool = True) -> Path:
    """Write ``state`` with ``torch.save`` atomically; with ``verify``, read it back first.

    Why verify: the file replaces the only copy of the run's state; reading it back (CRC and a
    ``weights_only`` load) before the rename catches a full disk or a value that a safe load
    would refuse while the previous checkpoint still exists.

    Raises:
        CheckpointError: the written file does not load safely (the previous checkpoint is kept).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
        if verify:
            safe_load(tmp)
    return path


def load_checkpoint(
    path: str | Path,
    kind: str,
    format_version: int,
    map_location: str | torch.device = "cpu",
    what: str | None = None,
    require: Sequence[str] = (),
) -> dict[str, Any]:
    """Load a checkpoint of ``kind`` safely (``weights_only=True``: pickled code is refused).

    Args:
        kind, format_version: what the file's ``kind`` and ``format_version`` entries must be.
        what: how errors name the expected file (default: ``kind``), e.g. "gannotate training".
        require: entries the file must hold besides those two.

    Raises:
        CheckpointError: missing file, unsafe or corrupt content, another kind of file, another
            format, or a required entry missing.
    """
    path = Path(path)
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise CheckpointError(path, f"not a {what or kind} checkpoint (no kind={kind!r})")
    if ckpt.get("format_version") != format_version:
        raise CheckpointError(path, f"checkpoint format {ckpt.get('format_version')} (want {format_version})")
    missing = [k for k in require if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"incomplete {what or kind} checkpoint: no {', '.join(map(repr, missing))}")
    return ckpt


def rng_state() -> dict[str, Any]:
    """The torch, numpy, Python (and CUDA) generator states as tensors and plain values (``weights_only``-safe)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (the CUDA part only where CUDA is available)."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    """Lists back to tuples (a checkpoint stores Python's RNG state tuple as nested lists)."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def seed_all(seed: int) -> None:
    """Seed torch, numpy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def default_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``device``, or CUDA (``cuda:local_rank``) when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
