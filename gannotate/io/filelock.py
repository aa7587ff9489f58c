"""Start a file afresh without truncating it under another process, and name lock/disk-full errors.

Why not ``h5py.File(path, "w")``: HDF5 opens with ``O_TRUNC`` *before* it takes its advisory lock,
so a second run started with ``--no-resume`` empties the file a first run is still writing (the
second run is then refused by the lock, too late). Here the old file is locked first (``flock``,
the lock HDF5 itself takes), the new file is built under a temporary name and renamed over the old
one while the lock is held; a file someone holds open is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from gannotate.errors import DatasetError
from gannotate.io.atomic import temp_name

try:  # POSIX; on Windows HDF5's own lock (and the OS's sharing rules) is all there is
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["IN_USE", "RUN_LOCK_NAME", "run_lock", "check_not_in_use", "replace_exclusively", "replace_file_exclusively",
           "is_lock_error", "is_disk_full", "short_reason"]

IN_USE = "in use by another run (another process has it open); wait for it, or choose another output"
#: the file in a run folder whose ``flock`` a run (local, merge, Ray driver) holds while it works on the folder
RUN_LOCK_NAME = ".gannotate.lock"
T = TypeVar("T")
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_DISK_FULL_TEXT = ("no space left", "file too large", "disk quota", "errno = 28", "errno = 27", "errno = 122")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive non-blocking ``flock`` on ``path`` (created empty if missing)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise DatasetError(path, IN_USE) from None
            raise
        # someone may have renamed a new file over ``path`` between our open and our lock
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise DatasetError(path, IN_USE)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold the run folder ``out``'s lock (``OUT/.gannotate.lock``) while working on it.

    Why a lock of its own beside HDF5's: a merge or a Ray driver works on ``out`` without holding its
    ``dataset.h5`` open the whole time; every kind of run takes this one lock, so a second run on the
    same folder (``--no-resume`` included) is refused instead of deleting the first one's work. The
    kernel drops it when the process dies (also on kill -9).

    Raises:
        DatasetError: another process holds it (:data:`IN_USE`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(out / RUN_LOCK_NAME):
            yield
    except DatasetError as e:
        if e.reason == IN_USE and e.path == str(out / RUN_LOCK_NAME):
            raise DatasetError(out, IN_USE) from None
        raise


def check_not_in_use(path: str | Path) -> None:
    """Refuse when another process holds ``path`` (an HDF5 file open, a run folder's lock); missing is fine.

    Raises:
        DatasetError: :data:`IN_USE`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RUN_LOCK_NAME
    if not path.is_file():
        return
    with _locked(path):
        pass


def replace_file_exclusively(src: str | Path, dst: str | Path) -> None:
    """Rename the complete file ``src`` over ``dst``, refusing while another process holds ``dst`` open.

    Raises:
        DatasetError: ``dst`` is in use by another run (``src`` is left in place).
    """
    dst = Path(dst)
    if not dst.exists():
        os.replace(src, dst)
        return
    with _locked(dst):
        os.replace(src, dst)


def replace_exclusively(path: str | Path, create: Callable[[Path], T]) -> T:
    """Build a new file with ``create(tmp_path)`` and rename it over ``path``, refusing when any
    other process has ``path`` open with a lock (an HDF5 writer or reader).

    Returns:
        What ``create`` returned (e.g. the open ``h5py.File``, which keeps working after the rename).

    Raises:
        DatasetError: ``path`` is in use by another run.
    """
    path = Path(path)
    existed = path.exists()
    with _locked(path):
        tmp = temp_name(path)
        try:
            made = create(tmp)
            os.replace(tmp, path)
        except BaseException:
            if not existed and path.exists() and path.stat().st_size == 0:
                path.unlink()  # the empty placeholder the lock needed; leave nothing behind
            raise
        finally:
            if tmp.exists():
                tmp.unlink()
        return made


def is_lock_error(e: BaseException) -> bool:
    """True for HDF5's "unable to lock file" (another process holds the file)."""
    return "lock" in str(e).lower() and ("errno = 11" in str(e) or "unavailable" in str(e).lower())


def is_disk_full(e: BaseException) -> bool:
    """True for ENOSPC / EFBIG / EDQUOT, also when HDF5 only names them in its message text."""
    if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(e).lower()
    return any(t in text for t in _DISK_FULL_TEXT)


def short_reason(e: BaseException, limit: int = 160) -> str:
    """First line of an exception's message, shortened: error messages stay one line."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
