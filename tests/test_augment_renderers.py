"""Every registered renderer behaves like the warp in the job: determinism, resume, shards, masks, bad faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.io.hdf5 import DatasetReader
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, list_renderers, make_renderer

FAST = ["--size", "64", "-q", "--min-quality", "0"]  # no gate: these tests count samples


def _tiny_refiner(path: Path, seed: int = 0) -> Path:
    """An untrained refiner over the warp (identity-initialised), saved as a generator file."""
    import torch

    from gannotate.generator_meta import GeneratorMeta
    from gannotate.models.checkpoint import save_generator
    from gannotate.models.generator import Generator, GeneratorConfig

    torch.manual_seed(seed)
    g = Generator(GeneratorConfig(n_points=68, width=4, n_res=1, image_size=32, extra_channels=1, colour_mode="residual"))
    meta = GeneratorMeta(scheme="ibug68", image_size=32, kind="refine", base_renderer="warp", crop_margin_rel=0.25)
    return save_generator(path, g, meta)


@pytest.fixture(params=list_renderers())
def spec(request, tmp_path_factory) -> RendererSpec:
    if request.param == "gan":
        return RendererSpec.of("gan", generator=_tiny_refiner(tmp_path_factory.mktemp("g") / "g.pt"))
    return RendererSpec(request.param)


def _arrays(out: Path) -> dict[str, np.ndarray]:
    with DatasetReader(out / "dataset.h5") as r:
        d = {k: np.asarray(getattr(r, k)) for k in ("landmarks", "params", "source_index", "target_index")}
        d["images"] = np.asarray(r.images)
        d["masks"] = None if r.masks is None else np.asarray(r.masks)
    return d


def _same(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    for k in x:
        if x[k] is None:
            assert y[k] is None, k
        else:
            assert np.array_equal(x[k], y[k]), k


def test_deterministic_resumable_with_masks(tmp_path, face_folder, spec):
    cfg = dict(input=face_folder, plan=PlanConfig(n=3, yaw=(-40, 40), seed=3), size=64, batch_size=4, renderer=spec)
    base = make_renderer(spec)

    class Crashing:
        """The spec's renderer, dying on its third batch (after two committed batches)."""

        name = base.name
        calls = 0

        def __getattr__(self, item):
            return getattr(base, item)

        def _die(self):
            type(self).calls += 1
            if type(self).calls == 3:
                raise KeyboardInterrupt

        def render(self, *a):
            self._die()
            return base.render(*a)

    crashing = Crashing()
    if hasattr(base, "render_full"):
        def render_full(*a):
            crashing._die()
            return base.render_full(*a)

        crashing.render_full = render_full  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        run_augment(AugmentConfig(out=tmp_path / "r", **cfg), renderer=crashing)
    res = run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
    assert res.n_total == 12 and not res.failures
    run_augment(AugmentConfig(out=tmp_path / "u", **cfg))
    _same(tmp_path / "r", tmp_path / "u")  # resumed == uninterrupted == same seed twice
    d = _arrays(tmp_path / "u")
    if hasattr(base, "render_full"):  # geometric renderers record where the output is real surface
        assert d["masks"] is not None and d["masks"].shape == (12, 64, 64) and d["masks"].dtype == np.uint8
        assert d["masks"].max() == 255
    with DatasetReader(tmp_path / "u" / "dataset.h5") as r:
        assert r.attrs["renderer"] == spec.name
        if spec.name == "profile":
            assert "non-commercial" in str(r.attrs.get("face_model_licence", "")).lower()
            assert r.fit_residual is not None and np.all(np.isfinite(r.fit_residual))


def test_shards_merge_to_the_whole(tmp_path, face_folder, spec):
    runner = CliRunner()
    opts = ["--renderer", spec.name] + (["--generator", spec.kwargs()["generator"]] if "generator" in spec.kwargs() else [])
    base = ["augment", "--input", str(face_folder), "--n", "2", "--seed", "5", *opts, *FAST]
    for i in range(2):
        r = runner.invoke(main, [*base, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")])
        assert r.exit_code == 0, r.output
    assert runner.invoke(main, [*base, "--out", str(tmp_path / "whole")]).exit_code == 0
    assert runner.invoke(main, ["merge", str(tmp_path / "m"), str(tmp_path / "s0"), str(tmp_path / "s1")]).exit_code == 0
    m, w = _arrays(tmp_path / "m"), _arrays(tmp_path / "whole")
    assert sorted(map(bytes, m["images"].reshape(len(m["images"]), -1))) == sorted(map(bytes, w["images"].reshape(len(w["images"]), -1)))


def test_a_degenerate_face_fails_by_name_and_the_run_goes_on(tmp_path, face_folder, spec):
    bad = face_folder / "flat.png"
    cv2.imwrite(str(bad), np.full((200, 200, 3), 128, np.uint8))
    pts = np.stack([np.linspace(40, 160, 68), np.full(68, 100.0)], 1)  # collinear: no face
    (face_folder / "flat.pts").write_text("version: 1\nn_points: 68\n{\n" + "\n".join(f"{x + 1} {y + 1}" for x, y in pts) + "\n}\n")
    res = run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=PlanConfig(n=2), size=64, renderer=spec))
    assert [Path(f.path).stem for f in res.failures] == ["flat"] and res.failures[0].reason
    assert res.n_sources == 4 and res.n_total == 8


