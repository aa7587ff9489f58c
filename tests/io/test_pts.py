"""gannotate.io.pts: 1-based on disk, 0-based in memory; tolerant reader, strict about content."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.errors import InputFileError, LandmarkFileError
from gannotate.io.pts import format_pts, read_pts, write_pts


@pytest.fixture()
def points():
    return np.random.default_rng(0).uniform(0, 500, size=(68, 2)).astype(np.float32)


class TestReadPts:
    def test_header_one_based(self, tmp_path):
        (tmp_path / "a.pts").write_text("version: 1\nn_points: 2\n{\n1 1\n10.5 20.25\n}\n")
        np.testing.assert_array_equal(read_pts(tmp_path / "a.pts"), [[0, 0], [9.5, 19.25]])

    def test_no_header(self, tmp_path):
        (tmp_path / "a.pts").write_text("1 2\n3 4\n")
        np.testing.assert_array_equal(read_pts(tmp_path / "a.pts", 2), [[0, 1], [2, 3]])

    def test_crlf_blank_comments_spacing(self, tmp_path):
        text = "# made by hand\r\nversion: 1\r\nn_points:  2\r\n\r\n{\r\n  1  2 # first\r\n\r\n3\t4\r\n}\r\n"
        (tmp_path / "a.pts").write_bytes(text.encode())
        np.testing.assert_array_equal(read_pts(tmp_path / "a.pts"), [[0, 1], [2, 3]])

    def test_dtype(self, tmp_path):
        (tmp_path / "a.pts").write_text("1 2\n")
        assert read_pts(tmp_path / "a.pts").dtype == np.float32


class TestWritePts:
    def test_round_trip(self, tmp_path, points):
        write_pts(tmp_path / "a.pts", points)
        np.testing.assert_allclose(read_pts(tmp_path / "a.pts", 68), points, atol=1e-5)

    def test_header_and_one_based(self, tmp_path):
        write_pts(tmp_path / "a.pts", np.array([[0.0, 0.0]]))
        lines = (tmp_path / "a.pts").read_text().splitlines()
        assert lines[:3] == ["version: 1", "n_points: 1", "{"] and lines[-1] == "}"
        assert [float(v) for v in lines[3].split()] == [1.0, 1.0]

    def test_atomic(self, tmp_path, points):
        write_pts(tmp_path / "sub" / "a.pts", points)
        assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.pts"]

    def test_rejects_nan(self, tmp_path):
        with pytest.raises(ValueError):
            format_pts(np.array([[np.nan, 1.0]]))


class TestBadPts:
    @pytest.mark.parametrize(
        "text, match, line",
        [
            ("1 2\n3 4\n", "expected 68 points, got 2", None),
            ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "header says n_points: 3", None),
            ("1 2\n3 x\n", "non-numeric", 2),
            ("1 2\nnan 4\n", "NaN", 2),
            ("1 2\n3\n", "expected 2 numbers", 2),
            ("version: 1\n{\n}\n", "no points", None),
        ],
    )
    def test_errors_name_file_and_line(self, tmp_path, text, match, line):
        p = tmp_path / "bad.pts"
        p.write_text(text)
        with pytest.raises(LandmarkFileError, match=match) as e:
            read_pts(p, 68 if "68" in match else None)
        assert e.value.path == str(p) and e.value.line == line and "bad.pts" in str(e.value)
        assert isinstance(e.value, InputFileError)

    def test_missing(self, tmp_path):
        with pytest.raises(LandmarkFileError, match="not found"):
            read_pts(tmp_path / "none.pts")

    def test_binary(self, tmp_path):
        (tmp_path / "b.pts").write_bytes(b"\xff\xfe\x00\x81")
        with pytest.raises(LandmarkFileError):
            read_pts(tmp_path / "b.pts")
