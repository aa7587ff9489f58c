"""Write samples as a 300W-style folder: ``<root>/images/<name>.png`` + ``<name>.pts`` side by side.

Such a folder is read back by :func:`gannotate.io.folders.discover` and by most face-alignment
training code. Each file is written atomically, the image before its ``.pts``, so a face whose
``.pts`` exists is complete (discovery reports an image without ``.pts`` as a failure).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from gannotate.errors import DatasetError
from gannotate.io.images import write_image
from gannotate.io.pts import write_pts

__all__ = ["FolderWriter"]


class FolderWriter:
    """Write (image, points) pairs under ``root/images/``.

    Args:
        root: output folder (created).
        ext: image extension, ``.png`` (lossless, default) or ``.jpg``.

    Example:
        >>> with FolderWriter("out/") as w:
        ...     w.write("einstein_000", image, points)   # out/images/einstein_000.png + .pts
    """

    def __init__(self, root: str | Path, ext: str = ".png"):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.ext = ext if ext.startswith(".") else f".{ext}"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.n_written = 0

    def _base(self, name: str) -> Path:
        rel = PurePosixPath(str(name).replace("\\", "/"))
        if not rel.parts or rel.is_absolute() or ".." in rel.parts:
            raise DatasetError(self.images_dir / str(name), "sample name must be a relative path without '..'")
        return self.images_dir.joinpath(*rel.parts)

    def write(self, name: str, image: np.ndarray, points: np.ndarray) -> Path:
        """Write ``<name><ext>`` and ``<name>.pts``; returns the image path.

        Args:
            name: file stem, may contain ``/`` for sub-folders.
            image: (H, W, 3) uint8 RGB.
            points: (K, 2) float32 (x, y), 0-based (written 1-based).
        """
        base = self._base(name)
        image_path = write_image(base.parent / (base.name + self.ext), image)
        write_pts(base.parent / (base.name + ".pts"), points)
        self.n_written += 1
        return image_path

    def exists(self, name: str) -> bool:
        """True when ``name`` is completely written (its ``.pts`` exists; it is written last)."""
        base = self._base(name)
        return (base.parent / (base.name + ".pts")).is_file()

    def close(self) -> None:
        """Nothing to flush (every write is complete); kept for symmetry with DatasetWriter."""

    def __enter__(self) -> "FolderWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
