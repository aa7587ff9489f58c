"""Output names are injective and safe; odd input names are named failures, not aborted runs."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.errors import DatasetError
from gannotate.io.folder_writer import FolderWriter, sample_name
from gannotate.io.folders import HIDDEN_SKIPPED, UNSAFE_NAME, discover
from gannotate.io.images import write_image
from gannotate.io.pts import write_pts

IMG = np.zeros((20, 20, 3), np.uint8)
PTS = np.full((68, 2), 5.0, np.float32)


class TestSampleName:
    def test_injective_on_tricky_keys(self):
        keys = ["sub/a", "sub__a", "sub_/a", "sub/_a", "a%2Fb", "a/b", "a\\b", "a%5Cb", "x/../../evil", "x__..__evil"]
        names = {sample_name(k, 3) for k in keys}
        assert len(names) == len(keys)
        assert sample_name("sub/a", 3) != sample_name("sub__a", 3)

    def test_flat_and_readable(self):
        assert sample_name("einstein", 7) == "einstein_0007"
        assert sample_name("afw/111076519_2", 12345) == "afw%2F111076519_2_12345"
        for k in ("x/../../evil", "x\\..\\..\\evil", "/abs/path"):
            name = sample_name(k, 0)
            assert "/" not in name and "\\" not in name

    def test_folder_writer_keeps_both(self, tmp_path):
        w = FolderWriter(tmp_path)
        w.write(sample_name("sub/a", 0), IMG, PTS)
        w.write(sample_name("sub__a", 0), IMG + 1, PTS)
        w.write(sample_name("x\\..\\..\\evil", 0), IMG, PTS)  # stays inside images/
        assert len(list((tmp_path / "images").glob("*.png"))) == 3
        assert not (tmp_path.parent / "evil_0000.png").exists()


class TestFolderWriterErrors:
    def test_images_is_a_file(self, tmp_path):
        (tmp_path / "images").write_text("oops")
        with pytest.raises(DatasetError, match="not a folder") as e:
            FolderWriter(tmp_path)
        assert str(tmp_path / "images") in str(e.value)

    def test_root_is_a_file(self, tmp_path):
        (tmp_path / "out").write_text("oops")
        with pytest.raises(DatasetError, match="not a folder"):
            FolderWriter(tmp_path / "out")


class TestDiscoveryNames:
    def test_backslash_name_is_a_failure_not_an_abort(self, tmp_path):
        write_image(tmp_path / "good.png", IMG)
        write_pts(tmp_path / "good.pts", PTS)
        write_image(tmp_path / "x\\..\\..\\evil.png", IMG)
        write_pts(tmp_path / "x\\..\\..\\evil.pts", PTS)
        found = discover(tmp_path)
        assert [f.key for f in found.faces] == ["good"]
        reasons = {f.path.rsplit("/", 1)[-1]: f.reason for f in found.failures}
        assert reasons["x\\..\\..\\evil.png"].startswith(UNSAFE_NAME)
        assert "backslash" in reasons["x\\..\\..\\evil.png"]

    def test_backslash_in_list_file(self, tmp_path):
        write_image(tmp_path / "good.png", IMG)
        write_pts(tmp_path / "good.pts", PTS)
        (tmp_path / "list.txt").write_text("good.pts good.png\n'x\\..\\evil.pts' 'x\\..\\evil.png'\n")
        found = discover(tmp_path / "list.txt")
        assert [f.key for f in found.faces] == ["good"]
        assert len(found.failures) == 1 and UNSAFE_NAME in found.failures[0].reason

    def test_hidden_files(self, tmp_path):
        write_image(tmp_path / "a.png", IMG)
        write_pts(tmp_path / "a.pts", PTS)
        write_image(tmp_path / ".b.png", IMG)
        write_pts(tmp_path / ".b.pts", PTS)
        (tmp_path / ".DS_Store").write_bytes(b"\0")
        (tmp_path / ".a.pts.1234abcd.tmp").write_text("")  # an atomic-write temporary
        found = discover(tmp_path)
        assert [f.key for f in found.faces] == ["a"]
        assert sorted((f.path.rsplit("/", 1)[-1], f.reason) for f in found.failures) == [
            (".b.png", HIDDEN_SKIPPED), (".b.pts", HIDDEN_SKIPPED)]
