"""Read a run HDF5 (layout in :mod:`gannotate.io.hdf5.layout`); only committed rows are visible.

Images are checked against their stored CRC32 as they are read, and the ground truth of every
committed row (landmarks, params, pose, source and target index) against ``truth_crc32`` when the
file is opened, so an export, a preview, an evaluation, a merge or a training set built on a damaged
file stops with :class:`~gannotate.errors.DatasetCorruptError` (one line: the rows and the field)
instead of shipping the damage. Files from before a checksum existed are read unchecked in what it
would cover (before ``truth_crc32``: the ground truth; before ``image_crc32``: the images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from gannotate.errors import DatasetCorruptError, DatasetError
from gannotate.io.filelock import short_reason
from gannotate.io.hdf5.layout import (
    CRC_DATASET,
    ROW_DATASETS,
    SAMPLE_FIELDS,
    TRUTH_CRC_DATASET,
    decode_strings,
    image_crc32,
    py_value,
    truth_crc32,
)

__all__ = ["ImageRows", "DatasetReader", "truth_fields", "check_truth"]


def truth_fields(f: h5py.File) -> list[str]:
    """The fields ``truth_crc32`` covers in this file, in column order (its ``fields`` attr)."""
    return decode_strings(f[TRUTH_CRC_DATASET].attrs["fields"])


def check_truth(path: str | Path, f: h5py.File, n: int, rows: Mapping[str, np.ndarray]) -> None:
    """Compare the first ``n`` rows of each ground-truth field with ``truth_crc32``.

    Args:
        rows: field name → its first ``n`` rows as stored (at least the fields of :func:`truth_fields`).

    Raises:
        DatasetCorruptError: naming the damaged rows and the field(s) that changed.
    """
    try:
        fields = truth_fields(f)
        stored = f[TRUTH_CRC_DATASET][:n]
    except (KeyError, OSError) as e:
        raise DatasetCorruptError(path, [], detail=f"{TRUTH_CRC_DATASET} is not readable ({short_reason(e)})") from None
    if stored.shape != (n, len(fields)) or any(name not in rows for name in fields):
        raise DatasetCorruptError(path, [], detail=f"{TRUTH_CRC_DATASET} has shape {stored.shape}, expected "
                                                   f"({n}, {len(fields)}) for the fields {fields}")
    bad = truth_crc32(rows, fields) != stored  # (n, F)
    if bad.any():
        cols = np.nonzero(bad.any(axis=0))[0]
        raise DatasetCorruptError(path, np.nonzero(bad.any(axis=1))[0].tolist(),
                                  ", ".join(fields[c] for c in cols))


class ImageRows:
    """Lazy, read-only view of the first ``n`` rows of an HDF5 dataset (images can be gigabytes).

    Supports ``len``, ``shape``, ``dtype``, ``np.asarray`` and indexing by int, slice or index array
    (any order, duplicates allowed) along the first axis. With ``crc`` (N,) uint32 every row read
    is checked against it.

    Raises:
        DatasetCorruptError: a row read does not match its checksum.
    """

    def __init__(self, dataset: h5py.Dataset, n: int, crc: np.ndarray | None = None, path: str | Path = ""):
        self._ds, self._n, self._crc, self._path = dataset, n, crc, path

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n,) + tuple(self._ds.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._ds.dtype

    def _checked(self, rows: np.ndarray, data: np.ndarray) -> np.ndarray:
        """``data`` (len(rows), ...) after comparing each row with its stored CRC32."""
        if self._crc is not None and len(rows):
            bad = rows[image_crc32(data) != self._crc[rows]]
            if bad.size:
                raise DatasetCorruptError(self._path, sorted(set(bad.tolist())))
        return data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self._checked(np.arange(self._n), self._ds[: self._n])
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._n if key < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"index {key} out of range for {self._n} samples")
            out = self._checked(np.array([i]), self._ds[i : i + 1])[0]
            return out[rest] if rest else out
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step == 1:
                stop = max(start, stop)
                out = self._checked(np.arange(start, stop), self._ds[start:stop])
                return out[(slice(None),) + rest] if rest else out
            key = np.arange(start, stop, step)
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = np.where(idx < 0, idx + self._n, idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"indices out of range for {self._n} samples")
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing, unique indices
        data = self._checked(uniq, self._ds[uniq.tolist()]) if uniq.size else self._ds[:0]
        out = data[inv.reshape(idx.shape)] if uniq.size else data
        return out[(slice(None),) + rest] if rest else out


class DatasetReader:
    """Read a dataset written by :class:`~gannotate.io.hdf5.writer.DatasetWriter`; only committed rows are visible.

    Attributes:
        images: :class:`ImageRows` lazy (N, H, W, 3) uint8, checked against ``image_crc32`` on read.
        masks: :class:`ImageRows` lazy (N, H, W) uint8, or None when the run wrote no masks.
        fit_residual: (N,) float32 or None.
        fields: the optional per-sample fields the file has (``layout.SAMPLE_FIELDS``), name → (N,) array.
        landmarks (N, K, 2) float32, params (N, P) float32, pose (N, 3) float32,
        source_index (N,) int32, target_index (N,) int32: numpy arrays.
        sources: list of M source keys. attrs: dict of plain Python values.

    Example:
        >>> with DatasetReader("out.h5") as r:
        ...     sample = r[0]            # dict: image, landmarks, params, pose, source_index, target_index, source
        ...     for batch in r.iter_batches(64): ...
        ...     assert r.verify() == []  # every image matches its checksum
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(self.path, "dataset file not found")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise DatasetError(self.path, f"not a readable HDF5 file ({short_reason(e)})") from None
        missing = [n for n in ROW_DATASETS + ("sources",) if n not in self._f]
        if missing or "n_samples" not in self._f.attrs:
            self._f.close()
            raise DatasetError(self.path, f"not a gannotate dataset (missing {missing or ['n_samples attr']})")
        f = self._f
        n = self._n = int(f.attrs["n_samples"])
        self.attrs: dict[str, Any] = {k: py_value(v) for k, v in f.attrs.items()}
        self._crc: np.ndarray | None = f[CRC_DATASET][:n] if CRC_DATASET in f else None
        self.images = ImageRows(f["images"], n, self._crc, self.path)
        self.masks: ImageRows | None = ImageRows(f["masks"], n, None, self.path) if "masks" in f else None
        self.fit_residual: np.ndarray | None = f["fit_residual"][:n] if "fit_residual" in f else None
        self.fields: dict[str, np.ndarray] = {k: f[k][:n] for k in SAMPLE_FIELDS if k in f}
        self.landmarks: np.ndarray = f["landmarks"][:n]
        self.params: np.ndarray = f["params"][:n]
        self.pose: np.ndarray = f["pose"][:n]
        self.source_index: np.ndarray = f["source_index"][:n]
        self.target_index: np.ndarray = f["target_index"][:n]
        m = int(f.attrs.get("n_sources", f["sources"].shape[0]))
        self.sources: list[str] = decode_strings(f["sources"][:m])
        self.has_truth_checksums = TRUTH_CRC_DATASET in f
        if self.has_truth_checksums:
            try:
                check_truth(self.path, f, n, {name: self._rows_of(name) for name in truth_fields(f)})
            except BaseException:
                f.close()
                raise

    def _rows_of(self, name: str) -> np.ndarray:
        """The committed rows of a small per-row field: the array already read, else from the file."""
        have = getattr(self, name, None)
        if isinstance(have, np.ndarray):
            return have
        if name not in self._f:
            raise DatasetCorruptError(self.path, [], detail=f"{TRUTH_CRC_DATASET} covers {name!r}, which is missing")
        return self._f[name][: self._n]

    @property
    def scheme(self) -> str:
        """Landmark scheme name stored in the file."""
        return str(self.attrs["scheme"])

    @property
    def has_checksums(self) -> bool:
        """False for files written before ``image_crc32`` existed (they are read unchecked)."""
        return self._crc is not None

    def verify(self, rows: np.ndarray | range | None = None, chunk: int = 256) -> list[int]:
        """Rows among ``rows`` (default: all) whose image bytes do not match their stored CRC32.

        Returns an empty list for a file without checksums (nothing to compare with).
        """
        if self._crc is None:
            return []
        idx = np.arange(self._n) if rows is None else np.asarray(rows, dtype=np.int64)
        bad: list[int] = []
        ds = self._f["images"]
        for a in range(0, len(idx), chunk):
            part = np.unique(idx[a : a + chunk])
            data = ds[part.tolist()] if part.size else ds[:0]
            bad.extend(part[image_crc32(data) != self._crc[part]].tolist())
        return bad

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Sample ``i`` as a dict: image (H, W, 3) uint8, landmarks (K, 2), params (P,), pose (3,),
        source_index, target_index (int) and source (str)."""
        if not -self._n <= i < self._n:
            raise IndexError(f"sample {i} out of range for {self._n} samples")
        i = int(i) % self._n
        si = int(self.source_index[i])
        return {
            "image": self.images[i],
            "landmarks": self.landmarks[i],
            "params": self.params[i],
            "pose": self.pose[i],
            "source_index": si,
            "target_index": int(self.target_index[i]),
            "source": self.sources[si] if 0 <= si < len(self.sources) else "",
        }

    def iter_batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Yield consecutive batches (the last may be short) as dicts of arrays keyed like the
        datasets: images (b, H, W, 3), landmarks (b, K, 2), params, pose, source_index, target_index."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        for a in range(0, self._n, batch_size):
            b = min(a + batch_size, self._n)
            yield {
                "images": self.images[a:b],
                "landmarks": self.landmarks[a:b],
                "params": self.params[a:b],
                "pose": self.pose[a:b],
                "source_index": self.source_index[a:b],
                "target_index": self.target_index[a:b],
            }

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> "DatasetReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
