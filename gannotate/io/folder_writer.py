"""Write samples as a 300W-style folder: ``<root>/images/<name>.png`` + ``<name>.pts`` side by side.

Such a folder is read back by :func:`gannotate.io.folders.discover` and by most face-alignment
training code. Each file is written atomically, the image before its ``.pts``, so a face whose
``.pts`` exists is complete (discovery reports an image without ``.pts`` as a failure).
"""

from __future__ import annotations

import re

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from gannotate.errors import DatasetError
from gannotate.io.images import write_image
from gannotate.io.pts import write_pts

__all__ = ["FolderWriter", "sample_name", "unquote_key"]

# percent-encode exactly the characters that would fold two keys together or leave the folder:
# '%' first (the escape itself), then the two path separators
_ESCAPES = (("%", "%25"), ("/", "%2F"), ("\\", "%5C"))


def sample_name(key: str, target: int) -> str:
    """Flat, unique file stem for target ``target`` of the face with discovery key ``key``.

    ``sub/a`` → ``sub%2Fa_0003`` and ``sub__a`` → ``sub__a_0003``: '/' and '\\' are
    percent-encoded (and '%' itself), so the mapping is injective (two keys never share an output
    name; a plain ``'/' → '__'`` would fold ``a/b`` and ``a__b`` together) and no key can climb out
    of the output folder (``..`` stays inside one flat name). Keys without those characters come
    out unchanged; :func:`unquote_key` reverses the encoding.

    Args:
        key: a :class:`gannotate.io.folders.FaceRef` key (posix path without extension).
        target: index of the target in the face's plan (4 digits, more when needed).

    Example:
        >>> sample_name("afw/111076519_2", 3)
        'afw%2F111076519_2_0003'
    """
    flat = str(key)
    for char, code in _ESCAPES:
        flat = flat.replace(char, code)
    return f"{flat}_{int(target):04d}"


def unquote_key(flat: str) -> str:
    """The source key of a :func:`sample_name` stem without its ``_NNNN`` target suffix (``sub%2Fa`` → ``sub/a``)."""
    codes = {code: char for char, code in _ESCAPES}
    return re.sub("|".join(re.escape(c) for c in codes), lambda m: codes[m.group(0)], flat)


_SAMPLE_STEM = re.compile(r"_\d{4,}$")  # what sample_name() ends with


class FolderWriter:
    """Write (image, points) pairs under ``root/images/``.

    Args:
        root: output folder (created).
        ext: image extension, ``.png`` (lossless, default) or ``.jpg``.

    Raises:
        DatasetError: ``root`` or ``root/images`` exists and is not a folder, or cannot be created.

    Example:
        >>> with FolderWriter("out/") as w:
        ...     w.write("einstein_000", image, points)   # out/images/einstein_000.png + .pts
    """

    def __init__(self, root: str | Path, ext: str = ".png"):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.ext = ext if ext.startswith(".") else f".{ext}"
        for folder in (self.root, self.images_dir):
            if folder.exists() and not folder.is_dir():
                raise DatasetError(folder, "exists and is not a folder; remove it or choose another output")
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(self.images_dir, f"cannot create the output folder ({e.strerror or e})") from None
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

    def clear_samples(self) -> int:
        """Remove sample files (``*_NNNN.<ext>`` and their ``.pts``) a previous run left; returns how many.

        Why: a run that starts over (``--no-resume``), perhaps with a smaller ``--n``, must not leave
        the old run's images beside the new ones — the folder would no longer match dataset.h5.
        Only files named as samples are touched; anything else a user put there stays.
        """
        removed = 0
        for path in self.images_dir.rglob("*"):
            if path.is_file() and path.suffix in (self.ext, ".pts") and _SAMPLE_STEM.search(path.stem):
                path.unlink()
                removed += 1
        return removed

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
