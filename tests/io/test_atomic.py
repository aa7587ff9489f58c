import os

import pytest

from gannotate.io.atomic import atomic_path, atomic_write_text


def test_mode_follows_the_umask_like_open(tmp_path):
    old = os.umask(0o027)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert os.stat(p).st_mode & 0o777 == 0o640


def test_failure_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "b.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["b.txt"]
