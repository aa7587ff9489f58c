"""Write the run HDF5 (layout in :mod:`gannotate.io.hdf5.layout`), resumable and crash safe.

Crash safety: datasets may hold more rows than ``n_samples`` (a batch was being written when the
process died); those rows are not part of the dataset. :meth:`DatasetWriter.append` writes and
flushes the data first, and only then writes and flushes the ``n_samples`` attribute, so a
committed sample is always complete, also when the disk fills up in the middle (the error is a
one-line :class:`~gannotate.errors.DatasetError` saying "disk full"). Before each batch the free
space is checked (twice the batch's bytes + 4 MiB), so a disk that fills up is refused before HDF5
meets ENOSPC: HDF5 cannot recover from a failed flush (its ids then fail to close, and HDF5 2.0
can crash at interpreter exit on them: the CLI then leaves through ``os._exit``, see
:func:`failed_writes`; h5py's tracebacks for those ids go to the debug log). Reopening with
``resume=True`` trims the uncommitted rows, rebuilds ``sources`` from its committed entries (a
string added just before a crash can leave a dangling heap reference behind) and checks the last
committed batch against its checksums (the ground truth of every committed row, which is small, and
the images of the last batch). ``resume=False`` never truncates a file another process has
open: that run is refused with "in use by another run".
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from gannotate import __version__
from gannotate.errors import DatasetCorruptError, DatasetError
from gannotate.io.filelock import IN_USE, is_disk_full, is_lock_error, replace_exclusively, short_reason
from gannotate.io.hdf5.layout import (
    COORD_ORIGIN,
    CRC_DATASET,
    FORMAT_VERSION,
    OPTIONAL_ROW_DATASETS,
    ROW_DATASETS,
    SAMPLE_FIELDS,
    STR,
    TRUTH_CRC_DATASET,
    TRUTH_FIELDS,
    attr_value,
    decode_strings,
    image_crc32,
    py_value,
    truth_crc32,
)
from gannotate.io.hdf5.reader import check_truth, truth_fields
from gannotate.landmarks import get_scheme

__all__ = ["DatasetWriter", "failed_writes"]

log = logging.getLogger(__name__)

_RESUME_CHECK_MIN_ROWS = 16  # resume re-reads at least this many of the last committed rows
_SPACE_MARGIN = 4 * 2**20  # HDF5 metadata and chunk-cache slack on top of twice a batch's bytes

# Writes HDF5 itself refused in this process (process state, not run state: after one, HDF5's ids for
# that file stay broken and the library can crash at interpreter exit; the CLI then exits with
# os._exit, see gannotate/cli/options.py).
_failed_writes = 0


def failed_writes() -> int:
    """How many writes HDF5 refused in this process so far (disk full, I/O error).

    Why: after a failed flush HDF5 keeps ids it cannot close, and HDF5 2.0 can segfault in its
    own atexit handler on them; a caller that must exit with a meaningful code (the CLI) compares
    this count before and after its work and, when it grew, leaves with ``os._exit``.
    """
    return _failed_writes


def _is_h5py_dealloc_error(exc: BaseException | None, tb: Any) -> bool:
    """An error h5py raised while releasing an id (``ObjectID._dealloc``), nothing else."""
    if not isinstance(exc, (OSError, RuntimeError)):
        return False
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = None if tb is None else tb.tb_frame.f_code
    return code is not None and code.co_name.endswith("_dealloc") and "h5py" in code.co_filename


def _quiet_h5py_dealloc_errors() -> None:
    """When a write fails, h5py reports every id it then fails to release as a traceback plus
    "Exception ignored in ObjectID.__dealloc__" on stderr (through ``sys.excepthook`` and
    ``sys.unraisablehook``), a dozen of them while the write itself is still failing; the
    DatasetError says what happened, so those go to the debug log instead. Installed once per
    process by the first write (it must be in place before the failure); every other error passes
    through unchanged."""
    if getattr(sys.unraisablehook, "_gannotate_h5py_filter", False):
        return
    previous_unraisable, previous_except = sys.unraisablehook, sys.excepthook

    def unraisable_hook(u: Any) -> None:
        if "ObjectID.__dealloc__" in str(u.object) and isinstance(u.exc_value, (OSError, RuntimeError)):
            log.debug("h5py could not release an id after a failed write: %s", short_reason(u.exc_value, 200))
            return
        previous_unraisable(u)

    def except_hook(kind: type, exc: BaseException, tb: Any) -> None:
        if _is_h5py_dealloc_error(exc, tb):
            return
        previous_except(kind, exc, tb)

    unraisable_hook._gannotate_h5py_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook


def _free_bytes(folder: Path) -> int | None:
    """Bytes the current user may still write under ``folder`` (None where the OS cannot say)."""
    try:
        st = os.statvfs(folder)
    except (AttributeError, OSError):
        return None
    return st.f_bavail * st.f_frsize


class DatasetWriter:
    """Append generated samples to an HDF5 file; resumable and crash-safe (see module doc).

    Args:
        path: the .h5 file (its folder is created).
        scheme: landmark scheme name (``"ibug68"``); K and the flip table come from it.
        image_size: H = W of the stored images.
        n_params: P, length of each shape-parameter vector.
        attrs: provenance stored as file attributes (renderer, model_sha256, seed, command, ...).
        resume: reopen an existing file and continue after its committed rows; ``False`` starts a
            new file, replacing any old one (refused while another process has it open).
        compression: h5py compression for ``images`` (``None`` by default: gzip costs more time
            than it saves on rendered faces; ``"gzip"`` or ``"lzf"`` when disk matters).

    Raises:
        DatasetError: the existing file was written with another scheme/size/P, is not readable,
            or is in use by another run.
        DatasetCorruptError: resuming a file whose last committed images fail their checksum.

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
        self._failed: str | None = None  # set after an I/O error: the file state is then unknown
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and resume
        self._f = self._open_existing() if exists else self._open_new()
        if exists and "n_samples" not in self._f.attrs:  # died while creating: nothing committed
            log.warning("%s: incomplete file from an earlier run; starting over", self.path)
            self._f.close()
            self._f = self._open_new()
            exists = False
        try:
            if exists:
                self._check_compatible()
                self._trim_uncommitted()
                self._rebuild_sources()
                self._verify_last_batch()
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
                    self._f.attrs[k] = attr_value(v)
        log.info("%s: %d committed samples, %d sources", self.path, self._n, len(self._source_rows))

    # -- opening ----------------------------------------------------------------------------------
    def _open_existing(self) -> h5py.File:
        try:
            return h5py.File(self.path, "a")
        except OSError as e:
            if is_lock_error(e):
                raise DatasetError(self.path, IN_USE) from None
            raise DatasetError(self.path, f"cannot open HDF5 file for writing ({short_reason(e)})") from None

    def _open_new(self) -> h5py.File:
        """A new empty file at ``path``, built beside it and renamed over it (see gannotate.io.filelock)."""
        try:
            return replace_exclusively(self.path, lambda tmp: h5py.File(tmp, "w"))
        except OSError as e:
            raise DatasetError(self.path, f"cannot create HDF5 file ({short_reason(e)})") from None

    # -- set-up -----------------------------------------------------------------------------------
    def _create(self, attrs: dict[str, Any], compression: str | None) -> None:
        f, k, s, p = self._f, self.scheme.n_points, self.image_size, self.n_params
        f.create_dataset("images", (0, s, s, 3), np.uint8, maxshape=(None, s, s, 3), chunks=(1, s, s, 3),
                         compression=compression)
        f.create_dataset(CRC_DATASET, (0,), np.uint32, maxshape=(None,), chunks=(1024,))
        nf = len(TRUTH_FIELDS)
        f.create_dataset(TRUTH_CRC_DATASET, (0, nf), np.uint32, maxshape=(None, nf), chunks=(1024, nf))
        f[TRUTH_CRC_DATASET].attrs["fields"] = np.asarray(TRUTH_FIELDS, dtype=STR)
        f.create_dataset("landmarks", (0, k, 2), np.float32, maxshape=(None, k, 2), chunks=(256, k, 2))
        f.create_dataset("params", (0, p), np.float32, maxshape=(None, p), chunks=(256, max(p, 1)))
        f.create_dataset("pose", (0, 3), np.float32, maxshape=(None, 3), chunks=(256, 3))
        f.create_dataset("source_index", (0,), np.int32, maxshape=(None,), chunks=(1024,))
        f.create_dataset("target_index", (0,), np.int32, maxshape=(None,), chunks=(1024,))
        f.create_dataset("sources", (0,), STR, maxshape=(None,), chunks=(256,))
        for key, value in attrs.items():
            f.attrs[key] = attr_value(value)
        f.attrs["scheme"] = self.scheme.name
        f.attrs["coord_origin"] = COORD_ORIGIN
        f.attrs["flip_index"] = np.asarray(self.scheme.flip_index, dtype=np.int32)
        f.attrs["image_size"] = self.image_size
        f.attrs["n_params"] = self.n_params
        f.attrs.setdefault("version", __version__)
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_sources"] = 0
        f.attrs["n_samples"] = 0
        f.attrs["last_commit_start"] = 0
        with self._io("creating the file"):
            f.flush()

    def _check_compatible(self) -> None:
        a = self._f.attrs
        have = (py_value(a.get("scheme")), int(a.get("image_size", -1)), int(a.get("n_params", -1)))
        want = (self.scheme.name, self.image_size, self.n_params)
        if have != want:
            raise DatasetError(
                self.path,
                f"cannot resume: file has scheme/image_size/n_params {have}, this run wants {want}; "
                "use another output path or resume=False to start over",
            )

    def _row_datasets(self) -> list[str]:
        return list(ROW_DATASETS) + [n for n in OPTIONAL_ROW_DATASETS if n in self._f]

    def _trim_uncommitted(self) -> None:
        """Drop rows written after the last commit (a crash mid-batch); they were never in the index."""
        f = self._f
        n = int(f.attrs.get("n_samples", 0))
        rows = min(f[name].shape[0] for name in self._row_datasets())
        if n > rows:  # cannot happen with our write order; refuse rather than invent data
            raise DatasetError(self.path, f"n_samples={n} but only {rows} complete rows; file is damaged")
        for name in self._row_datasets():
            if f[name].shape[0] != n:
                log.warning("%s: dropping %d uncommitted rows of %s", self.path, f[name].shape[0] - n, name)
                f[name].resize(n, axis=0)
        f.flush()

    def _rebuild_sources(self) -> None:
        """Rewrite ``sources`` as a fresh dataset holding only its committed entries.

        Why: a source added just before a kill leaves a variable-length string whose global-heap
        object was never written; shrinking the dataset keeps that dangling reference in the chunk,
        and the next write over it fails with "bad heap index". A new dataset has no stale rows.
        """
        f = self._f
        m = min(int(f.attrs.get("n_sources", 0)), f["sources"].shape[0])
        try:
            keep = decode_strings(f["sources"][:m])
        except OSError as e:
            raise DatasetError(self.path, f"cannot resume: the sources list is damaged ({short_reason(e)})") from None
        del f["sources"]
        f.create_dataset("sources", (m,), STR, maxshape=(None,), chunks=(256,))
        if m:
            f["sources"][:] = np.asarray(keep, dtype=object)
        f.attrs["n_sources"] = m
        f.flush()

    def _verify_last_batch(self) -> None:
        """Compare the ground truth of every committed row, and the images of the last committed batch
        (at least 16 rows), with their checksums before adding to them."""
        f = self._f
        n = int(f.attrs["n_samples"])
        if n and TRUTH_CRC_DATASET in f:
            check_truth(self.path, f, n, {name: f[name][:n] for name in truth_fields(f)})
        if CRC_DATASET not in f or n == 0:
            return
        start = min(int(f.attrs.get("last_commit_start", 0)), max(0, n - _RESUME_CHECK_MIN_ROWS))
        rows = np.arange(start, n)
        data = f["images"][start:n]
        bad = rows[image_crc32(data) != f[CRC_DATASET][start:n]]
        if bad.size:
            raise DatasetCorruptError(self.path, bad.tolist())

    def _read_sources(self) -> list[str]:
        m = int(self._f.attrs["n_sources"])
        return decode_strings(self._f["sources"][:m])

    # -- failure handling -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _io(self, what: str) -> Iterator[None]:
        """Turn an OSError (disk full above all) into one DatasetError line; mark the writer failed."""
        global _failed_writes
        _quiet_h5py_dealloc_errors()
        try:
            yield
        except (OSError, RuntimeError) as e:  # h5py raises either for a failed write
            if isinstance(e, RuntimeError) and not (is_disk_full(e) or "write failed" in str(e).lower()):
                raise
            _failed_writes += 1
            self._failed = what
            kind = "disk full" if is_disk_full(e) else "write failed (disk full or not writable?)"
            n = getattr(self, "_n", 0)
            raise DatasetError(
                self.path,
                f"{kind} while {what} ({short_reason(e, 120)}); the {n} committed samples are intact: "
                "free some space and run again to resume",
            ) from None

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise DatasetError(self.path, f"writer stopped after an earlier error while {self._failed}; reopen to resume")

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
        """Row of ``key`` in ``sources``, adding it if new (idempotent, also across resumes).

        The new entry is committed (``n_sources``) and flushed at once: sources are few, and a
        flushed heap object cannot dangle after a crash.
        """
        key = str(key)
        row = self._source_rows.get(key)
        if row is None:
            self._check_usable()
            row = len(self._source_rows)
            with self._io(f"adding source {key!r}"):
                ds = self._f["sources"]
                ds.resize(row + 1, axis=0)
                ds[row] = key
                self._f.flush()
                self._f.attrs["n_sources"] = row + 1
                self._f.flush()
            self._source_rows[key] = row
        return row

    def _optional(self, name: str, value: np.ndarray | None, b: int, shape: tuple[int, ...], dtype: type) -> dict:
        """Validate an optional per-row array; ``{name: (array, shape, dtype)}`` or ``{}``.

        Once a run has written one, every append must pass it (a dataset with holes would be
        silently wrong); it may only start with the first sample.
        """
        present = name in self._f
        if value is None:
            if present:
                raise DatasetError(self.path, f"append: this dataset stores {name}; pass {name}= on every append")
            return {}
        if not present and self._n > 0:
            raise DatasetError(self.path, f"append: {name} given, but the first {self._n} samples were written without it")
        arr = np.asarray(value)
        if name == "masks" and arr.dtype != np.uint8:
            raise DatasetError(self.path, f"append: masks must be uint8, got {arr.dtype}")
        return {name: (arr, (b,) + shape, dtype)}

    def _create_optional(self, name: str) -> None:
        s = self.image_size
        if name == "masks":
            self._f.create_dataset("masks", (0, s, s), np.uint8, maxshape=(None, s, s), chunks=(1, s, s),
                                   compression="gzip", compression_opts=1)
        elif name == "fit_residual":
            self._f.create_dataset("fit_residual", (0,), np.float32, maxshape=(None,), chunks=(1024,))
        elif name in SAMPLE_FIELDS:
            self._f.create_dataset(name, (0,), SAMPLE_FIELDS[name], maxshape=(None,), chunks=(1024,))

    @property
    def stored_fields(self) -> set[str]:
        """The optional row datasets this file has (a resumed run must pass exactly these)."""
        return {n for n in OPTIONAL_ROW_DATASETS if n in self._f and n != CRC_DATASET}

    def append(
        self,
        images: np.ndarray,
        landmarks: np.ndarray,
        params: np.ndarray,
        pose: np.ndarray,
        source_index: np.ndarray | int,
        target_index: np.ndarray | int,
        masks: np.ndarray | None = None,
        fit_residual: np.ndarray | None = None,
        **fields: np.ndarray,
    ) -> int:
        """Append a batch of B samples and commit it; returns the new ``n_samples``.

        Args:
            images: (B, H, W, 3) uint8 RGB, H = W = image_size.
            landmarks: (B, K, 2) float32 (x, y), 0-based, in image pixels.
            params: (B, P) float32.
            pose: (B, 3) float32 yaw, pitch, roll in degrees.
            source_index: (B,) int rows from :meth:`add_source` (a scalar is broadcast).
            target_index: (B,) int (a scalar is broadcast).
            masks: optional (B, H, W) uint8 (e.g. 255 = pixel seen in the source); once given,
                required on every append.
            fit_residual: optional (B,) float32; once given, required on every append.
            fields: optional (B,) per-sample fields named in ``layout.SAMPLE_FIELDS``; each, once
                given, required on every append.

        Raises:
            DatasetError: a shape disagrees with the file, a source index was never added, an
                optional array is missing or new, or the disk is full (nothing is committed then).
        """
        self._check_usable()
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
        arrays.update(self._optional("masks", masks, b, (s, s), np.uint8))
        arrays.update(self._optional("fit_residual", fit_residual, b, (), np.float32))
        unknown = sorted(set(fields) - set(SAMPLE_FIELDS))
        if unknown:
            raise DatasetError(self.path, f"append: unknown field(s) {unknown}; per-sample fields are {list(SAMPLE_FIELDS)}")
        for name, dtype in SAMPLE_FIELDS.items():
            arrays.update(self._optional(name, fields.get(name), b, (), dtype))
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
        if CRC_DATASET in self._f:
            arrays[CRC_DATASET] = (image_crc32(im), (b,), np.uint32)
        if TRUTH_CRC_DATASET in self._f:
            fields = truth_fields(self._f)
            missing = [name for name in fields if name not in arrays]
            if missing:
                raise DatasetError(self.path, f"append: this dataset checksums {missing}; pass them on every append")
            stored = {name: np.asarray(arrays[name][0]).astype(arrays[name][2], copy=False) for name in fields}
            arrays[TRUTH_CRC_DATASET] = (truth_crc32(stored, fields), (b, len(fields)), np.uint32)
        return self._commit(arrays, b)

    def _commit(self, arrays: dict[str, tuple[np.ndarray, tuple, Any]], b: int) -> int:
        """Write rows n..n+b, flush, then bump ``n_samples`` and flush again (see module doc)."""
        n0, n1 = self._n, self._n + b
        need = 2 * sum(a.nbytes for a, _, _ in arrays.values()) + _SPACE_MARGIN
        free = _free_bytes(self.path.parent)
        if free is not None and free < need:  # refuse before HDF5 meets ENOSPC (its recovery is poor)
            raise DatasetError(self.path, f"disk full: {free / 2**20:.1f} MiB free, samples {n0}..{n1 - 1} need about "
                                          f"{need / 2**20:.1f} MiB; the {n0} committed samples are intact: free some "
                                          "space and run again to resume")
        with self._io(f"writing samples {n0}..{n1 - 1}"):
            for name, (arr, _, dtype) in arrays.items():  # 1. data (rows beyond n_samples: not yet visible)
                if name not in self._f:
                    self._create_optional(name)
                ds = self._f[name]
                if ds.shape[0] < n1:
                    ds.resize(n1, axis=0)
                ds[n0:n1] = arr.astype(dtype, copy=False)
            self._f.flush()  # 2. the data is in the file before anything points at it
        with self._io(f"committing samples {n0}..{n1 - 1}"):
            try:
                self._f.attrs["n_samples"] = n1  # 3. commit
                self._f.attrs["last_commit_start"] = n0
                self._f.flush()  # 4. make the commit durable
            except (OSError, RuntimeError):
                with contextlib.suppress(Exception):  # a later close must not commit what failed
                    self._f.attrs["n_samples"] = n0
                raise
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
        return {k: py_value(v) for k, v in self._f.attrs.items()}

    def close(self) -> None:
        """Flush and close (idempotent).

        Raises:
            DatasetError: the final flush failed (disk full); the committed samples stay valid.
        """
        if not self._f.id.valid:
            return
        try:
            with self._io("closing the file"):
                if self._failed is None:
                    self._f.flush()
        finally:
            with contextlib.suppress(Exception):  # release the handle (and HDF5's lock) whatever happened
                self._f.close()

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
