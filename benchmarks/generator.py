"""Generator cost on CPU: ms/image for the paper generator at 128², batch 8; parameters and GFLOP.

GFLOP are counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOP per multiply-add, convs
and transposed convs; norms and activations are not counted). Also reports the K = 66 release
configuration. Prints JSON and writes benchmarks/results/generator.json. Usage:
    python benchmarks/generator.py [--threads 1] [--batch 8] [--repeats 3]
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


def _measure(cfg: GeneratorConfig, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    g = Generator(cfg).eval()
    s = cfg.image_size
    image = torch.rand(batch, 3, s, s) * 2 - 1
    maps = render(torch.rand(batch, cfg.n_points, 2) * (s - 1), s)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            g(image[:1], maps[:1])
        ms = best_ms(lambda: g(image, maps), repeats)
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
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "benchmark": "generator",
        "device": f"{cpu_description()}, torch threads={args.threads}",
        "torch": torch.__version__,
        "paper_k68": _measure(GeneratorConfig(n_points=68), args.batch, args.repeats),
        "release_k66": _measure(GeneratorConfig(n_points=66), args.batch, args.repeats),
        "timing": f"inference_mode, best of {args.repeats} after one warm-up",
    }
    return emit(result, args.out)


if __name__ == "__main__":
    main()
