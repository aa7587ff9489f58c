"""Wall time of ``gannotate --help`` and ``gannotate augment --help`` (a new process each; target < 1 s).

Why a benchmark: the CLI must not import torch to print help (it took 4–6 s when it did). Prints
JSON and writes benchmarks/results/cli_help.json. Usage: python benchmarks/cli_help.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, cpu_description, emit  # noqa: E402


def _times(args: list[str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gannotate.cli", *args], check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    result = {"benchmark": "cli_help", "device": cpu_description(), "target_s": 1.0}
    for name, argv in (("help", ["--help"]), ("augment_help", ["augment", "--help"]), ("train_help", ["train", "--help"])):
        t = sorted(_times(argv, args.repeats))
        result[name] = {"min_s": round(t[0], 3), "median_s": round(t[len(t) // 2], 3), "max_s": round(t[-1], 3)}
    return emit(result, RESULTS_DIR / "cli_help.json")


if __name__ == "__main__":
    main()
