"""CLI answers for the cases of issue 23, items 9 and 10: one line and a documented exit code, never a
traceback or a false success."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from gannotate.cli import EXIT_INTERRUPTED, main

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "io"))
from test_hdf5 import batch, open_writer  # noqa: E402


def one_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.fixture()
def dataset(tmp_path):
    path = tmp_path / "d.h5"
    with open_writer(path) as w:
        w.add_source("faces/a")
        w.append(*batch(0, 4))
    return path


def test_preview_into_a_file_that_stands_where_a_folder_must_go(tmp_path, dataset):
    (tmp_path / "somefile").write_text("x")
    r = CliRunner().invoke(main, ["preview", str(dataset), "--out", str(tmp_path / "somefile" / "p.png"), "--n", "2"])
    assert r.exit_code == 3
    assert "somefile" in one_line(r.output) and "in the way" in r.output


def test_refine_refuses_an_augment_dataset_as_pairs(tmp_path, dataset):
    r = CliRunner().invoke(main, ["train", "refine", "--pairs", str(dataset), "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 3
    assert "augment dataset, not refiner pairs" in one_line(r.output)
    assert not (tmp_path / "run").exists()


def test_detector_train_on_no_faces_is_an_error_and_writes_nothing(tmp_path, face_folder):
    notalist = tmp_path / "notalist.txt"
    notalist.write_text("this is not a list of faces\n")
    out = tmp_path / "det"
    r = CliRunner().invoke(main, ["detector", "train", str(notalist), "--out", str(out), "--preset", "smoke"])
    assert r.exit_code == 1, r.output
    assert "no faces found in" in r.output and "trained on" not in r.output and "Traceback" not in r.output
    assert not (out / "checkpoint.pt").exists()
    r = CliRunner().invoke(main, ["detector", "train", str(face_folder), "--val", str(notalist), "--out", str(out),
                                  "--preset", "smoke"])
    assert r.exit_code == 1, r.output
    assert "no faces found in" in r.output and str(notalist) in r.output
    assert not (out / "checkpoint.pt").exists()


def test_ctrl_c_exits_130(tmp_path, dataset, monkeypatch):
    import gannotate.cli.preview as cli_preview

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_preview, "preview_dataset", interrupted)
    r = CliRunner().invoke(main, ["preview", str(dataset), "--out", str(tmp_path / "p.png")])
    assert r.exit_code == EXIT_INTERRUPTED == 130
    assert "interrupted" in one_line(r.output)
