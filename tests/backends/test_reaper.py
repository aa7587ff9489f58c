"""The reaper ends what a killed driver started (issue 23, item 8), without Ray: a driver process starts a
tree of processes (as ray.init does), arms the reaper, and is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gannotate.backends.reaper import descendants

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import subprocess, sys, time
from gannotate.backends.reaper import start_reaper
# a "head" process that itself starts a "worker", as the GCS server and raylet do
head = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
time.sleep(1.0)
reaper = start_reaper()
print("armed", flush=True)
if sys.argv[1] == "exit":
    reaper.stop()
    print("stopped", flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _run_driver(mode: str) -> tuple[subprocess.Popen, list[int]]:
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), mode], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    assert p.stdout.readline().strip() == "armed"
    tree = [pid for pid in descendants([p.pid])]
    return p, tree


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_driver_takes_what_it_started():
    p, tree = _run_driver("kill")
    started = [pid for pid in tree if _alive(pid)]
    assert len(started) >= 3  # the head, its worker and the reaper
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.2)
    assert [pid for pid in started if _alive(pid)] == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stop_ends_them_at_a_normal_exit():
    p, tree = _run_driver("exit")
    assert p.stdout.readline().strip() == "stopped"
    try:
        assert [pid for pid in tree if _alive(pid) and pid != p.pid] == []
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
