"""Atomic writes: build beside the target, then rename (a reader never sees half a file or folder).

Files go through :func:`atomic_path`; whole folders (an export, a merge's ``images/``) through
:func:`staged_folder`, which builds the folder under a hidden name and swaps it in only when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

from gannotate.errors import DatasetError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "temp_name", "is_temp_name", "remove_stale_temps",
           "staged_folder", "replace_folder", "remove_stale_staging", "make_staging", "make_parent"]

#: ``.<name>.<12 hex>.tmp``: the only names :func:`temp_name` makes (also gannotate.io.filelock's)
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def temp_name(path: str | Path) -> Path:
    """A fresh hidden temporary name beside ``path``: ``.<name>.<12 random hex>.tmp``."""
    path = Path(path)
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


def make_parent(path: str | Path) -> None:
    """Create ``path``'s folder; a file standing where a folder must go is one line, not a traceback.

    Raises:
        DatasetError: naming the folder and the OS reason (e.g. a file of that name exists).
    """
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DatasetError(parent, "cannot create this folder: a file of that name is in the way") from None
    except OSError as e:
        raise DatasetError(parent, f"cannot create this folder ({e.strerror or e})") from None


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
    make_parent(path)
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


def _staging_name(path: Path) -> Path:
    """``.<name>.staging-<pid>-<6 hex>`` beside ``path``: the pid tells a killed builder's folder apart."""
    return path.parent / f".{path.name}.staging-{os.getpid()}-{secrets.token_hex(3)}"


def make_staging(path: str | Path) -> Path:
    """Create and return an empty staging folder for ``path`` (``.<name>.staging-<pid>-<hex>`` beside it)."""
    path = Path(path)
    make_parent(path)
    staged = _staging_name(path)
    staged.mkdir()
    return staged


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_staging(path: str | Path) -> list[Path]:
    """Delete the staging folders of ``path`` left by builders that were killed (their pid is gone)."""
    path = Path(path)
    pattern = re.compile(r"^\." + re.escape(path.name) + r"\.staging-(\d+)-[0-9a-f]{6}$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def replace_folder(staged: Path, path: Path) -> None:
    """Put the complete folder ``staged`` at ``path``, replacing what was there.

    The old folder is first renamed aside, so at every moment ``path`` is either the old complete
    folder, absent, or the new complete folder; the old one is deleted last.
    """
    old = None
    if os.path.lexists(path):
        old = _staging_name(path)
        os.replace(path, old)
    os.replace(staged, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(path: str | Path, may_replace: Callable[[Path], str | None] | None = None) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path``; on success it becomes ``path`` (replacing the old one).

    Args:
        path: the folder to make.
        may_replace: called with ``path`` when it exists; returns None to allow replacing it, else
            the reason it must stay (raised as a DatasetError before any work).

    Raises:
        DatasetError: ``path`` exists and ``may_replace`` refuses it (or is not given).

    Example:
        >>> with staged_folder("export") as tmp:
        ...     (tmp / "a.txt").write_text("complete")
    """
    path = Path(path)
    if os.path.lexists(path):
        reason = "exists" if may_replace is None else may_replace(path)
        if reason is not None:
            raise DatasetError(path, reason)
    make_parent(path)  # its parent folder, with one-line errors
    remove_stale_staging(path)
    staged = make_staging(path)
    try:
        yield staged
        replace_folder(staged, path)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
