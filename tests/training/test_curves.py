"""stats.jsonl → curves figure."""

from __future__ import annotations

import json

import numpy as np

from gannotate.training.curves import draw_curves, read_stats, smooth


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(smooth(np.array([1.0, np.nan, 3.0]), 3), [1.0, 1.0, 2.0])


def test_read_and_draw(tmp_path):
    rows = [{"step": i, "Loss/G/pix": 1.0 / (i + 1), "note": "x"} for i in range(20)]
    (tmp_path / "stats.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    s = read_stats(tmp_path / "stats.jsonl")
    assert set(s) == {"step", "Loss/G/pix"} and s["Loss/G/pix"][3] == 0.25
    fig = draw_curves(s, ["Loss/G/pix", "missing"], tmp_path / "c.png", title="t", panel_size=(300, 120))
    assert fig.shape == (30 + 120, 300, 3) and (tmp_path / "c.png").is_file()
    assert (fig < 200).any()  # something was drawn


def test_reference_line_widens_the_range(tmp_path):
    s = {"step": np.arange(5.0), "a": np.array([1.0, 1.1, 1.2, 1.1, 1.0])}
    fig = draw_curves(s, ["a"], references={"a": 3.0}, panel_size=(300, 120))
    assert fig.shape == (150, 300, 3)


def test_reference_series_is_drawn_in_the_reference_colour():
    s = {"step": np.arange(5.0), "a": np.array([1.0, 1.1, 1.2, 1.1, 1.0]), "r": np.full(5, 2.0)}
    with_ref = draw_curves(s, ["a"], references={"a": "r"}, panel_size=(300, 120))
    without = draw_curves(s, ["a"], panel_size=(300, 120))
    red = lambda f: ((f[..., 0] > 150) & (f[..., 2] < 100)).sum()  # noqa: E731  (_REF is (200, 60, 40))
    assert red(with_ref) > red(without) + 50
    # a reference column that does not exist is ignored, not an error
    assert draw_curves(s, ["a"], references={"a": "nope"}, panel_size=(300, 120)).shape == without.shape