def test_workers_render_in_processes_and_match_one_worker(tmp_path, face_folder, spec):
    """``--workers 2``: a CPU renderer renders batches in 2 processes; the dataset equals the 1-worker one."""
    cfg = dict(input=face_folder, plan=PlanConfig(n=5, yaw=(-40, 40), seed=2), size=64, batch_size=3, renderer=spec)
    one = run_augment(AugmentConfig(out=tmp_path / "one", workers=1, **cfg))
    two = run_augment(AugmentConfig(out=tmp_path / "two", workers=2, **cfg))
    assert one.n_total == two.n_total == 20
    _same(tmp_path / "one", tmp_path / "two")


def test_a_job_of_one_batch_runs_in_process(tmp_path, face_folder, monkeypatch):
    """``--workers 2`` on one batch's worth of targets starts no worker: they could only add their start-up."""
    from gannotate.run import render_pool

    def no_pool(self, *args, **kwargs):
        raise AssertionError("render workers were started")

    monkeypatch.setattr(render_pool.RenderPool, "__init__", no_pool)
    cfg = dict(input=face_folder, plan=PlanConfig(n=2), size=32, renderer=RendererSpec("warp"))
    run_augment(AugmentConfig(out=tmp_path / "two", workers=2, batch_size=8, **cfg))  # 4 faces × 2 = one batch
    run_augment(AugmentConfig(out=tmp_path / "one", workers=1, batch_size=8, **cfg))
    _same(tmp_path / "one", tmp_path / "two")
    with pytest.raises(AssertionError, match="render workers"):  # one more target: two batches, workers start
        run_augment(AugmentConfig(out=tmp_path / "three", workers=2, batch_size=7, **cfg))


def test_render_workers_leave_the_parents_thread_settings_alone(tmp_path, face_folder):
    """The workers fork with BLAS and OpenCV at one thread; the parent gets its own settings back."""
    from threadpoolctl import threadpool_info

    before = (cv2.getNumThreads(), [p["num_threads"] for p in threadpool_info()])
    run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=PlanConfig(n=2), size=32, workers=2,
                              batch_size=3, renderer=RendererSpec("warp")))
    assert (cv2.getNumThreads(), [p["num_threads"] for p in threadpool_info()]) == before


def test_a_dead_render_worker_is_one_clear_error_and_the_run_resumes(tmp_path, face_folder, monkeypatch):
    """A worker killed mid-run (e.g. by the OOM killer) stops the run with one line; a rerun finishes it."""
    import os

    from gannotate.errors import GannotateError
    from gannotate.run import render_pool

    cfg = dict(input=face_folder, plan=PlanConfig(n=6, seed=1), size=64, batch_size=2, workers=2, renderer=RendererSpec("warp"))
    real = render_pool._render_in_worker
    calls = {"n": 0}

    def dying(*a):  # runs in the worker: the 2nd batch a worker takes kills it
        calls["n"] += 1
        if calls["n"] >= 2:
            os._exit(9)
        return real(*a)

    dying.__module__, dying.__qualname__ = real.__module__, real.__qualname__  # pickled by name, as the original
    monkeypatch.setattr(render_pool, "_render_in_worker", dying)
    with pytest.raises(GannotateError, match="render worker died"):
        run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
    monkeypatch.setattr(render_pool, "_render_in_worker", real)
    res = run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
    assert res.n_total == 24 and not res.failures
    run_augment(AugmentConfig(out=tmp_path / "u", **{**cfg, "workers": 1}))
    _same(tmp_path / "r", tmp_path / "u")


def test_ctrl_c_with_render_workers_stops_them_and_the_run_resumes(tmp_path, face_folder):
    """Ctrl-C in the parent: the workers are stopped (none left behind), committed batches stay, a rerun completes."""
    import multiprocessing

    class Interrupting:
        commits = 0

        def start(self, total: int, done: int) -> None: ...

        def advance(self, n: int) -> None:
            type(self).commits += 1
            if type(self).commits == 2:
                raise KeyboardInterrupt

    cfg = dict(input=face_folder, plan=PlanConfig(n=8, seed=4), size=48, batch_size=2, workers=2, renderer=RendererSpec("profile"))
    with pytest.raises(KeyboardInterrupt):
        run_augment(AugmentConfig(out=tmp_path / "r", **cfg), progress=Interrupting())
    assert multiprocessing.active_children() == []
    with DatasetReader(tmp_path / "r" / "dataset.h5") as r:
        assert 0 < len(r) < 32
    res = run_augment(AugmentConfig(out=tmp_path / "r", **cfg))
    assert res.n_total == 32 and res.n_skipped > 0
    run_augment(AugmentConfig(out=tmp_path / "u", **{**cfg, "workers": 1}))
    _same(tmp_path / "r", tmp_path / "u")


def test_resuming_a_gan_dataset_with_other_weights_is_refused(tmp_path, face_folder):
    """The generator's weights are part of a dataset's identity: no silent mix of two generators' samples."""
    from gannotate.errors import DatasetError

    g1, g2 = _tiny_refiner(tmp_path / "g1.pt", seed=1), _tiny_refiner(tmp_path / "g2.pt", seed=2)
    cfg = dict(input=face_folder, plan=PlanConfig(n=1), size=64)
    run_augment(AugmentConfig(out=tmp_path / "o", renderer=RendererSpec.of("gan", generator=g1), **cfg))
    with DatasetReader(tmp_path / "o" / "dataset.h5") as r:
        assert len(str(r.attrs["generator_sha256"])) == 64
    run_augment(AugmentConfig(out=tmp_path / "o", renderer=RendererSpec.of("gan", generator=g1), **cfg))  # same: fine
    with pytest.raises(DatasetError, match="generator_sha256"):
        run_augment(AugmentConfig(out=tmp_path / "o", renderer=RendererSpec.of("gan", generator=g2), **cfg))
