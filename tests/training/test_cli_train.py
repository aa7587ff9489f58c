"""`gannotate train prepare|run` and `gannotate export-generator` end to end on tiny inputs."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gannotate.cli import main


def test_prepare_run_export(face_folder, tmp_path):
    runner = CliRunner()
    cache = tmp_path / "c.h5"
    r = runner.invoke(main, ["train", "prepare", "--photos", str(face_folder), "--out", str(cache), "--store-size", "64"])
    assert r.exit_code == 0, r.output
    assert "4 photos, 0 frames" in r.output
    run_dir = tmp_path / "run"
    r = runner.invoke(main, ["train", "run", "--cache", str(cache), "--preset", "smoke", "--run-dir", str(run_dir),
                             "--max-steps", "1", "--identity", "none", "--consistency-warmup", "7",
                             "--consistency-hold", "3", "--loss-weight", "self=10", "--loss-weight", "tv=0"])
    assert r.exit_code == 0, r.output
    assert "step 1 (max_steps)" in r.output and "perceptual loss was OFF" in r.output
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["consistency_warmup_steps"] == 7 and config["consistency_hold_steps"] == 3
    assert (config["weights"]["self_"], config["weights"]["tv"], config["weights"]["triple"]) == (10.0, 0.0, 100.0)
    r = runner.invoke(main, ["export-generator", str(run_dir / "checkpoint.pt"), str(tmp_path / "g.pt")])
    assert r.exit_code == 0, r.output and (tmp_path / "g.pt").is_file()


def test_run_with_bad_checkpoint_exits_3(tmp_path, face_folder):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    r = CliRunner().invoke(main, ["export-generator", str(bad), str(tmp_path / "g.pt")])
    assert r.exit_code == 3 and "checkpoint.pt" in r.output


def test_bad_loss_weight_is_a_usage_error(tmp_path):
    cache = tmp_path / "c.h5"
    cache.write_bytes(b"")
    for bad in ("self", "selfx=1", "pix=abc", "pix=-1"):
        r = CliRunner().invoke(main, ["train", "run", "--cache", str(cache), "--loss-weight", bad])
        assert r.exit_code == 2 and "--loss-weight" in r.output, (bad, r.output)


def test_one_loss_weight_option_for_both_trainers(tmp_path):
    """train run and train refine both take --loss-weight (names from LossWeights); --weight stays a hidden alias."""
    from gannotate.training.config import LossWeights

    help_text = CliRunner().invoke(main, ["train", "refine", "--help"]).output
    assert "--loss-weight" in help_text and "--weight " not in help_text
    assert all(name in " ".join(help_text.split()) for name in LossWeights.names())
    pairs = tmp_path / "p.h5"
    pairs.write_bytes(b"")
    for option in ("--loss-weight", "--weight"):
        r = CliRunner().invoke(main, ["train", "refine", "--pairs", str(pairs), option, "pix=-1"])
        assert r.exit_code == 2 and "0 or more" in r.output, (option, r.output)


def test_loss_names_come_from_the_weights_dataclass():
    from gannotate.training.config import LossWeights, parse_loss_weights

    assert LossWeights.names() == ["adv", "pix", "self", "triple", "identity", "perceptual", "tv"]
    w = LossWeights().with_named(parse_loss_weights(["self=2", "tv=0"]))
    assert (w.self_, w.tv, w.by_name()["self"]) == (2.0, 0.0, 2.0)
