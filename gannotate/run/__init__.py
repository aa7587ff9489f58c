"""A run's own home: which faces it covers, what it must agree with, when it is done, what it records.

Used alike by ``augment`` (local and ``--shard``), ``frontalise``, ``merge`` and the Ray backend,
so a local run and a distributed one share one definition of "done".

* :mod:`~gannotate.run.sources` — discovery, shard selection, loading and cropping one face;
* :mod:`~gannotate.run.bookkeeping` — plan identity, resume checks, :func:`run_status`, shard layout;
* :mod:`~gannotate.run.manifest` — the one ``manifest.json`` writer and reader;
* :mod:`~gannotate.run.progress` — the progress protocol every job reports to, and the null one.
"""

from gannotate.run.bookkeeping import (
    DATASET_NAME,
    IDENTITY_KEYS,
    RESUME_KEYS,
    SHARDS_DIR,
    SOURCE_KEYS,
    RunStatus,
    ShardPlan,
    check_same_settings,
    check_same_sources,
    check_writable,
    load_shape_model,
    plan_identity,
    read_shard_plan,
    run_status,
    settings_diff,
    source_attrs,
    shard_dir,
    write_shard_plan,
)
from gannotate.run.manifest import MANIFEST_NAME, jsonable, read_manifest, versions, write_manifest
from gannotate.run.progress import NullProgress, Progress
from gannotate.run.sources import (
    DEFAULT_MARGIN,
    MIN_FACE_PX,
    REDUCED_DECODE_DETAIL,
    Failure,
    Source,
    crop_for_augment,
    failure_of,
    find_sources,
    keep_face_px,
    load_crop,
    missing_landmarks_hint,
    sources_digest,
    take_shard,
)

__all__ = [
    # sources
    "Source", "Failure", "find_sources", "take_shard", "sources_digest", "crop_for_augment", "load_crop",
    "failure_of", "missing_landmarks_hint", "DEFAULT_MARGIN", "MIN_FACE_PX", "keep_face_px", "REDUCED_DECODE_DETAIL",
    # bookkeeping
    "IDENTITY_KEYS", "RESUME_KEYS", "plan_identity", "settings_diff", "check_same_settings", "SOURCE_KEYS",
    "source_attrs", "check_same_sources", "check_writable",
    "load_shape_model", "RunStatus", "run_status", "DATASET_NAME", "SHARDS_DIR", "shard_dir", "ShardPlan",
    "read_shard_plan", "write_shard_plan",
    # manifest
    "MANIFEST_NAME", "write_manifest", "read_manifest", "versions", "jsonable",
    # progress
    "Progress", "NullProgress",
]
