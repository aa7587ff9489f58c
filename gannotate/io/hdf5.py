"""One HDF5 file per run: the generated samples, their landmarks, shape parameters and provenance.

Layout (N committed samples, K points, P shape parameters, M source faces)::

    images        (N, H, W, 3) uint8 RGB, chunked (1, H, W, 3) so one sample reads one chunk
    landmarks     (N, K, 2)    float32 (x, y), 0-based pixel centres, in image coordinates
    params        (N, P)       float32 shape-model parameters of the target shape
    pose          (N, 3)       float32 yaw, pitch, roll in degrees
    source_index  (N,)         int32 row of ``sources`` the sample was rendered from
    target_index  (N,)         int32 index of the target within its source's plan (resume key)
    sources       (M,)         utf-8 strings: source keys/paths
    attrs: scheme, coord_origin='0-based pixel centres', flip_index (K,) int, image_size, n_params,
           renderer, model_sha256, seed, command, version (+ whatever the caller passes),
           n_samples (committed rows), n_sources (committed sources), format_version.

Crash safety: datasets may hold more rows than ``n_samples`` (a batch was being written when the
process died); those rows are not part of the dataset. :meth:`DatasetWriter.append` writes data
first, then the ``n_samples`` attribute, then flushes, so a committed sample is always complete.
Reopening with ``resume=True`` trims the uncommitted rows and carries on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from gannotate import __version__
from gannotate.errors import DatasetError
from gannotate.landmarks import get_scheme

__all__ = ["DatasetWriter", "DatasetReader", "ImageRows", "FORMAT_VERSION", "COORD_ORIGIN"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
COORD_ORIGIN = "0-based pixel centres"
_ROW_DATASETS = ("images", "landmarks", "params", "pose", "source_index", "target_index")
_STR = h5py.string_dtype("utf-8")


def _attr_value(value: Any) -> Any:
    """Make a Python value storable as an HDF5 attribute (dicts and None become JSON text)."""
    if value is None or isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.asarray(value, dtype=_STR)
    return value


def _py(value: Any) -> Any:
    """HDF5 attribute → plain Python/numpy (bytes → str, numpy scalars → Python scalars)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value.tolist()]
    return value


