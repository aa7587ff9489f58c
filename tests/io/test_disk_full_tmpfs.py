"""A real full disk: augment into a small tmpfs (needs root to mount; skipped elsewhere)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gannotate.io.hdf5 import DatasetReader


@pytest.fixture()
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()[:100]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_augment_on_a_full_tmpfs_stops_cleanly_and_resumes_elsewhere(small_tmpfs, tmp_path):
    args = [sys.executable, "-m", "gannotate.cli", "augment", "--renderer", "warp", "--n", "12", "--size", "96",
            "--batch-size", "4", "--format", "h5", "--min-quality", "0", "-q"]  # every slot kept: 48 rows
    full = subprocess.run([*args, "--out", str(small_tmpfs / "o")], capture_output=True, text=True)
    assert full.returncode == 3, (full.returncode, full.stderr[-500:])  # not 139 (segfault), not 0
    lines = [ln for ln in full.stderr.splitlines() if ln.strip()]
    assert any("disk full" in ln for ln in lines) and "Traceback" not in full.stderr
    moved = tmp_path / "moved"
    shutil.copytree(small_tmpfs / "o", moved)  # the user frees space elsewhere and resumes there
    with DatasetReader(moved / "dataset.h5") as r:
        n = len(r)
        assert r.verify() == [] and all(np.asarray(r.images[i]).any() for i in range(n))  # no zero rows
    assert subprocess.run([*args, "--out", str(moved)], capture_output=True).returncode == 0
    subprocess.run([*args, "--out", str(tmp_path / "whole")], check=True, capture_output=True)
    with DatasetReader(moved / "dataset.h5") as a, DatasetReader(tmp_path / "whole" / "dataset.h5") as b:
        assert len(a) == len(b) == 48 and n < 48
        assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
