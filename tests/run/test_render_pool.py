"""Render workers: one busy thread each, whatever BLAS/OpenMP library they load late (issue 22, item 4),
and no worker or batch file outlives its run (issue 23, item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter that, like `gannotate augment --input FOLDER`, has not imported scipy.spatial before it
# makes the pool: the pool loads it (and scipy's own OpenBLAS) before the fork, and a library a worker loads
# later starts at one thread too (ONE_THREAD_ENV).
WORKER_THREADS = """
import json, os, sys
import numpy as np
from gannotate.render import RendererSpec
from gannotate.run.render_pool import RenderPool, worker_thread_info
from shape_model.build import load_model

assert "scipy.spatial" not in sys.modules
mean = np.asarray(load_model().mean, np.float32).reshape(-1, 2)
src = (mean - mean.min(0)) / np.ptp(mean, 0).max() * 40 + 12  # (68, 2) in a 64² crop
rng = np.random.default_rng(0)
images = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
tgt = src + rng.normal(0, 1.5, (4, 68, 2)).astype(np.float32)
with RenderPool(RendererSpec({renderer!r}), 2, {scratch!r}) as pool:
    for _ in range(6):
        pool.submit(0, {{"images": images, "src": np.stack([src] * 4), "tgt": tgt}})
    pool.drain()
    info = [pool.call(worker_thread_info) for _ in range(4)]
    tasks = {{pid: len(os.listdir(f"/proc/{{pid}}/task")) for pid in pool.pids}}
print(json.dumps({{"info": info, "tasks": tasks}}))
"""


def _python(code: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(name, None)  # a user's shell does not set them
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=timeout, **kw)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("renderer", ["warp", "profile"])
def test_every_library_in_a_worker_runs_one_thread(tmp_path, renderer):
    r = _python(WORKER_THREADS.format(renderer=renderer, scratch=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    libs = [(os.path.basename(lib["filepath"]), lib["num_threads"]) for info in out["info"] for lib in info]
    assert any("scipy_openblas" in name and "64" not in name for name, _ in libs), libs  # scipy's own, in the worker
    assert all(n == 1 for _, n in libs), libs
    assert all(n == 1 for n in out["tasks"].values()), out["tasks"]  # one thread per worker: nothing else can spin
    assert not any(tmp_path.iterdir())  # the batch files went with the pool


IN_PROCESS_THREADS = """
import json, os, sys
from threadpoolctl import threadpool_info
from gannotate.augment import AugmentConfig, run_augment
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec, profile

