"""Progressive gap: known answers with test renderers, the face region, a warp run, grids and the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.cli import main
from gannotate.metrics.identity import cosine
from gannotate.metrics.progressive import (
    ProgressiveConfig,
    face_region,
    region_mad,
    render_routes,
    run_progressive,
    yaw_targets,
)
from gannotate.render import WarpRenderer
from tests.metrics.conftest import CopyRenderer, ShiftRenderer


class TestRegion:
    def test_box_grown_ten_percent(self):
        pts = np.array([[[10.0, 20.0], [30.0, 60.0]]], np.float32)  # box 20 × 40, centre (20, 40)
        m = face_region(pts, (100, 100))[0]
        xs, ys = np.nonzero(m.any(0))[0], np.nonzero(m.any(1))[0]
        assert (xs.min(), xs.max()) == (9, 31)  # half-width 11 = 10 · 1.1
        assert (ys.min(), ys.max()) == (18, 62)  # half-height 22
        assert m.sum() == len(xs) * len(ys)

    def test_mad_known_answer(self):
        a = np.full((2, 8, 8, 3), 100, np.uint8)
        b = a.copy()
        b[0] += 10
        b[1, 0, 0] = 0  # outside the mask below
        mask = np.zeros((2, 8, 8), bool)
        mask[:, 2:6, 2:6] = True
        np.testing.assert_allclose(region_mad(a, b, mask), [10.0, 0.0])


class TestKnownAnswers:
    def test_copy_renderer_gap_zero(self, builtin_crops):
        _, crop, pts = builtin_crops[0]
        s1, s2 = pts[None] + 5.0, pts[None] * 0.9 + 4.0
        r = render_routes(CopyRenderer(), crop[None], pts[None], s1, s2)
        assert r.gap[0] == 0.0 and r.change[0] == 0.0
        np.testing.assert_array_equal(r.one, r.two)

    def test_echo_renderer_gap_zero_identity_one(self, builtin_crops, embedder):
        """Targets that are integer moves of the source: landmarks land exactly, pixels are the input's."""
        imgs = np.stack([c for _, c, _ in builtin_crops])
        src = np.stack([p for _, _, p in builtin_crops])
        s1, s2 = src + np.float32([4, -3]), src + np.float32([-2, 5])
        r = render_routes(ShiftRenderer(), imgs, src, s1, s2)
        np.testing.assert_array_equal(r.gap, 0.0)  # both routes give the same pixels in the face region
        assert r.change.min() > 1.0  # but rendering did move pixels
        e_src, e_one, e_two = (embedder.embed(x, p) for x, p in ((imgs, src), (r.one, s2), (r.two, s2)))
        assert cosine(e_one, e_src).min() > 0.999 and cosine(e_two, e_src).min() > 0.999

    def test_warp_gap_positive(self, builtin_crops):
        _, crop, pts = builtin_crops[1]
        r = render_routes(WarpRenderer(), crop[None], pts[None], pts[None] * 1.1 - 6.0, pts[None] + 3.0)
        assert 0.0 < r.gap[0] < r.change[0]  # resampling twice loses a little


@pytest.fixture(scope="module")
def pdm():
    from shape_model.build import load_model

    return load_model()


def test_yaw_targets_are_the_plan(pdm, builtin_crops):
    from shape_model.pose import estimate_pose

    _, _, pts = builtin_crops[2]
    shapes = yaw_targets(pdm, pts, "k", (-30.0, 30.0))
    assert shapes.shape == (2, 68, 2)
    yaw = pdm.fit(shapes.astype(np.float64)).yaw
    np.testing.assert_allclose(yaw, [-30.0, 30.0], atol=0.5)
    assert estimate_pose(shapes.astype(np.float64))[0, 0] < estimate_pose(shapes.astype(np.float64))[1, 0]


def test_run_copy_renderer(tmp_path, embedder, pdm):
    cfg = ProgressiveConfig(yaws=(0.0, 30.0), out=tmp_path / "p")
    rep = run_progressive(cfg, renderer=CopyRenderer(), embedder=embedder, model=pdm)
    assert rep.summary["n_faces"] == 4 and rep.summary["n_routes"] == 8 and not rep.failures
    assert rep.summary["gap"] == 0.0 and set(rep.summary["by_pair"]) == {"0>30", "30>0"}
    for r in rep.routes:
        assert r["identity_one"] == pytest.approx(r["identity_two"], abs=1e-6)  # same pixels, same landmarks
    assert len(rep.grids) == 4
    g = cv2.imread(str(rep.grids[0]))
    assert g.shape[:2] == (2 * 128 + 2, 5 * 128 + 4 * 2)  # a row per route, five columns
    doc = json.loads((tmp_path / "p" / "report.json").read_text())
    assert len(doc["routes"]) == 8 and doc["summary"]["renderer"] == "copy"


def test_cli_warp_json(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", "progressive", "--renderer", "warp", "--yaws", "0,20",
                                    "--size", "64", "--no-identity", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["renderer"] == "warp" and s["n_routes"] == 8 and s["gap"] > 0 and "identity_one" not in s
    res = CliRunner().invoke(main, ["evaluate", "progressive", "--renderer", "warp", "--yaws", "0,20", "--size", "64",
                                    "--no-identity", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[1] == "| route y1>y2 | gap | change |" and lines[-2].startswith("| all | ") and "grids:" in lines[-1]


def test_cli_errors(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", "progressive", "--renderer", "gan", "--generator",
                                    str(tmp_path / "none.pt"), "--no-identity"])
    assert res.exit_code == 3 and "no such file" in res.output  # fatal, one line
    res = CliRunner().invoke(main, ["evaluate", "progressive", "--renderer", "warp", "--yaws", "10,10"])
    assert res.exit_code == 2  # usage error
    res = CliRunner().invoke(main, ["evaluate", "progressive", "--renderer", "warp", "--generator", "g.pt"])
    assert res.exit_code == 3 and "--generator has no effect" in res.output
