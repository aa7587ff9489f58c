"""CLI hardening: --help without torch, durations with units, --device checked, one-line errors
for checkpoints without config and refused weights files."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.cli.options import Duration


def test_help_does_not_import_torch():
    code = ("import sys\nfrom gannotate.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().endswith("NO-TORCH")


class TestDuration:
    @pytest.mark.parametrize("text, unit, want", [
        ("90s", "s", 90.0), ("40m", "s", 2400.0), ("2h", "s", 7200.0), ("600", "s", 600.0),
        ("40", "min", 40.0), ("90s", "min", 1.5), ("1.5h", "min", 90.0), ("30min", "min", 30.0), ("0", "s", 0.0),
    ])
    def test_convert(self, text, unit, want):
        assert Duration(unit).convert(text, None, None) == pytest.approx(want)

    @pytest.mark.parametrize("text", ["abc", "10d", "-5m", "m"])
    def test_refused(self, text):
        with pytest.raises(click.BadParameter, match="duration"):
            Duration("s").convert(text, None, None)

    def test_cli_help_and_bad_value(self, tmp_path):
        r = CliRunner().invoke(main, ["detector", "train", "--help"])
        assert "90s, 40m, 2h" in r.output and "seconds" in r.output
        r = CliRunner().invoke(main, ["train", "run", "--help"])
        assert "90s, 40m, 2h" in r.output and "minutes" in r.output
        r = CliRunner().invoke(main, ["detector", "train", str(tmp_path), "--out", str(tmp_path / "o"),
                                      "--time-budget", "10 parsecs"])
        assert r.exit_code == 2 and "duration" in r.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(main, ["detector", "evaluate", str(tmp_path), "--device", "cuda"])
    assert r.exit_code == 2 and "CUDA is not available" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["detector", "evaluate", str(tmp_path), "--device", "gpu0"])
    assert r.exit_code == 2 and "not a torch device" in r.output


def _config_less_checkpoint(path):
    import torch

    from gannotate.training.trainer import CHECKPOINT_FORMAT

    torch.save({"kind": "gannotate-train", "format_version": CHECKPOINT_FORMAT, "G": {}, "step": 3}, path)
    return path


class TestTrainCheckpoints:
    def test_export_generator_without_config(self, tmp_path):
        ckpt = _config_less_checkpoint(tmp_path / "ck.pt")
        r = CliRunner().invoke(main, ["export-generator", str(ckpt), str(tmp_path / "g.pt")])
        assert r.exit_code == 3, r.output
        assert "'config'" in r.output and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1

    def test_resume_without_config(self, tmp_path):
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        _config_less_checkpoint(run_dir / "checkpoint.pt")
        cache = tmp_path / "cache.h5"
        cache.write_bytes(b"")
        r = CliRunner().invoke(main, ["train", "run", "--cache", str(cache), "--run-dir", str(run_dir), "--resume",
                                      "--preset", "smoke"])
        assert r.exit_code == 3, r.output
        assert "'config'" in r.output and "Traceback" not in r.output

    def test_refused_vgg19_weights_are_a_usage_error(self, tmp_path):
        import torch

        bad = tmp_path / "vgg.pth"
        torch.save({"features.0.weight": torch.zeros(1)}, bad)  # safe, but not VGG-19
        cache = tmp_path / "cache.h5"
        cache.write_bytes(b"")
        r = CliRunner().invoke(main, ["train", "run", "--cache", str(cache), "--run-dir", str(tmp_path / "run"),
                                      "--preset", "smoke", "--vgg19-weights", str(bad), "--perceptual", "vgg19",
                                      "--loss-weight", "perceptual=1"])
        assert r.exit_code == 2, r.output
        assert "--vgg19-weights" in r.output and "vgg.pth" in r.output and "Traceback" not in r.output