class DatasetWriter:
    """Append generated samples to an HDF5 file; resumable and crash-safe (see module doc).

    Args:
        path: the .h5 file (its folder is created).
        scheme: landmark scheme name (``"ibug68"``); K and the flip table come from it.
        image_size: H = W of the stored images.
        n_params: P, length of each shape-parameter vector.
        attrs: provenance stored as file attributes (renderer, model_sha256, seed, command, ...).
        resume: reopen an existing file and continue after its committed rows; ``False`` starts a
            new file, replacing any old one.
        compression: h5py compression for ``images`` (``None`` by default: gzip costs more time
            than it saves on rendered faces; ``"gzip"`` or ``"lzf"`` when disk matters).

    Raises:
        DatasetError: the existing file was written with another scheme/size/P, or is not readable.

    Example:
        >>> with DatasetWriter("out.h5", scheme="ibug68", image_size=128, n_params=16, attrs={"seed": 0}) as w:
        ...     s = w.add_source("faces/einstein")
        ...     w.append(images, landmarks, params, pose, [s] * len(images), range(len(images)))
    """

    def __init__(
        self,
        path: str | Path,
        *,
        scheme: str,
        image_size: int,
        n_params: int,
        attrs: Mapping[str, Any] | None = None,
        resume: bool = True,
        compression: str | None = None,
    ):
        self.path = Path(path)
        self.scheme = get_scheme(scheme)
        self.image_size = int(image_size)
        self.n_params = int(n_params)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and resume
        try:
            self._f = h5py.File(self.path, "a" if exists else "w")
        except OSError as e:
            raise DatasetError(self.path, f"cannot open HDF5 file for writing ({e})") from None
        if exists and "n_samples" not in self._f.attrs:  # died while creating: nothing committed
            log.warning("%s: incomplete file from an earlier run; starting over", self.path)
            self._f.close()
            self._f = h5py.File(self.path, "w")
            exists = False
        try:
            if exists:
                self._check_compatible()
                self._trim_uncommitted()
            else:
                self._create(dict(attrs or {}), compression)
        except BaseException:
            self._f.close()
            raise
        self._n = int(self._f.attrs["n_samples"])
        self._source_rows = {s: i for i, s in enumerate(self._read_sources())}
        if exists and attrs:
            for k, v in attrs.items():  # keep the first run's provenance; add keys it lacked
                if k not in self._f.attrs:
                    self._f.attrs[k] = _attr_value(v)
        log.info("%s: %d committed samples, %d sources", self.path, self._n, len(self._source_rows))

    # -- set-up -----------------------------------------------------------------------------------
    def _create(self, attrs: dict[str, Any], compression: str | None) -> None:
        f, k, s, p = self._f, self.scheme.n_points, self.image_size, self.n_params
        f.create_dataset("images", (0, s, s, 3), np.uint8, maxshape=(None, s, s, 3), chunks=(1, s, s, 3),
                         compression=compression)
        f.create_dataset("landmarks", (0, k, 2), np.float32, maxshape=(None, k, 2), chunks=(256, k, 2))
        f.create_dataset("params", (0, p), np.float32, maxshape=(None, p), chunks=(256, max(p, 1)))
        f.create_dataset("pose", (0, 3), np.float32, maxshape=(None, 3), chunks=(256, 3))
        f.create_dataset("source_index", (0,), np.int32, maxshape=(None,), chunks=(1024,))
        f.create_dataset("target_index", (0,), np.int32, maxshape=(None,), chunks=(1024,))
        f.create_dataset("sources", (0,), _STR, maxshape=(None,), chunks=(256,))
        for key, value in attrs.items():
            f.attrs[key] = _attr_value(value)
        f.attrs["scheme"] = self.scheme.name
        f.attrs["coord_origin"] = COORD_ORIGIN
        f.attrs["flip_index"] = np.asarray(self.scheme.flip_index, dtype=np.int32)
        f.attrs["image_size"] = self.image_size
        f.attrs["n_params"] = self.n_params
        f.attrs.setdefault("version", __version__)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_sources"] = 0
        f.attrs["n_samples"] = 0
        f.flush()

    def _check_compatible(self) -> None:
        a = self._f.attrs
        have = (_py(a.get("scheme")), int(a.get("image_size", -1)), int(a.get("n_params", -1)))
        want = (self.scheme.name, self.image_size, self.n_params)
        if have != want:
            raise DatasetError(
                self.path,
                f"cannot resume: file has scheme/image_size/n_params {have}, this run wants {want}; "
                "use another output path or resume=False to start over",
            )

    def _trim_uncommitted(self) -> None:
        """Drop rows written after the last commit (a crash mid-batch); they were never in the index."""
        f = self._f
        n = int(f.attrs.get("n_samples", 0))
        rows = min(f[name].shape[0] for name in _ROW_DATASETS)
        if n > rows:  # cannot happen with our write order; refuse rather than invent data
            raise DatasetError(self.path, f"n_samples={n} but only {rows} complete rows; file is damaged")
        for name in _ROW_DATASETS:
            if f[name].shape[0] != n:
                log.warning("%s: dropping %d uncommitted rows of %s", self.path, f[name].shape[0] - n, name)
                f[name].resize(n, axis=0)
        m = min(int(f.attrs.get("n_sources", 0)), f["sources"].shape[0])
        if f["sources"].shape[0] != m:
            f["sources"].resize(m, axis=0)
        f.attrs["n_sources"] = m
        f.flush()

    def _read_sources(self) -> list[str]:
        m = int(self._f.attrs["n_sources"])
        return [s.decode("utf-8") if isinstance(s, bytes) else s for s in self._f["sources"][:m]]

    # -- writing ----------------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        """Number of committed samples."""
        return self._n

    @property
    def sources(self) -> list[str]:
        """Source keys in index order."""
        return list(self._source_rows)

    def add_source(self, key: str) -> int:
        """Row of ``key`` in ``sources``, adding it if new (idempotent, also across resumes)."""
        key = str(key)
        row = self._source_rows.get(key)
        if row is None:
            row = len(self._source_rows)
            ds = self._f["sources"]
            ds.resize(row + 1, axis=0)
            ds[row] = key
            self._f.attrs["n_sources"] = row + 1  # made durable by the next append's flush
            self._source_rows[key] = row
        return row

    def append(
        self,
        images: np.ndarray,
        landmarks: np.ndarray,
        params: np.ndarray,
        pose: np.ndarray,
        source_index: np.ndarray | int,
        target_index: np.ndarray | int,
    ) -> int:
        """Append a batch of B samples and commit it; returns the new ``n_samples``.

        Args:
            images: (B, H, W, 3) uint8 RGB, H = W = image_size.
            landmarks: (B, K, 2) float32 (x, y), 0-based, in image pixels.
            params: (B, P) float32.
            pose: (B, 3) float32 yaw, pitch, roll in degrees.
            source_index: (B,) int rows from :meth:`add_source` (a scalar is broadcast).
            target_index: (B,) int (a scalar is broadcast).

        Raises:
            DatasetError: a shape disagrees with the file, or a source index was never added.
        """
        im = np.asarray(images)
        b = im.shape[0] if im.ndim == 4 else -1
        k, s, p = self.scheme.n_points, self.image_size, self.n_params
        for name, idx in (("source_index", source_index), ("target_index", target_index)):
            if np.ndim(idx) > 1 or (np.ndim(idx) == 1 and len(idx) != max(b, 0)):
                raise DatasetError(self.path, f"append: {name} has shape {np.shape(idx)}, expected ({max(b, 0)},) or a scalar")
        if b >= 0 and np.size(params) % max(b, 1):
            raise DatasetError(self.path, f"append: params has shape {np.shape(params)}, expected ({b}, {p})")
        arrays = {
            "images": (im, (b, s, s, 3), np.uint8),
            "landmarks": (np.asarray(landmarks, np.float32), (b, k, 2), np.float32),
            "params": (np.asarray(params, np.float32).reshape(b, -1) if b >= 0 else params, (b, p), np.float32),
            "pose": (np.asarray(pose, np.float32), (b, 3), np.float32),
            "source_index": (np.broadcast_to(np.asarray(source_index, np.int64), (max(b, 0),)), (b,), np.int32),
            "target_index": (np.broadcast_to(np.asarray(target_index, np.int64), (max(b, 0),)), (b,), np.int32),
        }
        for name, (arr, shape, _) in arrays.items():
            if np.shape(arr) != shape:
                raise DatasetError(self.path, f"append: {name} has shape {np.shape(arr)}, expected {shape}")
        if im.dtype != np.uint8:
            raise DatasetError(self.path, f"append: images must be uint8, got {im.dtype}")
        src = arrays["source_index"][0]
        if b and (src.min() < 0 or src.max() >= len(self._source_rows)):
            raise DatasetError(self.path, f"append: source_index out of range [0, {len(self._source_rows)})")
        if b == 0:
            return self._n
        n0, n1 = self._n, self._n + b
        for name, (arr, _, dtype) in arrays.items():  # 1. data (rows beyond n_samples: not yet visible)
            ds = self._f[name]
            if ds.shape[0] < n1:
                ds.resize(n1, axis=0)
            ds[n0:n1] = arr.astype(dtype, copy=False)
        self._f.attrs["n_samples"] = n1  # 2. commit
        self._f.flush()  # 3. make it durable
        self._n = n1
        return n1

    def done_pairs(self) -> set[tuple[int, int]]:
        """``{(source_index, target_index)}`` of every committed sample (what a resumed run skips)."""
        si = self._f["source_index"][: self._n]
        ti = self._f["target_index"][: self._n]
        return set(zip(si.tolist(), ti.tolist()))

    @property
    def attrs(self) -> dict[str, Any]:
        """The file attributes as plain Python values."""
        return {k: _py(v) for k, v in self._f.attrs.items()}

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._f.id.valid:
            self._f.flush()
            self._f.close()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ImageRows:
    """Lazy, read-only view of the first ``n`` rows of an HDF5 dataset (images can be gigabytes).

    Supports ``len``, ``shape``, ``dtype``, ``np.asarray`` and indexing by int, slice or index array
    (any order, duplicates allowed) along the first axis.
    """

    def __init__(self, dataset: h5py.Dataset, n: int):
        self._ds, self._n = dataset, n

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n,) + tuple(self._ds.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._ds.dtype

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self._ds[: self._n]
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self._n if key < 0 else 0)
            if not 0 <= i < self._n:
                raise IndexError(f"index {key} out of range for {self._n} samples")
            out = self._ds[i]
            return out[rest] if rest else out
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step == 1:
                out = self._ds[start:max(start, stop)]
                return out[(slice(None),) + rest] if rest else out
            key = np.arange(start, stop, step)
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = np.where(idx < 0, idx + self._n, idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"indices out of range for {self._n} samples")
        uniq, inv = np.unique(idx, return_inverse=True)  # h5py wants increasing, unique indices
        out = self._ds[uniq.tolist()][inv.reshape(idx.shape)] if uniq.size else self._ds[:0]
        return out[(slice(None),) + rest] if rest else out


