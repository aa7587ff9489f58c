"""gannotate.io.videos: 300-VW layout, 1-based frame numbers, frames without .pts skipped, lazy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gannotate.errors import DatasetError, LandmarkFileError
from gannotate.io.pts import write_pts
from gannotate.io.videos import Clip, discover_clips, iter_frames

N_FRAMES, H, W = 80, 24, 32


def frame_value(number: int) -> int:
    """Grey level that identifies a 1-based frame number after lossy MJPG coding."""
    return (number * 3) % 250


def points_for(number: int) -> np.ndarray:
    return np.full((68, 2), number % 20, np.float32)


@pytest.fixture()
def video_root(tmp_path):
    """<root>/clip_a/vid.avi (MJPG, 80 frames) + annot/ for frames 1..80 except 2, 3 and 40."""
    clip = tmp_path / "videos" / "clip_a"
    (clip / "annot").mkdir(parents=True)
    writer = cv2.VideoWriter(str(clip / "vid.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    assert writer.isOpened()
    for n in range(1, N_FRAMES + 1):
        writer.write(np.full((H, W, 3), frame_value(n), np.uint8))
        if n not in (2, 3, 40):
            write_pts(clip / "annot" / f"{n:06d}.pts", points_for(n))
    writer.release()
    (tmp_path / "videos" / "not_a_clip").mkdir()  # no annot/: ignored
    return tmp_path / "videos"


def test_discover(video_root):
    clips = discover_clips(video_root)
    assert clips == [Clip("clip_a", video_root / "clip_a" / "vid.avi", video_root / "clip_a" / "annot")]
    assert discover_clips(video_root / "clip_a")[0].name == "clip_a"  # a clip folder itself
    with pytest.raises(DatasetError):
        discover_clips(video_root / "none")


def test_frame_numbers_skip_unannotated(video_root):
    numbers = discover_clips(video_root)[0].frame_numbers()
    assert numbers == [n for n in range(1, N_FRAMES + 1) if n not in (2, 3, 40)]


def test_iter_all_frames_in_order(video_root):
    clip = discover_clips(video_root)[0]
    got = list(iter_frames(clip, n_points=68))
    assert [n for n, _, _ in got] == clip.frame_numbers()
    for n, image, points in got:
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        assert abs(float(image.mean()) - frame_value(n)) < 3, n
        np.testing.assert_allclose(points, points_for(n), atol=1e-5)


def test_selected_frames_seek_and_skip(video_root):
    clip = discover_clips(video_root)[0]
    got = list(iter_frames(clip, frames=[79, 1, 3, 40, 1, 5, 500]))  # 3, 40: no .pts; 500: none
    assert [n for n, _, _ in got] == [1, 5, 79]  # 79 is reached by seeking (gap > 64)
    for n, image, _ in got:
        assert abs(float(image.mean()) - frame_value(n)) < 3, n


def test_lazy_generator(video_root):
    it = iter_frames(discover_clips(video_root)[0])
    n, _, _ = next(it)
    it.close()
    assert n == 1


def test_bad_pts_raises(video_root):
    clip = discover_clips(video_root)[0]
    clip.pts_path(4).write_text("1 2\n")
    with pytest.raises(LandmarkFileError, match="expected 68 points"):
        list(iter_frames(clip, frames=[4], n_points=68))


def test_export_frames_is_an_annotated_folder(video_root, tmp_path):
    """Clip frames become <clip>_<frame>.png + .pts that the folder reader loads back unchanged."""
    from gannotate.io.folders import discover, load_face
    from gannotate.io.videos import export_frames

    out = export_frames(video_root, tmp_path / "frames", per_clip=5)
    refs = discover(out).faces
    numbers = sorted(int(r.key.rsplit("_", 1)[1]) for r in refs)
    assert len(refs) == 5 and numbers[0] == 1 and numbers[-1] == N_FRAMES  # spread over the clip
    for ref in refs:
        image, points = load_face(ref)
        n = int(ref.key.rsplit("_", 1)[1])
        assert abs(float(image.mean()) - frame_value(n)) < 3
        np.testing.assert_allclose(points, points_for(n), atol=1e-3)


def test_export_frames_skips_a_broken_clip(video_root, tmp_path, caplog):
    from gannotate.io.videos import export_frames

    clip = discover_clips(video_root)[0]
    clip.pts_path(N_FRAMES).write_text("1 2\n")  # the last picked frame is unreadable
    out = export_frames(video_root, tmp_path / "frames", per_clip=5)
    assert "clip_a: skipped" in caplog.text
    assert len(list(out.glob("*.pts"))) == 4  # the frames before the bad one are kept
