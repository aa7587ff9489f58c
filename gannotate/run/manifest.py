"""``manifest.json``: the one record every run folder ends with (augment, a shard, merge, frontalise, Ray).

Keys, in this order: ``command``, ``seed``, ``renderer``, ``model_sha256``, ``versions``, ``config``,
``complete`` (True once the run finished every face it was given; a Ray run with a failed shard
says False), ``counts``, ``failures`` (``[{path, reason}]``, every input or shard that failed, with
its reason), ``outputs``, then what the job adds (``sources_digest``, ``merged_from``, ``backend``,
``shards``, ...) and ``elapsed_s``. Written atomically, so a reader never sees half a manifest, and
written last, so a manifest that says ``complete`` is what :func:`gannotate.run.run_status` trusts.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from gannotate import __version__
from gannotate.io.folders import Failure

__all__ = ["MANIFEST_NAME", "write_manifest", "read_manifest", "versions", "jsonable"]

MANIFEST_NAME = "manifest.json"


def versions() -> dict[str, str]:
    """Versions of what shapes the output (for the manifest)."""
    import cv2
    import h5py
    import scipy

    return {
        "gannotate": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "opencv": cv2.__version__,
        "h5py": h5py.__version__,
    }


def jsonable(x: Any) -> Any:
    """Dataclasses, paths, tuples and numpy scalars → plain JSON values."""
    if is_dataclass(x) and not isinstance(x, type):
        return jsonable(asdict(x))
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_manifest(
    out: str | Path,
    *,
    command: str,
    seed: Any,
    counts: Mapping[str, Any],
    failures: Iterable[Failure],
    renderer: str | None = None,
    model_sha256: str | None = None,
    config: Any = None,
    complete: bool = True,
    outputs: Mapping[str, Any] | None = None,
    elapsed_s: float | None = None,
    **extra: Any,
) -> Path:
    """Write ``out/manifest.json`` atomically (layout in the module docstring) and return its path."""
    from gannotate.io.atomic import atomic_write_text

    manifest: dict[str, Any] = {"command": command, "seed": seed}
    if renderer is not None:
        manifest["renderer"] = renderer
    manifest["model_sha256"] = model_sha256
    manifest["versions"] = versions()
    if config is not None:
        manifest["config"] = jsonable(config)
    manifest["complete"] = bool(complete)
    manifest["counts"] = jsonable(dict(counts))
    manifest["failures"] = [asdict(f) for f in failures]
    if outputs is not None:
        manifest["outputs"] = jsonable(dict(outputs))
    manifest.update(jsonable(extra))
    if elapsed_s is not None:
        manifest["elapsed_s"] = round(float(elapsed_s), 3)
    path = Path(out) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    """``out/manifest.json`` as a dict; None when it is missing or not readable JSON (a run that never finished)."""
    path = Path(out) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