assert "scipy.spatial" not in sys.modules
def blas():
    return [(os.path.basename(i["filepath"]), i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
seen = []
render = profile._piecewise_field
def spy(*a, **k):
    seen.append(blas())
    return render(*a, **k)
profile._piecewise_field = spy
fit = profile.fit_face3d
def fit_spy(*a, **k):  # the job's own process fits each face (plan and refusals) with or without workers
    seen.append(blas())
    return fit(*a, **k)
profile.fit_face3d = fit_spy
run_augment(AugmentConfig(out={out!r}, plan=PlanConfig(n=2), size=48, workers={workers}, batch_size=4,
                          formats=("h5",), renderer=RendererSpec("profile")))
print(json.dumps({{"seen": seen, "after": blas()}}))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_the_jobs_own_process_runs_blas_at_one_thread(tmp_path, workers):
    """augment renders (``--workers 1``) or plans (``--workers 2``) in its own process with one BLAS thread, scipy's
    late-loaded OpenBLAS included, and gives the libraries their threads back after."""
    r = _python(IN_PROCESS_THREADS.format(out=str(tmp_path / "o"), workers=workers))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    libs = [lib for call in out["seen"] for lib in call]
    assert out["seen"] and all(n == 1 for _, n in libs), libs
    if workers == 1:
        assert any("scipy_openblas" in name for name, _ in libs), libs
    if (os.cpu_count() or 1) > 1:
        assert any(n > 1 for _, n in out["after"]), out["after"]  # restored after the job


NO_TORCH = """
import json, os, sys
import numpy as np
import gannotate.run.render_pool as RP
from gannotate.augment import AugmentConfig, run_augment
from gannotate.io.hdf5 import DatasetReader
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec

render = RP._render_in_worker
def spy(path):
    out = render(path)
    with open(os.path.join({marks!r}, str(os.getpid())), "w") as f:
        f.write(json.dumps("torch" in sys.modules))
    return out
spy.__module__, spy.__qualname__ = RP.__name__, "_render_in_worker"  # the pool submits it by reference
RP._render_in_worker = spy
run_augment(AugmentConfig(out={out!r}, plan=PlanConfig(n=6, seed=1), size=64, workers=2, batch_size=4,
                          formats=("h5",), renderer=RendererSpec("profile")))
with DatasetReader({out!r} + "/dataset.h5") as r:
    judged = int(np.isfinite(r.fields["reader_nme"]).sum())
print(json.dumps({{"judged": judged}}))
"""


def test_render_workers_score_without_loading_torch(tmp_path):
    """The default gate (YuNet, and the shipped detector as its ONNX graph in OpenCV) never loads torch in a render
    worker: importing it cost each worker about a second of CPU, a tenth of a 1,200-sample run's."""
    marks = tmp_path / "marks"
    marks.mkdir()
    r = _python(NO_TORCH.format(out=str(tmp_path / "o"), marks=str(marks)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["judged"] > 0  # the detector did read the renders
    seen = {p.name: json.loads(p.read_text()) for p in marks.iterdir()}
    assert len(seen) == 2 and not any(seen.values()), seen


KILLED_PARENT = """
import os, sys, time
from pathlib import Path
from gannotate.augment import AugmentConfig, run_augment
from gannotate.plan import PlanConfig
from gannotate.render import RendererSpec

class Report:
    def start(self, total, done):
        pass
    def advance(self, n):
        import multiprocessing
        pids = [p.pid for p in multiprocessing.active_children()]
        print("workers", *pids, flush=True)
        time.sleep(60)  # killed here, mid-run, with batches in flight

run_augment(AugmentConfig(out=Path({out!r}), input=Path({inp!r}), plan=PlanConfig(n=12, seed=1), size=48,
                          batch_size=2, workers=2, renderer=RendererSpec("warp")), progress=Report())
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_takes_the_workers_and_resume_cleans_their_batches(tmp_path, face_folder):
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.plan import PlanConfig
    from gannotate.render import RendererSpec

    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_PARENT.format(out=str(out), inp=str(face_folder)))],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = p.stdout.readline()
    assert line.startswith("workers"), line
    workers = [int(x) for x in line.split()[1:]]
    assert len(workers) == 2 and all(_alive(w) for w in workers)
    staging = [d for d in out.iterdir() if d.name.startswith(".render.staging-")]
    assert len(staging) == 1  # the batch files live under OUT, not in $TMPDIR
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p.stdout.close()
    deadline = time.time() + 20
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
    cfg = AugmentConfig(out=out, input=face_folder, plan=PlanConfig(n=12, seed=1), size=48, batch_size=2, workers=2,
                        renderer=RendererSpec("warp"))
    res = run_augment(cfg)
    assert res.n_total == 48 and not res.failures
    assert not [d for d in out.iterdir() if ".staging-" in d.name]
    with DatasetReader(out / "dataset.h5") as r:
        assert len(r) == 48


def test_a_result_crosses_the_pipe_as_one_atomic_write(tmp_path, monkeypatch):
    """What a worker sends back is a path of a few dozen bytes, below PIPE_BUF: a pipe delivers it whole or not
    at all. A multi-megabyte result sent down the pipe could be cut off by ``close(abort=True)`` terminating the
    worker mid-write, and the executor then waited for the rest of it for ever (seen once in the Ctrl-C test)."""
    import pickle
    import select

    import numpy as np

    from gannotate.run import render_pool

    big = np.arange(3 * 2**20, dtype=np.float64)  # 24 MB
    monkeypatch.setattr(render_pool._Worker, "process", lambda batch: {"images": big + batch["x"][0]})
    batch = tmp_path / "0.npz"
    np.savez(batch, x=np.array([1.0]))
    sent = render_pool._render_in_worker(str(batch))
    assert isinstance(sent, str) and len(pickle.dumps(sent)) < select.PIPE_BUF
    assert not batch.exists()
    np.testing.assert_array_equal(render_pool._read_result(sent)["images"], big + 1.0)
    assert not list(tmp_path.iterdir())  # the result file is read once and removed


def test_a_worker_error_reaches_the_parent_with_its_message(tmp_path):
    from gannotate.errors import GannotateError
    from gannotate.render import RendererSpec
    from gannotate.run.render_pool import RenderPool

    def setup(renderer):
        def process(batch):
            raise GannotateError(f"profile: cannot fit batch {int(batch['i'][0])}")
        return process

    import numpy as np

    with pytest.raises(GannotateError, match="cannot fit batch 3"):
        with RenderPool(RendererSpec("warp"), 2, tmp_path, setup=setup) as pool:
            pool.submit(0, {"i": np.array([3])})
            pool.drain()
