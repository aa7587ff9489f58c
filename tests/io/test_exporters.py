"""gannotate.io.exporters: every format round-trips (read back what was written, ≤ 1e-3 px)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gannotate.errors import GannotateError
from gannotate.io.exporters import (
    COCO_JSON_NAME,
    HRNET_CSV_NAME,
    export,
    keypoint_names,
    list_exporters,
    read_hrnet_csv,
    skeleton,
)
from gannotate.io.folders import discover, load_face
from gannotate.io.hdf5 import DatasetWriter
from gannotate.io.images import read_image
from gannotate.io.landmarks_io import read_ljson
from gannotate.landmarks import IBUG68

N, S = 3, 32
NAMES = [f"faces%2Feinstein_{i:04d}" for i in range(N)]  # sample_name(source key, target)


@pytest.fixture()
def dataset(tmp_path):
    """A 3-sample dataset with random images and sub-pixel landmarks."""
    r = np.random.default_rng(5)
    images = r.integers(0, 256, size=(N, S, S, 3), dtype=np.uint8)
    landmarks = r.uniform(2, S - 3, size=(N, 68, 2)).astype(np.float32)
    path = tmp_path / "d.h5"
    with DatasetWriter(path, scheme="ibug68", image_size=S, n_params=4, attrs={"seed": 0}) as w:
        s = w.add_source("faces/einstein")
        w.append(images, landmarks, np.zeros((N, 4)), np.zeros((N, 3)), s, np.arange(N))
    return path, images, landmarks


def test_registry():
    assert list_exporters() == ["coco", "hrnet-csv", "ljson", "pts"]


def test_unknown_format(dataset, tmp_path):
    with pytest.raises(GannotateError, match="choose one of"):
        export(dataset[0], "mat", tmp_path / "x")


def test_pts(dataset, tmp_path):
    path, images, landmarks = dataset
    assert export(path, "pts", tmp_path / "out") == tmp_path / "out"
    found = discover(tmp_path / "out")
    assert len(found.faces) == N and not found.failures
    for i, ref in enumerate(found.faces):
        image, pts = load_face(ref)
        np.testing.assert_array_equal(image, images[i])
        np.testing.assert_allclose(pts, landmarks[i], atol=1e-3)
    assert (tmp_path / "out" / "images" / f"{NAMES[0]}.pts").read_text().startswith("version: 1")


def test_ljson_through_menpo(dataset, tmp_path):
    path, images, landmarks = dataset
    out = export(path, "ljson", tmp_path / "out")
    for i in range(N):
        np.testing.assert_allclose(read_ljson(out / "images" / f"{NAMES[i]}.ljson", 68), landmarks[i], atol=1e-3)
        np.testing.assert_array_equal(read_image(out / "images" / f"{NAMES[i]}.png"), images[i])
    doc = json.loads((out / "images" / f"{NAMES[0]}.ljson").read_text())
    assert doc["version"] == 3
    group = doc["groups"]["face_ibug_68"]
    np.testing.assert_allclose(group["landmarks"]["points"][0], landmarks[0, 0, ::-1], atol=1e-5)  # (y, x)
    assert {lab["label"] for lab in group["labels"]} == {
        "jaw", "left_eyebrow", "right_eyebrow", "nose", "left_eye", "right_eye", "mouth"}


def test_ljson_labels_via_menpo_image_importer(dataset, tmp_path):
    import warnings

    import menpo.io as mio

    out = export(dataset[0], "ljson", tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = mio.import_image(out / "images" / f"{NAMES[1]}.png")
    group = im.landmarks["face_ibug_68"]
    assert group.n_points == 68 and "mouth" in group.labels
    np.testing.assert_allclose(group.points[:, ::-1], dataset[2][1], atol=1e-3)


def test_hrnet_csv(dataset, tmp_path):
    path, images, landmarks = dataset
    csv_path = export(path, "hrnet-csv", tmp_path / "out")
    assert csv_path == tmp_path / "out" / HRNET_CSV_NAME
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:6] == ["image_name", "scale", "center_w", "center_h", "original_0_x", "original_0_y"]
    assert len(header) == 4 + 2 * 68
    rows = read_hrnet_csv(csv_path)
    assert len(rows) == N
    for i, row in enumerate(rows):
        np.testing.assert_allclose(row["points"], landmarks[i], atol=1e-3)
        one_based = landmarks[i].astype(np.float64) + 1
        lo, hi = one_based.min(0), one_based.max(0)
        np.testing.assert_allclose(row["center"], (lo + hi) / 2, atol=1e-3)
        assert row["scale"] == pytest.approx((hi - lo).max() / 200, abs=1e-5)
        # HRNet joins DATASET.ROOT (= <out>/images) and image_name
        assert row["image_name"] == f"{NAMES[i]}.png"
        np.testing.assert_array_equal(read_image(csv_path.parent / "images" / row["image_name"]), images[i])


def test_coco(dataset, tmp_path):
    path, images, landmarks = dataset
    doc = json.loads(export(path, "coco", tmp_path / "out").read_text())
    assert (tmp_path / "out" / COCO_JSON_NAME).is_file()
    cat = doc["categories"][0]
    assert cat["keypoints"] == keypoint_names(IBUG68) and len(set(cat["keypoints"])) == 68
    assert cat["skeleton"] == skeleton(IBUG68, one_based=True) and min(min(e) for e in cat["skeleton"]) == 1
    assert doc["info"]["coord_origin"] == "0-based pixel centres"
    by_id = {im["id"]: im for im in doc["images"]}
    for i, ann in enumerate(doc["annotations"]):
        kp = np.asarray(ann["keypoints"]).reshape(-1, 3)
        np.testing.assert_allclose(kp[:, :2], landmarks[i], atol=1e-3)
        assert np.all(kp[:, 2] == 2) and ann["num_keypoints"] == 68
        x, y, bw, bh = ann["bbox"]
        np.testing.assert_allclose([x, y, x + bw, y + bh],
                                   [*landmarks[i].min(0), *landmarks[i].max(0)], atol=1e-3)
        im = by_id[ann["image_id"]]
        assert (im["width"], im["height"]) == (S, S) and ann["source"] == "faces/einstein"
        np.testing.assert_array_equal(read_image(tmp_path / "out" / im["file_name"]), images[i])


class TestExportCommand:
    def test_cli_each_format(self, dataset, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main

        runner = CliRunner()
        for fmt in list_exporters():
            res = runner.invoke(main, ["export", str(dataset[0]), "--format", fmt, "--out", str(tmp_path / fmt)])
            assert res.exit_code == 0, res.output
            assert res.output.strip().startswith(str(tmp_path / fmt))

    def test_cli_unknown_format_lists_choices(self, dataset, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main

        res = CliRunner().invoke(main, ["export", str(dataset[0]), "--format", "mat", "--out", str(tmp_path)])
        assert res.exit_code == 2 and "hrnet-csv" in res.output

    def test_cli_bad_dataset_is_fatal(self, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main

        bad = tmp_path / "bad.h5"
        bad.write_bytes(b"junk")
        res = CliRunner().invoke(main, ["export", str(bad), "--format", "pts", "--out", str(tmp_path / "o")])
        assert res.exit_code == 3 and "bad.h5" in res.output
