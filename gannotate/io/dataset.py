"""A PyTorch ``Dataset`` over what gannotate writes: ``dataset.h5`` files and 300W-style folders.

Why here: every user who trains on a generated set needs one, and the easy mistakes are in the
conventions this package owns (0-based pixel centres, the scheme's flip table, whole source faces
per split). This is the only module of :mod:`gannotate.io` that imports torch.

Convention: ``image`` is float32 (3, H, W) RGB in [-1, 1] (``uint8 / 127.5 − 1``), the range the
shipped detector (:class:`gannotate.detector.model.LandmarkNet`) and the generators take, so items
feed them with no conversion; ``landmarks`` (K, 2) float32 ``(x, y)``, 0-based, pixel centres at
integers, in the pixels of the returned image.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from gannotate.errors import DatasetError, GannotateError
from gannotate.io.folder_writer import unquote_key
from gannotate.io.folders import discover, load_face
from gannotate.io.hdf5 import DatasetReader
from gannotate.io.splits import val_keys
from gannotate.landmarks import get_scheme, scheme_for

__all__ = ["LandmarkDataset", "QUALITY_FIELDS", "SPLITS"]

log = logging.getLogger(__name__)

#: Optional per-sample (N,) datasets of ``dataset.h5`` passed through as item fields when every part has them.
QUALITY_FIELDS = ("face_score", "source_face_score", "identity", "reader_nme", "fit_residual", "mirrored", "turn_deg", "invalid_share")
SPLITS = ("train", "val")
_SAMPLE_STEM = re.compile(r"^(?P<key>.+)_(?P<target>\d{4,})$")  # what folder_writer.sample_name() writes


@dataclass
class _Part:
    """One input (a dataset.h5 or a folder) and what is read of it up front (small arrays only)."""

    kind: str  # "h5" or "folder"
    path: Path
    n: int
    source: np.ndarray  # (n,) int64: global source index of each row
    flip_index: np.ndarray | None  # (K,) stored table (h5), None: the scheme's by K (folder)
    pose: np.ndarray | None = None  # (n, 3) float32 (h5)
    landmarks: np.ndarray | None = None  # (n, K, 2) float32 (h5)
    has_masks: bool = False
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # quality fields this file has
    faces: list = field(default_factory=list)  # FaceRef per row (folder)


def _is_h5(path: Path) -> bool:
    return path.is_file() or path.suffix.lower() in (".h5", ".hdf5")


def _h5_part(path: Path, intern: Callable[[str], int]) -> _Part:
    with DatasetReader(path) as r:
        attrs = r.attrs
        flip = attrs.get("flip_index")
        part = _Part(
            "h5", path, len(r), np.array([intern(r.sources[i]) for i in r.source_index], np.int64),
            None if flip is None else np.asarray(flip, np.int64), r.pose.astype(np.float32),
            r.landmarks.astype(np.float32), r.masks is not None,
        )
    with h5py.File(path, "r") as f:  # read by name, so fields the reader does not expose yet are found too
        part.fields = {k: np.asarray(f[k][: part.n]) for k in QUALITY_FIELDS if k in f and len(f[k]) >= part.n}
    return part


def _folder_part(path: Path, intern: Callable[[str], int]) -> _Part:
    root = path / "images" if (path / "images").is_dir() else path
    found = discover(root)
    for bad in found.failures:
        log.warning("%s: skipped (%s)", bad.path, bad.reason)
    keys = []
    for ref in found.faces:  # a sample written by augment is named <quoted source key>_<target:04d>
        m = _SAMPLE_STEM.match(Path(ref.key).name)
        keys.append(unquote_key(m["key"]) if m else ref.key)
    return _Part("folder", root, len(found.faces), np.array([intern(k) for k in keys], np.int64), None,
                 faces=list(found.faces))


class LandmarkDataset(Dataset):
    """Samples of one or more ``dataset.h5`` files and/or 300W-style folders, as dicts of tensors.

    Each item: ``image`` (3, H, W) float32 in [-1, 1]; ``landmarks`` (K, 2) float32, 0-based pixel
    centres; ``pose`` (3,) float32 yaw, pitch, roll in degrees (NaN for folders: .pts files hold no
    pose); ``source_index`` int64 into :attr:`sources`; ``flipped`` bool; ``mask`` (1, H, W) float32
    in [0, 1] (1 = seen by the source) and the :data:`QUALITY_FIELDS` the files hold — each only when
    every input has it, so the default collate can batch mixed inputs.

    Args:
        paths: ``dataset.h5`` files, run folders (their ``dataset.h5`` is used) or folders of
            images with same-stem ``.pts``/``.ljson`` (an augment ``images/`` folder or real 300W data).
        split: None (all), ``"train"`` or ``"val"``: whole source faces, never one in both parts.
        val_fraction: share of source faces (or groups) in ``"val"``.
        seed: salts the split; the same seed gives the same split on any machine and input order.
        group_by: source key → group for the split (e.g. ``lambda k: k.split("_")[0]`` to keep all
            faces of one photo together); default: each source face is its own group.
        flip: probability of a horizontal flip per item (drawn with torch's RNG, so
            ``torch.manual_seed`` and the DataLoader's worker seeding make it reproducible).
        size: resize images to ``size × size`` (points follow, pixel centres kept); None keeps them.
        scheme: landmark scheme of folder inputs (default: by point count; h5 files store theirs).

    Raises:
        DatasetError: an input is missing, not a gannotate dataset, or empty; inputs disagree on K.
        DatasetCorruptError: (when an item is read) its image no longer matches the stored CRC32.

    Example:
        >>> ds = LandmarkDataset("outputs/demo/dataset.h5", split="train", flip=0.5)
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=2)
    """

    def __init__(self, paths: str | Path | Iterable[str | Path], *, split: str | None = None,
                 val_fraction: float = 0.1, seed: int = 0, group_by: Callable[[str], str] | None = None,
                 flip: float = 0.0, size: int | None = None, scheme: str | None = None):
        if split not in (None, *SPLITS):
            raise GannotateError(f"split must be None, 'train' or 'val', got {split!r}")
        if not 0.0 <= flip <= 1.0:
            raise GannotateError(f"flip is a probability in [0, 1], got {flip}")
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        if not paths:
            raise GannotateError("LandmarkDataset needs at least one dataset.h5 or folder")
        self.flip, self.size = float(flip), size
        self._scheme = scheme
        self.sources: list[str] = []
        index: dict[str, int] = {}

        def intern(key: str) -> int:
            """One global index per source key, shared by every input (the same face in two runs is one source)."""
            if key not in index:
                index[key] = len(self.sources)
                self.sources.append(key)
            return index[key]

        self._parts: list[_Part] = []
        for p in paths:
            if p.is_dir() and (p / "dataset.h5").is_file():
                p = p / "dataset.h5"
            if not p.exists():
                raise DatasetError(p, "not found: give a dataset.h5, a run folder or a folder of images + .pts")
            part = _h5_part(p, intern) if _is_h5(p) else _folder_part(p, intern)
            if part.n == 0:
                raise DatasetError(p, "holds no samples")
            self._parts.append(part)
        ks = {pt.landmarks.shape[1] for pt in self._parts if pt.landmarks is not None}
        if len(ks) > 1:
            raise DatasetError(paths[0], f"inputs have different landmark counts {sorted(ks)}")

        rows = [(pi, r) for pi, pt in enumerate(self._parts) for r in range(pt.n)]
        if split is not None:
            group = group_by or (lambda k: k)
            val = val_keys((group(k) for k in self.sources), val_fraction, seed)
            is_val = np.array([group(k) in val for k in self.sources], bool)
            rows = [(pi, r) for pi, r in rows if is_val[self._parts[pi].source[r]] == (split == "val")]
        self._rows = np.array(rows, np.int64).reshape(-1, 2)
        self.has_masks = all(pt.has_masks for pt in self._parts)
        common = set(QUALITY_FIELDS)
        for pt in self._parts:
            common &= set(pt.fields)
        self.fields = tuple(k for k in QUALITY_FIELDS if k in common)
        self._readers: dict[int, DatasetReader] = {}
        self._pid = os.getpid()

    # ------------------------------------------------------------------ worker-safe HDF5 handles
    def _reader(self, part_index: int) -> DatasetReader:
        """The part's reader, opened on first use in *this* process (an h5py handle must not cross a fork)."""
        if self._pid != os.getpid():
            self._readers, self._pid = {}, os.getpid()  # inherited handles belong to the parent
        r = self._readers.get(part_index)
        if r is None:
            r = self._readers[part_index] = DatasetReader(self._parts[part_index].path)
        return r

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"] = {}  # spawned workers open their own
        return state

    def close(self) -> None:
        """Close the HDF5 files this process opened (they reopen on the next item)."""
        for r in self._readers.values():
            r.close()
        self._readers = {}

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        do_flip = self.flip > 0 and bool(torch.rand(()) < self.flip)
        return self.get(i, flip=do_flip)

    def get(self, i: int, flip: bool = False) -> dict[str, torch.Tensor]:
        """Item ``i``, flipped when ``flip`` (no randomness: what ``__getitem__`` draws for)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        pi, r = (int(v) for v in self._rows[i])
        part = self._parts[pi]
        mask = None
        if part.kind == "h5":
            reader = self._reader(pi)
            image, points, pose = reader.images[r], part.landmarks[r], part.pose[r]  # images: CRC-checked
            if self.has_masks:
                mask = reader.masks[r]
            flip_index = part.flip_index
        else:
            image, points = load_face(part.faces[r], None)
            pose = np.full(3, np.nan, np.float32)
            flip_index = None
        if flip_index is None:
            sch = get_scheme(self._scheme) if self._scheme else scheme_for(len(points))
            flip_index = sch.flip_array
        if flip:
            image, points, mask = _flip(image, points, mask, flip_index)
            pose = pose * np.array([-1, 1, -1], np.float32)  # a mirror turns yaw and roll the other way
        if self.size is not None:
            image, points, mask = _resize(image, points, mask, self.size)
        item: dict[str, torch.Tensor] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0),
            "landmarks": torch.from_numpy(np.ascontiguousarray(points, np.float32)),
            "pose": torch.from_numpy(np.asarray(pose, np.float32)),
            "source_index": torch.tensor(int(part.source[r])),
            "flipped": torch.tensor(bool(flip)),
        }
        if mask is not None:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).float().div_(255.0)[None]
        for k in self.fields:
            item[k] = torch.as_tensor(np.asarray(part.fields[k][r]))
        return item

    def source_keys(self) -> list[str]:
        """Source key of every item, in item order (e.g. to check that two splits share no face)."""
        return [self.sources[int(self._parts[pi].source[r])] for pi, r in self._rows]


def _flip(image: np.ndarray, points: np.ndarray, mask: np.ndarray | None,
          flip_index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mirror left-right: pixels reversed along x, x' = (W − 1) − x, points re-ordered by ``flip_index``."""
    w = image.shape[1]
    pts = np.asarray(points, np.float32)[np.asarray(flip_index)].copy()
    pts[:, 0] = (w - 1) - pts[:, 0]
    return image[:, ::-1], pts, None if mask is None else mask[:, ::-1]


def _resize(image: np.ndarray, points: np.ndarray, mask: np.ndarray | None,
            size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """To ``size × size``; a pixel centre x maps to (x + 0.5)·s − 0.5 (edges, not centres, scale by s)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, points, mask
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    scale = np.array([size / w, size / h], np.float32)
    out = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)
    pts = (np.asarray(points, np.float32) + 0.5) * scale - 0.5
    m = None if mask is None else cv2.resize(np.ascontiguousarray(mask), (size, size), interpolation=interp)
    return out, pts, m
