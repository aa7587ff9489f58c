"""Atomic file writes: write beside the target, then ``os.replace`` (a reader never sees half a file)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` in one step.

    The temporary file lives in the same folder so that ``os.replace`` is a rename on one file system
    (atomic on POSIX and Windows). On error the temporary file is removed and ``path`` is untouched.

    Example:
        >>> with atomic_path("out.json") as tmp:
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL with a random name, as mkstemp does, but mode 0666 so the umask applies as for open()
    # (mkstemp makes 0600; changing the process umask to read it would race with other threads)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write utf-8 ``text`` to ``path`` atomically (``\\n`` line ends on every OS) and return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
