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


def test_train_with_generated_recipes_and_progress(tmp_path, face_folder):
    from gannotate.detector.model import load_checkpoint

    run = CliRunner()
    gen = tmp_path / "gen"
    r = run.invoke(main, ["augment", "--input", str(face_folder), "--renderer", "warp", "--n", "2", "--format", "h5",
                          "--min-quality", "0", "--out", str(gen), "-q"])
    assert r.exit_code == 0, r.output
    common = ["--preset", "smoke", "--width", "8", "--generated", str(gen / "dataset.h5")]
    r = run.invoke(main, ["detector", "train", str(face_folder), "--out", str(tmp_path / "mixed"), *common, "--real-share", "0.25"])
    assert r.exit_code == 0, r.output
    assert "trained on 4 faces + 8 generated (mixed)" in r.output and "ETA" in r.output
    _, meta = load_checkpoint(tmp_path / "mixed" / "checkpoint.pt")
    assert meta["n_generated_faces"] == 8 and meta["train"]["real_share"] == 0.25 and meta["recipe"] == "mixed"

    r = run.invoke(main, ["detector", "train", str(face_folder), "--out", str(tmp_path / "pre"), *common, "--recipe", "pretrain", "-q"])
    assert r.exit_code == 0, r.output
    assert "ETA" not in r.output
    _, pre = load_checkpoint(tmp_path / "pre" / "pretrain" / "checkpoint.pt")
    _, ft = load_checkpoint(tmp_path / "pre" / "checkpoint.pt")
    assert pre["phase"] == "pretrain" and ft["phase"] == "fine-tune"
    assert ft["train"]["init_from"] == str(tmp_path / "pre" / "pretrain" / "checkpoint.pt")
