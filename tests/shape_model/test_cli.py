"""``gannotate shape-model`` (the CLI module lives in gannotate/cli/shape_model.py)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from gannotate.cli import main


def test_sample_writes_a_deterministic_sheet(tmp_path):
    import cv2

    runner = CliRunner()
    out_a, out_b = tmp_path / "a.png", tmp_path / "b.png"
    for out in (out_a, out_b):
        res = runner.invoke(main, ["shape-model", "sample", "--yaw", "-45:45", "--pitch", "-10:10", "--n", "6",
                                   "--out", str(out), "--seed", "3"])
        assert res.exit_code == 0, res.output
    a, b = cv2.imread(str(out_a)), cv2.imread(str(out_b))
    assert a is not None and a.shape[0] >= 128 and np.array_equal(a, b)


def test_info_and_bad_model(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["shape-model", "info"])
    assert res.exit_code == 0 and "expression modes" in res.output and "sha256" in res.output
    res = runner.invoke(main, ["shape-model", "info", "--model", str(tmp_path / "none.npz")])
    assert res.exit_code == 3 and "cannot read" in res.output


def test_bad_range_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["shape-model", "sample", "--yaw", "45:-45", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2
