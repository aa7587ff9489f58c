"""Exports read by their real clients: pycocotools' COCOeval, menpo's LJSON importer and
labeller, HRNet's positional csv reader; names keep the source; the HRNet split keeps people apart."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from gannotate.errors import GannotateError
from gannotate.io.exporters import COCO_FACE_SIGMA, HRNET_SPLIT_NAMES, export, split_by_source
from gannotate.io.hdf5 import DatasetWriter

S = 32


def make_dataset(path, sources: list[str], per_source: int = 2, seed: int = 1):
    r = np.random.default_rng(seed)
    n = len(sources) * per_source
    images = r.integers(0, 256, size=(n, S, S, 3), dtype=np.uint8)
    landmarks = r.uniform(2, S - 3, size=(n, 68, 2)).astype(np.float32)
    with DatasetWriter(path, scheme="ibug68", image_size=S, n_params=4, attrs={"seed": 0}) as w:
        rows = [w.add_source(s) for s in sources]
        if n:
            w.append(images, landmarks, np.zeros((n, 4)), np.zeros((n, 3)),
                     np.repeat(rows, per_source), np.tile(np.arange(per_source), len(sources)))
    return path, images, landmarks


class TestCoco:
    @pytest.mark.smoke
    def test_cocoeval_self_ap_is_one(self, tmp_path):
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        path, _, _ = make_dataset(tmp_path / "d.h5", ["a/x", "b/y", "c/z"])
        ann = export(path, "coco", tmp_path / "out")
        doc = json.loads(ann.read_text())
        sigmas = np.asarray(doc["categories"][0]["sigmas"])
        assert sigmas.shape == (68,) and np.all(sigmas == COCO_FACE_SIGMA)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gt = COCO(str(ann))
            dets = [{**a, "score": 1.0} for a in doc["annotations"]]
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)  # AP @ OKS .50:.95

        # a shifted prediction scores lower: sigmas are in effect
        shifted = [{**d, "keypoints": [v + (3.0 if j % 3 == 0 else 0.0) for j, v in enumerate(d["keypoints"])]}
                   for d in dets]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = COCOeval(gt, gt.loadRes(shifted), "keypoints")
            ev.params.kpt_oks_sigmas = sigmas
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] < 1.0

    def test_val_split_by_source_loads_in_pycocotools(self, tmp_path):
        from pycocotools.coco import COCO

        from gannotate.io.exporters import COCO_SPLIT_NAMES

        path, _, _ = make_dataset(tmp_path / "d.h5", [f"p{i}/x" for i in range(8)], per_source=3)
        export(path, "coco", tmp_path / "out", val_fraction=0.25)
        parts = [json.loads((tmp_path / "out" / n).read_text()) for n in COCO_SPLIT_NAMES]
        assert [len(p["annotations"]) for p in parts] == [18, 6]  # 2 of 8 sources, 3 samples each
        sources = [{a["source"] for a in p["annotations"]} for p in parts]
        assert not sources[0] & sources[1]  # one person never in both
        for n in COCO_SPLIT_NAMES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coco = COCO(str(tmp_path / "out" / n))
            assert set(coco.getImgIds()) == {a["image_id"] for a in coco.dataset["annotations"]}

    def test_empty_dataset_is_a_valid_coco_file(self, tmp_path):
        from pycocotools.coco import COCO

        path, _, _ = make_dataset(tmp_path / "d.h5", [], per_source=0)
        doc = json.loads(export(path, "coco", tmp_path / "out").read_text())
        assert doc["images"] == [] and doc["annotations"] == [] and len(doc["categories"]) == 1
        gt = COCO(str(tmp_path / "out" / "annotations.json"))
        assert gt.getImgIds() == [] and gt.getCatIds() == [1]


class TestLjson:
    def test_menpo_reads_v3_without_warning_and_labels_match_its_labeller(self, tmp_path):
        import menpo.io as mio
        from menpo.landmark import face_ibug_68_to_face_ibug_68
        from menpo.shape import PointCloud

        path, _, landmarks = make_dataset(tmp_path / "d.h5", ["faces/a"], per_source=1)
        export(path, "ljson", tmp_path / "out")
        (f,) = sorted((tmp_path / "out" / "images").glob("*.ljson"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # menpo's MenpoDeprecationWarning for v1/v2 would raise
            lms = mio.import_landmark_file(f)
        ours = lms["face_ibug_68"] if hasattr(lms, "keys") else lms
        np.testing.assert_allclose(ours.points[:, ::-1], landmarks[0], atol=1e-3)
        ref = face_ibug_68_to_face_ibug_68(PointCloud(landmarks[0][:, ::-1].astype(np.float64)))
        assert sorted(ours.labels) == sorted(ref.labels)
        for label in ref.labels:
            np.testing.assert_array_equal(ours.get_label(label).points, ref.get_label(label).points, err_msg=label)


class TestHrnet:
    def read_like_hrnet(self, csv_path):
        """HRNet's Face300W reader: pandas-like positional columns 0, 1, 2, 3, then 4: coords."""
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        return [(r[0], float(r[1]), float(r[2]), float(r[3]), np.asarray(r[4:], float).reshape(-1, 2)) for r in rows]

    def test_paths_relative_to_images_root(self, tmp_path):
        from gannotate.io.images import read_image

        path, images, landmarks = make_dataset(tmp_path / "d.h5", ["a/x"])
        out = tmp_path / "out"
        csv_path = export(path, "hrnet-csv", out)
        for i, (name, scale, cw, ch, pts) in enumerate(self.read_like_hrnet(csv_path)):
            assert not name.startswith("images/")
            np.testing.assert_array_equal(read_image(out / "images" / name), images[i])  # DATASET.ROOT = out/images
            np.testing.assert_allclose(pts - 1, landmarks[i], atol=1e-3)
            assert pts.shape == (68, 2) and scale > 0

    def test_val_split_by_source(self, tmp_path):
        sources = [f"person{i:02d}/img" for i in range(20)]
        path, _, _ = make_dataset(tmp_path / "d.h5", sources, per_source=3)
        out = tmp_path / "out"
        train_csv = export(path, "hrnet-csv", out, val_fraction=0.25)
        assert train_csv == out / HRNET_SPLIT_NAMES[0]
        train = [r[0] for r in self.read_like_hrnet(out / HRNET_SPLIT_NAMES[0])]
        valid = [r[0] for r in self.read_like_hrnet(out / HRNET_SPLIT_NAMES[1])]
        assert len(train) + len(valid) == 60 and len(valid) == 15

        def person(name):
            return name.split("%2F")[0]

        assert not {person(n) for n in train} & {person(n) for n in valid}
        # deterministic, and independent of the order the sources were added in
        make_dataset(tmp_path / "e.h5", sources[::-1], per_source=3)
        export(tmp_path / "e.h5", "hrnet-csv", tmp_path / "out2", val_fraction=0.25)
        valid2 = [r[0] for r in self.read_like_hrnet(tmp_path / "out2" / HRNET_SPLIT_NAMES[1])]
        assert sorted(valid2) == sorted(valid)

    def test_split_validation_and_unknown_option(self, tmp_path):
        with pytest.raises(GannotateError, match="val_fraction"):
            split_by_source(["a"], np.array([0]), 1.0)
        path, _, _ = make_dataset(tmp_path / "d.h5", ["a/x"])
        with pytest.raises(GannotateError, match="takes no option val_fraction"):
            export(path, "pts", tmp_path / "o", val_fraction=0.2)

    def test_cli_val_fraction(self, tmp_path):
        from click.testing import CliRunner

        from gannotate.cli import main

        path, _, _ = make_dataset(tmp_path / "d.h5", [f"p{i}/x" for i in range(4)])
        runner = CliRunner()
        r = runner.invoke(main, ["export", str(path), "--format", "hrnet-csv", "--out", str(tmp_path / "o"),
                                 "--val-fraction", "0.5"])
        assert r.exit_code == 0, r.output
        assert (tmp_path / "o" / HRNET_SPLIT_NAMES[1]).is_file()
        r = runner.invoke(main, ["export", str(path), "--format", "pts", "--out", str(tmp_path / "p"),
                                 "--val-fraction", "0.5"])
        assert r.exit_code == 2 and "--val-fraction" in r.output


def test_export_names_keep_the_source(tmp_path):
    path, _, _ = make_dataset(tmp_path / "d.h5", ["sub/a", "sub__a"], per_source=1)
    for fmt in ("pts", "ljson", "coco", "hrnet-csv"):
        out = tmp_path / fmt
        export(path, fmt, out)
        pngs = sorted(p.name for p in (out / "images").glob("*.png"))
        assert pngs == ["sub%2Fa_0000.png", "sub__a_0000.png"], fmt
