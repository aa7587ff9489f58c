"""Split annotated photos for the payoff: by photo, with every turned face's photo held out.

Why: generated data should pay where real training data is thin, on turned heads. A test can only
see that if it holds turned faces the training never saw, and a photo's other faces must stay on
the same side (several faces share one 300W photo; the scene and lighting would leak). So:

* **turned** (test): every photo holding a face with |yaw| ≥ ``turned_yaw``, with all its faces;
* **val** (test, continuity with earlier results): ``split_by_photo``'s validation photos
  (``val_fraction``, ``seed``; the shipped detector's split);
* **train**: the remaining photos. Scenarios take subsets of it (:func:`scenario_faces`).

Yaw is the shape model's estimate from the ground-truth points (``metrics`` use the same), so the
split never looks at a detector's output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gannotate.errors import DatasetError

__all__ = ["Face", "PayoffSplit", "split_photos", "scenario_faces"]


@dataclass(frozen=True)
class Face:
    """One annotated face: its landmark file, its photo, the |yaw| of its truth (degrees) and its
    discovery key (what ``augment`` records as a generated sample's source)."""

    landmarks: Path
    image: Path
    yaw: float
    key: str = ""

    def source_keys(self) -> set[str]:
        """Keys under which ``augment`` may have recorded this face: relative to its folder, or absolute."""
        return {self.key, self.landmarks.with_suffix("").as_posix()} - {""}


@dataclass(frozen=True)
class PayoffSplit:
    """Faces per side; no photo is in ``train`` and in ``turned`` or ``val``."""

    train: tuple[Face, ...]
    val: tuple[Face, ...]
    turned: tuple[Face, ...]

    def photos(self, side: str) -> set[Path]:
        return {f.image for f in getattr(self, side)}


def _faces(list_file: str | Path, root: str | Path | None) -> list[Face]:
    from gannotate.io.folders import discover
    from gannotate.io.pts import read_pts
    from gannotate.metrics.yaw import yaw_of

    found = discover(Path(list_file), root=root)
    if not found.faces:
        raise DatasetError(list_file, "no annotated faces found")
    refs = list(found.faces)
    pts = np.stack([read_pts(f.landmark_path) for f in refs])
    yaw = yaw_of(pts)
    if yaw is None:
        raise DatasetError(list_file, "the payoff split needs 68-point faces (yaw is estimated from them)")
    return [Face(r.landmark_path.resolve(), r.image_path.resolve(), abs(float(y)), r.key) for r, y in zip(refs, yaw)]


def split_photos(list_file: str | Path, root: str | Path | None = None, turned_yaw: float = 28.0,
                 val_fraction: float = 0.15, seed: int = 0) -> PayoffSplit:
    """Split the faces of a folder or ``<landmarks> <image>`` list file (see module doc).

    Args:
        list_file: folder or list file of annotated photos (68 points).
        root: the list file's image root (``io.folders.discover``).
        turned_yaw: a photo with a face at least this turned (|yaw|, degrees) is test-only.
        val_fraction: share of photos held out as ``val`` (0: none), drawn as ``split_by_photo`` draws it.
        seed: the ``val`` draw.
    """
    faces = _faces(list_file, root)
    turned_photos = {f.image for f in faces if f.yaw >= turned_yaw}
    photos = sorted({str(f.image) for f in faces})
    n_val = int(round(val_fraction * len(photos))) if val_fraction > 0 else 0
    val_photos = {Path(p) for p in np.random.default_rng(seed).permutation(photos)[:n_val].tolist()}
    train = tuple(f for f in faces if f.image not in turned_photos and f.image not in val_photos)
    if not train:
        raise DatasetError(list_file, "no training photos left after holding out the turned and validation photos")
    return PayoffSplit(train=train, val=tuple(f for f in faces if f.image in val_photos),
                       turned=tuple(f for f in faces if f.image in turned_photos))


def scenario_faces(train: Sequence[Face], max_yaw: float | None = None, n_faces: int | None = None,
                   seed: int = 0) -> list[Face]:
    """A scenario's real training faces: those below ``max_yaw``, then ``n_faces`` of them drawn by photo.

    Photos are drawn (shuffled by ``seed``) until ``n_faces`` faces are taken, so "few faces" means few
    photos too, as for a user who annotated a handful of pictures.
    """
    faces = [f for f in train if max_yaw is None or f.yaw < max_yaw]
    if n_faces is None or n_faces >= len(faces):
        return faces
    by_photo: dict[Path, list[Face]] = {}
    for f in faces:
        by_photo.setdefault(f.image, []).append(f)
    keys = sorted(by_photo, key=str)
    out: list[Face] = []
    for i in np.random.default_rng(seed).permutation(len(keys)):
        if len(out) >= n_faces:
            break
        out += by_photo[keys[i]][: n_faces - len(out)]
    return sorted(out, key=lambda f: str(f.landmarks))
