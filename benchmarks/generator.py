"""Generator cost on CPU: ms/image for the paper generator and the shipped refiner at 128², fp32 and bf16.

GFLOP are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOP per multiply-add, convs
and transposed convs; norms and activations are not counted). Also reports the K = 66 release
configuration. bf16 is autocast (``torch.autocast("cpu", torch.bfloat16)``); it pays only on CPUs
with native bf16 (AMX / AVX-512 bf16) — the JSON records the CPU capability torch detected and the
bf16/fp32 ratio measured in the same run. ``--bf16-batch`` keeps the bf16 runs short where they are
emulated (hundreds of times slower). Prints JSON and writes benchmarks/results/generator.json. Usage:
    python benchmarks/generator.py [--threads 1] [--batch 8] [--repeats 3] [--no-bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gannotate.heatmaps import render
from gannotate.models.generator import Generator, GeneratorConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, best_ms, cpu_description, emit  # noqa: E402

RESULTS = RESULTS_DIR / "generator.json"


def _measure(cfg: GeneratorConfig, batch: int, repeats: int, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    s = cfg.image_size
    image = torch.rand(batch, 3, s, s) * 2 - 1
    maps = render(torch.rand(batch, cfg.n_points, 2) * (s - 1), s)
    extra = torch.rand(batch, cfg.extra_channels, s, s) if cfg.extra_channels else None
    run = (lambda: g(image, maps)) if extra is None else (lambda: g(image, maps, extra))
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), ctx:
        with FlopCounterMode(display=False) as counter:
            g(image[:1], maps[:1]) if extra is None else g(image[:1], maps[:1], extra[:1])
        ms = best_ms(run, repeats)
    return {
        "config": cfg.to_dict(),
        "params": sum(p.numel() for p in g.parameters()),
        "gflop_per_image": round(counter.get_total_flops() / 1e9, 3),
        "batch": batch,
        "ms_per_batch": round(ms, 1),
        "ms_per_image": round(ms / batch, 2),
    }


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bf16-batch", type=int, default=1)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gannotate.render.gan import cpu_has_bf16
    from gannotate.training.config import REFINE_PRESETS
    from gannotate.training.refine import generator_config

    configs = {"paper_k68": GeneratorConfig(n_points=68), "refine": generator_config(REFINE_PRESETS["refine"], 68)}
    result = {
        "benchmark": "generator",
        "device": f"{cpu_description()}, torch threads={args.threads}",
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_bf16(),
        "release_k66": _measure(GeneratorConfig(n_points=66), args.batch, args.repeats),
        "timing": f"inference_mode, best of {args.repeats} after one warm-up",
    }
    for name, cfg in configs.items():
        fp32 = _measure(cfg, args.batch, args.repeats)
        result[name] = fp32
        if not args.no_bf16:
            bf16 = _measure(cfg, args.bf16_batch, 1, bf16=True)
            result[f"{name}_bf16"] = bf16
            result[f"{name}_bf16_speedup"] = round(fp32["ms_per_image"] / bf16["ms_per_image"], 3)
    return emit(result, args.out)


if __name__ == "__main__":
    main()
