"""Stop the Ray processes a driver started, also when the driver itself is killed (kill -9).

Why a separate process: a killed driver runs no clean-up, and the Ray instance it started (GCS
server, raylet, their workers) outlived it in 3 of 4 kills. :func:`start_reaper` spawns a small
process that waits on a pipe from the driver; the pipe reads end-of-file when the driver exits for
any reason, and then the reaper ends the processes it was given and every process they started
(workers a raylet spawned later included): SIGTERM, then SIGKILL after a grace period. Each pid is
recorded with its start time, so a pid the system reused meanwhile is never touched. Linux only
(it reads ``/proc``); elsewhere :func:`start_reaper` returns None and Ray's own shutdown is all there is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

__all__ = ["descendants", "start_reaper", "Reaper"]

_GRACE_S = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError, OSError):
        return None
    if rest[0] == b"Z":
        return None
    return int(rest[1]), int(rest[19])


def descendants(roots: Iterable[int]) -> dict[int, int]:
    """Every live process below ``roots`` (not the roots), as pid → start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                children.setdefault(st[0], []).append(int(name))
                starts[int(name)] = st[1]
    out: dict[int, int] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def _reap(targets: dict[int, int]) -> None:
    """SIGTERM ``targets`` (pid → start time) and everything below them, then SIGKILL what remains."""
    live = dict(targets)
    live.update(descendants(live))
    for sig, wait in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, 0.0)):
        for pid, start in list(live.items()):
            st = _stat(pid)
            if st is None or st[1] != start:  # gone, or the pid now belongs to someone else
                live.pop(pid)
                continue
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                live.pop(pid)
        deadline = time.time() + wait
        while live and time.time() < deadline:
            time.sleep(0.1)
            live = {p: s for p, s in live.items() if (_stat(p) or (0, -1))[1] == s}


def main(argv: list[str] | None = None) -> None:
    """The reaper process: ``PID:START ...`` on the command line; waits for end-of-file on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the terminal is the driver's to handle
    targets = dict((int(a), int(b)) for a, b in (arg.split(":") for arg in (argv or sys.argv[1:])))
    try:
        sys.stdin.buffer.read()
    except OSError:
        pass
    _reap(targets)


class Reaper:
    """The driver's handle: :meth:`stop` ends the watched processes now (the normal end of a run)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def stop(self, timeout: float = 10 * _GRACE_S) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_reaper(parent: int | None = None) -> Reaper | None:
    """Watch the processes ``parent`` (default: this process) has started so far, and all they start.

    Call it right after ``ray.init()`` started a local instance: its processes are this process's
    children then. Returns None where ``/proc`` is missing (not Linux).
    """
    if not os.path.isdir("/proc"):
        return None
    targets = descendants([parent or os.getpid()])
    if not targets:
        return None
    root = str(Path(__file__).resolve().parents[2])  # gannotate's folder on sys.path, however it was imported
    code = f"import sys; sys.path.insert(0, {root!r}); from gannotate.backends.reaper import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *(f"{p}:{s}" for p, s in targets.items())],
                            stdin=subprocess.PIPE, start_new_session=True)
    return Reaper(proc)
