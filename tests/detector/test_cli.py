"""``gannotate detector train|predict|evaluate`` end to end on the sample faces."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gannotate.cli import main


def test_train_predict_evaluate(tmp_path, face_folder):
    run = CliRunner()
    r = run.invoke(main, ["detector", "train", str(face_folder), "--out", str(tmp_path / "run"), "--preset", "smoke",
                          "--width", "8", "--val", str(face_folder)])
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert ckpt.is_file() and "trained on 4 faces" in r.output

    r = run.invoke(main, ["detector", "predict", str(face_folder), "--out", str(tmp_path / "pred"), "--checkpoint", str(ckpt)])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "pred").glob("*.pts"))) == 4

    r = run.invoke(main, ["detector", "evaluate", str(face_folder), "--json"])  # the shipped detector
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["n_faces"] == 4 and summary["nme"] < 8.0

    r = run.invoke(main, ["evaluate", "nme", "--predictions", str(tmp_path / "pred"), "--truth", str(face_folder), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n_faces"] == 4


def test_bad_checkpoint_is_a_clean_error(tmp_path, face_folder):
    (tmp_path / "bad.pt").write_bytes(b"junk")
    r = CliRunner().invoke(main, ["detector", "evaluate", str(face_folder), "--checkpoint", str(tmp_path / "bad.pt")])
    assert r.exit_code == 3 and "bad.pt" in r.output and "Traceback" not in r.output


def test_scheme_mismatch_is_a_clean_error(tmp_path, face_folder):
    r = CliRunner().invoke(main, ["detector", "train", str(face_folder), "--out", str(tmp_path / "r"), "--preset", "smoke",
                                  "--scheme", "ibug66"])
    assert r.exit_code == 3 and "expected ibug66" in r.output