class DatasetReader:
    """Read a dataset written by :class:`DatasetWriter`; only committed rows are visible.

    Attributes:
        images: :class:`ImageRows` lazy (N, H, W, 3) uint8.
        landmarks (N, K, 2) float32, params (N, P) float32, pose (N, 3) float32,
        source_index (N,) int32, target_index (N,) int32: numpy arrays.
        sources: list of M source keys. attrs: dict of plain Python values.

    Example:
        >>> with DatasetReader("out.h5") as r:
        ...     sample = r[0]            # dict: image, landmarks, params, pose, source_index, target_index, source
        ...     for batch in r.iter_batches(64): ...
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(self.path, "dataset file not found")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise DatasetError(self.path, f"not a readable HDF5 file ({e})") from None
        missing = [n for n in _ROW_DATASETS + ("sources",) if n not in self._f]
        if missing or "n_samples" not in self._f.attrs:
            self._f.close()
            raise DatasetError(self.path, f"not a gannotate dataset (missing {missing or ['n_samples attr']})")
        f = self._f
        self._n = int(f.attrs["n_samples"])
        self.attrs: dict[str, Any] = {k: _py(v) for k, v in f.attrs.items()}
        self.images = ImageRows(f["images"], self._n)
        self.landmarks: np.ndarray = f["landmarks"][: self._n]
        self.params: np.ndarray = f["params"][: self._n]
        self.pose: np.ndarray = f["pose"][: self._n]
        self.source_index: np.ndarray = f["source_index"][: self._n]
        self.target_index: np.ndarray = f["target_index"][: self._n]
        m = int(f.attrs.get("n_sources", f["sources"].shape[0]))
        self.sources: list[str] = [s.decode("utf-8") if isinstance(s, bytes) else s for s in f["sources"][:m]]

    @property
    def scheme(self) -> str:
        """Landmark scheme name stored in the file."""
        return str(self.attrs["scheme"])

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
