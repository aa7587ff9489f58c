"""What the writer and the reader of the run HDF5 agree on: dataset names, attrs, checksums.

One HDF5 file per run: the generated samples, their landmarks, shape parameters and provenance.
Layout (N committed samples, K points, P shape parameters, M source faces)::

    images        (N, H, W, 3) uint8 RGB, chunked (1, H, W, 3) so one sample reads one chunk
    image_crc32   (N,)         uint32 CRC32 of each image's bytes (read back and compared)
    truth_crc32   (N, F)       uint32 CRC32 of each row's ground truth, one column per field named
                               in its ``fields`` attr (landmarks, params, pose, source_index,
                               target_index), each in its stored dtype; files from before it
                               existed have none (their ground truth is read unchecked)
    landmarks     (N, K, 2)    float32 (x, y), 0-based pixel centres, in image coordinates
    params        (N, P)       float32 shape-model parameters of the target shape
    pose          (N, 3)       float32 yaw, pitch, roll in degrees
    source_index  (N,)         int32 row of ``sources`` the sample was rendered from
    target_index  (N,)         int32 index of the target within its source's plan (resume key)
    masks         (N, H, W)    uint8, optional (renderers that know which pixels they invented),
                               chunked (1, H, W), gzip
    fit_residual  (N,)         float32, optional (how well a 3D fit matched the source points)
    mirrored, turn_deg, face_score, source_face_score, reader_nme, identity, invalid_share
                  (N,)         optional per-sample fields (:data:`SAMPLE_FIELDS` says what each is)
    sources       (M,)         utf-8 strings: source keys/paths
    attrs: scheme, coord_origin='0-based pixel centres', flip_index (K,) int, image_size, n_params,
           renderer, model_sha256, seed, command, version (+ whatever the caller passes),
           n_samples (committed rows), n_sources (committed sources), last_commit_start,
           format_version.

docs/reference.md holds the same table for users.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

__all__ = ["FORMAT_VERSION", "COORD_ORIGIN", "ROW_DATASETS", "OPTIONAL_ROW_DATASETS", "CRC_DATASET",
           "TRUTH_CRC_DATASET", "TRUTH_FIELDS", "SAMPLE_FIELDS", "image_crc32", "truth_crc32", "attr_value",
           "py_value", "decode_strings"]

FORMAT_VERSION = 1
COORD_ORIGIN = "0-based pixel centres"
ROW_DATASETS = ("images", "landmarks", "params", "pose", "source_index", "target_index")
CRC_DATASET = "image_crc32"
#: (N, F) uint32: one CRC32 per committed row and ground-truth field; the dataset's ``fields`` attr
#: names the columns (a reader checks the fields a file lists, so the list may grow)
TRUTH_CRC_DATASET = "truth_crc32"
#: the ground truth a sample is trained on, checksummed per row (:func:`truth_crc32`)
TRUTH_FIELDS = ("landmarks", "params", "pose", "source_index", "target_index")
#: Optional per-sample scalars, name → dtype, each an (N,) dataset written when the run passes it: which side a
#: sample was rendered from (``mirrored``, ``turn_deg``: gannotate.plan) and its quality measures
#: (gannotate.metrics.quality). Files made before a field existed simply lack it.
SAMPLE_FIELDS: dict[str, type] = {
    "mirrored": np.bool_,         # rendered from the mirror image of the source
    "turn_deg": np.float32,       # |target yaw − yaw of the side rendered from|, degrees
    "face_score": np.float32,     # YuNet's score of the face in the sample, 0 = not found
    "source_face_score": np.float32,  # the same score of its source crop (the gate's face line follows it below the line)
    "reader_nme": np.float32,     # shipped detector's NME (%) at the targets; NaN beyond the yaw it knows
    "identity": np.float32,       # SFace cosine to the source face
    "invalid_share": np.float32,  # share of the face (target landmark hull) the mask marks invented
}
# written when the first append passes them (or, for the checksums, by every writer since they existed)
OPTIONAL_ROW_DATASETS = ("masks", "fit_residual", CRC_DATASET, TRUTH_CRC_DATASET) + tuple(SAMPLE_FIELDS)
STR = h5py.string_dtype("utf-8")


def image_crc32(images: np.ndarray) -> np.ndarray:
    """(B,) uint32 CRC32 of each sample's C-order bytes: cheap (≈ 1 GB/s) and catches flipped bits.

    Args:
        images: (B, ...) array; each ``images[i]`` is checksummed on its own.
    """
    a = np.ascontiguousarray(images)
    return np.fromiter((zlib.crc32(row.tobytes()) for row in a), dtype=np.uint32, count=len(a))


def truth_crc32(rows: Mapping[str, np.ndarray], fields: Sequence[str] = TRUTH_FIELDS) -> np.ndarray:
    """(B, F) uint32 CRC32 of each row of each field, in the dtype the file stores it.

    Why per field: a damaged row is then reported with the field that changed (landmarks, pose, ...).

    Args:
        rows: field name → (B, ...) array, already in its stored dtype (float32 points, int32 indices).
        fields: which fields, in column order.
    """
    cols = [image_crc32(np.asarray(rows[f])) for f in fields]
    n = len(cols[0]) if cols else 0
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0), np.uint32)


def attr_value(value: Any) -> Any:
    """Make a Python value storable as an HDF5 attribute (dicts and None become JSON text)."""
    if value is None or isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.asarray(value, dtype=STR)
    return value


def py_value(value: Any) -> Any:
    """HDF5 attribute → plain Python/numpy (bytes → str, numpy scalars → Python scalars)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.tolist()]
    return value


def decode_strings(values: Any) -> list[str]:
    """A read string dataset → list of str."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
