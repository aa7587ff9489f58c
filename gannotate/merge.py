"""Join the outputs of sharded ``gannotate augment --shard i/n`` runs into one output folder.

Sources are re-indexed in the order the shards are given; each shard's samples keep their order.
The merged folder has the same layout as one run's: ``dataset.h5``, ``images/``, ``manifest.json``
(failures of all shards, each once) and ``preview.png`` (a sample of the merged dataset).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from gannotate.augment import AugmentResult, check_writable, versions
from gannotate.errors import DatasetError
from gannotate.io.folders import Failure

__all__ = ["merge_outputs", "MERGE_SAME_ATTRS"]

#: dataset attrs that must agree between shards (else the merged file would mix two experiments)
MERGE_SAME_ATTRS = ("scheme", "image_size", "n_params", "renderer", "model_sha256", "seed", "plan", "crop_margin")


def merge_outputs(out: Path, shard_dirs: list[Path]) -> AugmentResult:
    """Join ``gannotate augment --shard`` outputs into ``out``: one dataset, folder, manifest, preview.

    Sources are re-indexed in the order the shards are given; each shard's samples keep their order.

    Raises:
        DatasetError: ``out`` not writable, a shard without ``dataset.h5``, or shards made with
            different settings (scheme, size, seed, plan, renderer, model).
    """
    from gannotate.io.atomic import atomic_write_text
    from gannotate.io.hdf5 import DatasetReader, DatasetWriter
    from gannotate.preview import preview_dataset

    check_writable(out)
    resolved = [Path(d).resolve() for d in shard_dirs]
    if Path(out).resolve() in resolved:
        raise DatasetError(out, "cannot merge into one of the shards being merged (it would be overwritten)")
    if len(set(resolved)) != len(resolved):
        raise DatasetError(out, "a shard folder is given twice")
    readers = [DatasetReader(Path(d) / "dataset.h5") for d in shard_dirs]
    try:
        first = readers[0]
        seen: dict[str, Path] = {}
        for r in readers:  # shards partition the sources: a face in two shards would duplicate samples
            for key in r.sources:
                if key in seen:
                    raise DatasetError(r.path, f"cannot merge: source {key!r} is also in {seen[key]} (overlapping shards)")
                seen[key] = r.path
        for r in readers[1:]:
            diff = [k for k in MERGE_SAME_ATTRS if str(r.attrs.get(k)) != str(first.attrs.get(k))]
            if diff:
                raise DatasetError(r.path, f"cannot merge: differs from {first.path} in {diff}")
        attrs = {k: v for k, v in first.attrs.items() if k not in ("n_samples", "n_sources", "shard", "flip_index")}
        attrs["shard"] = "merged"
        attrs["merged_from"] = json.dumps([str(d) for d in shard_dirs])
        failures: list[Failure] = []
        with DatasetWriter(
            out / "dataset.h5", scheme=first.scheme, image_size=int(first.attrs["image_size"]),
            n_params=int(first.attrs["n_params"]), attrs=attrs, resume=False,
        ) as writer:
            for d, r in zip(shard_dirs, readers):
                remap = np.array([writer.add_source(k) for k in r.sources] or [0], np.int32)
                for batch in r.iter_batches(256):
                    writer.append(
                        batch["images"], batch["landmarks"], batch["params"], batch["pose"],
                        remap[batch["source_index"]], batch["target_index"],
                    )
                if (Path(d) / "images").is_dir():
                    shutil.copytree(Path(d) / "images", out / "images", dirs_exist_ok=True)
                man = Path(d) / "manifest.json"
                if man.is_file():
                    failures += [Failure(**f) for f in json.loads(man.read_text())["failures"]]
            n_total, n_sources = writer.n_samples, len(writer.sources)
    finally:
        for r in readers:
            r.close()
    failures = sorted(set(failures), key=lambda f: f.path)  # discovery failures repeat in every shard
    preview = out / "preview.png"
    preview_dataset(out / "dataset.h5", preview)
    result = AugmentResult(out, n_sources, n_total, 0, n_total, failures, out / "manifest.json", preview)
    manifest = {
        "command": "gannotate merge " + " ".join([str(out)] + [str(d) for d in shard_dirs]),
        "seed": first.attrs.get("seed"),
        "model_sha256": first.attrs.get("model_sha256"),
        "versions": versions(),
        "merged_from": [str(d) for d in shard_dirs],
        "counts": {"sources_ok": n_sources, "sources_failed": len(failures), "samples_total": n_total},
        "failures": [asdict(f) for f in failures],
    }
    atomic_write_text(result.manifest, json.dumps(manifest, indent=2) + "\n")
    return result
