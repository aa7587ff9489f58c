"""gannotate.io.folder_writer: 300W-style folders that discovery reads back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.errors import DatasetError
from gannotate.io.folder_writer import FolderWriter
from gannotate.io.folders import discover, load_face


def test_round_trip_through_discovery(tmp_path, rng):
    images = rng.integers(0, 256, size=(3, 20, 24, 3), dtype=np.uint8)
    points = rng.uniform(0, 19, size=(3, 68, 2)).astype(np.float32)
    with FolderWriter(tmp_path / "out") as w:
        for i in range(3):
            w.write(f"face_{i:03d}", images[i], points[i])
        w.write("sub/face_x", images[0], points[0])
        assert w.n_written == 4 and w.exists("face_001") and not w.exists("face_009")
    found = discover(tmp_path / "out")
    assert found.failures == []
    assert [f.key for f in found.faces] == ["images/face_000", "images/face_001", "images/face_002",
                                           "images/sub/face_x"]
    for i, ref in enumerate(found.faces[:3]):
        image, pts = load_face(ref)
        np.testing.assert_array_equal(image, images[i])
        np.testing.assert_allclose(pts, points[i], atol=1e-5)
    assert not [p for p in (tmp_path / "out" / "images").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", ""])
def test_rejects_unsafe_names(tmp_path, bad):
    with pytest.raises(DatasetError):
        FolderWriter(tmp_path).write(bad, np.zeros((4, 4, 3), np.uint8), np.zeros((68, 2)))
