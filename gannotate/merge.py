"""Join the outputs of sharded ``gannotate augment --shard i/n`` runs into one output folder.

Sources are re-indexed in the order the shards are given; each shard's samples keep their order, so
merging the shards of one job in shard order gives the same arrays however the shards were run
(by hand on several machines, or as Ray tasks by :mod:`gannotate.backends.ray_backend`). The
merged folder has the same layout as one run's: ``dataset.h5`` (with the optional ``masks`` and
``fit_residual`` when the shards have them), ``images/`` (hard links to the shards' files where the
file system allows, else copies), ``manifest.json`` (failures of all shards, each once) and
``preview.png`` (a sample of the merged dataset).

Only finished shards are merged (:func:`gannotate.run.run_status`): a half-done shard would
silently leave its remaining samples out.

A reader never sees a half merge: the dataset is written under a temporary name and renamed over
``OUT/dataset.h5`` only when every shard is in it, and ``images/`` is built in a staging folder that
replaces the old one whole (an earlier run's images never stay beside the new dataset). The old
manifest goes before the new dataset arrives, so a merge killed in between leaves a folder that
:func:`~gannotate.run.run_status` calls partial (re-run the merge). The merge holds ``OUT``'s run lock
(:func:`gannotate.io.filelock.run_lock`) throughout: a second merge or a run on ``OUT`` is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from gannotate.augment import AugmentResult
from gannotate.errors import DatasetError
from gannotate.io.folders import Failure
from gannotate.run.bookkeeping import DATASET_NAME, IDENTITY_KEYS, SOURCE_KEYS, check_writable, run_status, settings_diff
from gannotate.run.manifest import read_manifest, write_manifest

__all__ = ["merge_outputs", "MERGE_SAME_ATTRS"]

#: dataset attrs that must agree between shards (else the merged file would mix two experiments)
MERGE_SAME_ATTRS = IDENTITY_KEYS


def merge_outputs(
    out: Path,
    shard_dirs: list[Path],
    *,
    command: str | None = None,
    failures: Iterable[Failure] = (),
    complete: bool = True,
    extra: Mapping[str, Any] | None = None,
    locked: bool = False,
) -> AugmentResult:
    """Join ``gannotate augment --shard`` outputs into ``out``: one dataset, folder, manifest, preview.

    Sources are re-indexed in the order the shards are given; each shard's samples keep their order.

    Args:
        out: the merged run folder (its ``dataset.h5`` is replaced).
        shard_dirs: finished run folders, in shard order.
        command: recorded as the merged dataset's and manifest's command [default: the merge command].
        failures: more failures to name in the manifest (e.g. shards that could not be run).
        complete: False when the caller knows shards are missing (recorded in the manifest).
        extra: more manifest keys (the Ray backend's per-shard record).
        locked: the caller already holds ``out``'s run lock (the Ray driver).

    Raises:
        DatasetError: ``out`` not writable or in use by another run, a shard without ``dataset.h5``
            or not finished, or shards made with different settings (scheme, size, seed, plan,
            renderer, model).
        DatasetCorruptError: a shard fails its checksums (``out`` is left as it was).
    """
    from gannotate.io.filelock import run_lock

    check_writable(out)
    with contextlib.nullcontext() if locked else run_lock(out):
        return _merge_locked(Path(out), shard_dirs, command, failures, complete, extra)


def _merge_locked(out: Path, shard_dirs: list[Path], command: str | None, failures: Iterable[Failure],
                  complete: bool, extra: Mapping[str, Any] | None) -> AugmentResult:
    """:func:`merge_outputs` once ``out``'s run lock is held."""
    from gannotate.io.atomic import remove_stale_staging, remove_stale_temps, staged_folder, temp_name
    from gannotate.io.filelock import check_not_in_use, replace_file_exclusively
    from gannotate.io.hdf5 import DatasetReader, DatasetWriter
    from gannotate.preview import preview_dataset

    resolved = [Path(d).resolve() for d in shard_dirs]
    if Path(out).resolve() in resolved:
        raise DatasetError(out, "cannot merge into one of the shards being merged (it would be overwritten)")
    if len(set(resolved)) != len(resolved):
        raise DatasetError(out, "a shard folder is given twice")
    for d in shard_dirs:
        status = run_status(d)
        if status.state == "partial":
            raise DatasetError(Path(d) / DATASET_NAME, f"cannot merge: the shard is not finished ({status.reason}); "
                                                      "re-run its `gannotate augment` command to complete it")
    default_command = "gannotate merge " + " ".join([str(out)] + [str(d) for d in shard_dirs])
    command = command or default_command
    all_failures: list[Failure] = list(failures)
    gates: list[Any] = []  # each shard's quality-gate counts (its manifest's)
    with contextlib.ExitStack() as stack:  # every reader is closed, also when a later one is refused
        readers = [stack.enter_context(DatasetReader(Path(d) / DATASET_NAME)) for d in shard_dirs]
        first = readers[0]
        seen: dict[str, Path] = {}
        for r in readers:  # shards partition the sources: a face in two shards would duplicate samples
            for key in r.sources:
                if key in seen:
                    raise DatasetError(r.path, f"cannot merge: source {key!r} is also in {seen[key]} (overlapping shards)")
                seen[key] = r.path
        for r in readers[1:]:
            diff = settings_diff(r.attrs, first.attrs, MERGE_SAME_ATTRS)
            diff += [k for k in MERGE_SAME_ATTRS if (k in r.attrs) != (k in first.attrs)]
            if diff:
                raise DatasetError(r.path, f"cannot merge: differs from {first.path} in {sorted(set(diff))}")
        skip = ("n_samples", "n_sources", "shard", "flip_index") + SOURCE_KEYS  # the first shard's faces, not all
        attrs = {k: v for k, v in first.attrs.items() if k not in skip}
        attrs["shard"] = "merged"
        attrs["command"] = command
        attrs["merged_from"] = json.dumps([str(d) for d in shard_dirs])
        target = out / DATASET_NAME
        check_not_in_use(target)  # before the work: a process reading or writing it would refuse the rename
        remove_stale_temps(out)  # a killed merge's dataset in progress (we hold the lock)
        remove_stale_staging(out / "images")
        tmp = temp_name(target)
        try:
            with DatasetWriter(
                tmp, scheme=first.scheme, image_size=int(first.attrs["image_size"]),
                n_params=int(first.attrs["n_params"]), attrs=attrs, resume=False,
            ) as writer, staged_folder(out / "images", lambda p: None) as images:
                for d, r in zip(shard_dirs, readers):
                    remap = np.array([writer.add_source(k) for k in r.sources] or [0], np.int32)
                    for batch in _rows(r, 256):
                        batch["source_index"] = remap[batch["source_index"]]
                        writer.append(**batch)
                    if (Path(d) / "images").is_dir():
                        shutil.copytree(Path(d) / "images", images, dirs_exist_ok=True, copy_function=_link_or_copy)
                    man = read_manifest(d)
                    if man is not None:
                        all_failures += [Failure(**f) for f in man.get("failures", [])]
                        gates.append(man.get("counts", {}).get("gate"))
                n_total, n_sources = writer.n_samples, len(writer.sources)
                has_images = any(images.iterdir())
                # commit: the old manifest first (a kill from here on leaves a folder that is not "done"),
                # then the complete dataset, then the images that go with it
                for stale in (out / "manifest.json", out / "preview.png"):
                    stale.unlink(missing_ok=True)
                writer.close()
                replace_file_exclusively(tmp, target)
            if not has_images:  # the staged (empty) folder replaced the old images: nothing to keep
                shutil.rmtree(out / "images", ignore_errors=True)
        finally:
            tmp.unlink(missing_ok=True)
    all_failures = sorted(set(all_failures), key=lambda f: f.path)  # discovery failures repeat in every shard
    preview = out / "preview.png"
    if n_total:
        preview_dataset(out / DATASET_NAME, preview)
    result = AugmentResult(out, n_sources, n_total, 0, n_total, all_failures, out / "manifest.json",
                           preview if n_total else None)
    write_manifest(
        out, command=command, seed=first.attrs.get("seed"), renderer=first.attrs.get("renderer"),
        model_sha256=first.attrs.get("model_sha256"), complete=complete,
        counts={"sources_ok": n_sources, "sources_failed": len(all_failures), "samples_total": n_total,
                **({"gate": gate} if (gate := _sum_gates(gates)) else {})},
        failures=all_failures,
        outputs={"dataset": DATASET_NAME, "folder": "images/" if (out / "images").is_dir() else None,
                 "preview": None if result.preview is None else result.preview.name},
        merged_from=[str(d) for d in shard_dirs],
        **dict(extra or {}),
    )
    return result


def _sum_gates(gates: list[Any]) -> dict[str, Any] | None:
    """The shards' quality-gate counts added up (None when no shard recorded any)."""
    gates = [g for g in gates if isinstance(g, dict)]
    if not gates:
        return None
    total = dict(gates[0])
    for key in ("redraws", "dropped", "hopeless"):
        total[key] = sum(int(g.get(key, 0)) for g in gates)
    total["rejected"] = {m: sum(int(g.get("rejected", {}).get(m, 0)) for g in gates) for m in gates[0].get("rejected", {})}
    return total


def _rows(r: Any, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches of a shard as ``DatasetWriter.append`` keywords, optional arrays included."""
    for a in range(0, len(r), batch_size):
        b = min(a + batch_size, len(r))
        batch = {
            "images": r.images[a:b], "landmarks": r.landmarks[a:b], "params": r.params[a:b], "pose": r.pose[a:b],
            "source_index": r.source_index[a:b], "target_index": r.target_index[a:b],
        }
        if r.masks is not None:
            batch["masks"] = r.masks[a:b]
        if r.fit_residual is not None:
            batch["fit_residual"] = r.fit_residual[a:b]
        batch.update({name: values[a:b] for name, values in r.fields.items()})
        yield batch


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link ``src`` to ``dst`` (no second copy of every image on disk); copy where links fail."""
    try:
        if os.path.lexists(dst):
            os.unlink(dst)
        os.link(src, dst)
        return dst
    except OSError:
        return shutil.copy2(src, dst)
