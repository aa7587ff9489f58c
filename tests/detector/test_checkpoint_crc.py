"""Corrupt checkpoints are refused by CRC (torch.load alone loads flipped tensor bytes silently)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import gannotate
from gannotate.detector.model import load_checkpoint
from gannotate.errors import CheckpointError
from gannotate.models.checkpoint import safe_load

SHIPPED = Path(gannotate.__file__).parent / "assets" / "detector.pt"


@pytest.fixture
def flipped(tmp_path) -> Path:
    """A copy of the shipped detector with 64 bytes in the middle inverted."""
    path = tmp_path / "detector.pt"
    shutil.copyfile(SHIPPED, path)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    path.write_bytes(bytes(data))
    return path


def test_safe_load_refuses_crc_mismatch(flipped):
    with pytest.raises(CheckpointError, match=r"corrupt \(CRC mismatch in .+\)"):
        safe_load(flipped)


def test_detector_loader_uses_the_same_check(flipped):
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        load_checkpoint(flipped)


def test_intact_file_loads():
    net, meta = load_checkpoint(SHIPPED)
    assert isinstance(meta, dict)
    assert isinstance(safe_load(SHIPPED), dict)


def test_cli_reports_one_line(flipped, tmp_path):
    from click.testing import CliRunner

    from gannotate.cli import main

    (tmp_path / "faces").mkdir()
    r = CliRunner().invoke(main, ["detector", "evaluate", str(tmp_path / "faces"), "--checkpoint", str(flipped)])
    assert r.exit_code == 3 and "CRC mismatch" in r.output and "Traceback" not in r.output
