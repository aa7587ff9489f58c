"""Atomic file writes: write beside the target, then ``os.replace`` (a reader never sees half a file)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "temp_name", "is_temp_name", "remove_stale_temps"]

#: ``.<name>.<12 hex>.tmp``: the only names :func:`temp_name` makes (also gannotate.io.filelock's)
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def temp_name(path: str | Path) -> Path:
    """A fresh hidden temporary name beside ``path``: ``.<name>.<12 random hex>.tmp``."""
    path = Path(path)
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


def is_temp_name(name: str) -> bool:
    """Does ``name`` look like one of :func:`temp_name`'s (left behind when a writer was killed)?"""
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(*folders: str | Path) -> list[Path]:
    """Delete the temporary files a killed run left in ``folders`` (not recursive) and return them.

    Only names of :func:`temp_name`'s form, only plain files; missing folders are skipped. Call it
    only while holding the run's lock (e.g. its open dataset writer), or a concurrent writer's
    file in progress could go.
    """
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


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
    tmp = temp_name(path)
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
