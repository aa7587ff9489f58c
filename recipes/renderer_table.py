"""Recipe: the README's "Which renderer" table — each renderer before and with the nearer side + gate.

For every renderer, two ``gannotate augment`` runs on the same held-out faces and targets:

- ``before``: ``--no-mirror --min-quality 0 --turn shape-model`` (the source's own side, every sample kept,
  targets turned by the shape model as the paper does);
- ``defaults``: what a plain ``gannotate augment`` does (nearer side, default measures, gate 0.5);
- ``turn3d``, ``turn-mixed``, ``turn-shape-model`` (with ``--arms``): the defaults with that ``--turn``;
  ``no-enclose``: the defaults with ``--no-enclose``.

Each dataset is then read by dlib (as ``gannotate evaluate independent``: the share found as a face,
here by the |yaw| of the target's grid slot, so a gate's redraw — which moves the yaw within half a
grid step — counts where it was asked for; a dropped slot is not in the share) and SFace (``gannotate evaluate identity``); the gate's redraws, rejections and dropped
slots come from the run's manifest, img/s from its wall time (the machine's load is recorded beside
it: compare img/s only between arms of one run). Usage::

    python recipes/renderer_table.py --input outputs/payoff/split/test_val.txt --out outputs/renderer_table

Writes ``OUT/renderer_table.json`` (every number and the commands) and prints the markdown table.
Resumable: an arm whose dataset is complete is not made again (augment resumes a partial one).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gannotate.io.hdf5 import DatasetReader
from gannotate.metrics.independent import DlibReader, find_predictor, read_dataset, read_real

ARMS = {
    "before": ["--no-mirror", "--min-quality", "0", "--turn", "shape-model"],
    "defaults": [],
    "turn3d": ["--turn", "3d"],  # the defaults with targets turned by the 3D face
    "turn-mixed": ["--turn", "mixed"],
    "turn-shape-model": ["--turn", "shape-model"],
    "no-enclose": ["--no-enclose"],  # the defaults with targets whose nose or mouth may cross their jaw outline
}
YAWS = ("0-15", "15-30", "30-45", "45-60", "60+")


def _run(cmd: list[str]) -> str:
    print("$", shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def found_by_slot(h5: Path, reader: DlibReader, grid: np.ndarray) -> dict[str, Any]:
    """dlib's found share (%), the median NME (%) of the found and the samples kept, per |slot yaw| of the grid."""
    with DatasetReader(h5) as r:
        slot = np.abs(np.round(grid[np.asarray(r.target_index)]))
    read = read_dataset(h5, reader)
    found = read.detected
    return {f"{s:g}": {"found": float(100 * found[slot == s].mean()), "n": int((slot == s).sum()),
                       "nme_median": float(np.median(read.nme[(slot == s) & found])) if (found & (slot == s)).any() else None}
            for s in sorted(set(slot))}


def arm(args: argparse.Namespace, renderer: str, name: str) -> dict[str, Any]:
    out = args.out / f"{renderer}_{name}"
    cmd = ["gannotate", "augment", "--input", str(args.input), "--renderer", renderer, "--yaw", args.yaw,
           "--n", str(args.n), "--expression", str(args.expression), "--seed", str(args.seed),
           "--workers", str(args.workers), "--format", "h5", "--out", str(out), *ARMS[name]]
    if renderer == "gan" and args.generator is not None:
        cmd += ["--generator", str(args.generator)]
    manifest = out / "manifest.json"
    if not (manifest.exists() and json.loads(manifest.read_text()).get("complete")):
        _run(cmd)
    m = json.loads(manifest.read_text())
    h5 = str(out / "dataset.h5")
    a, b = (float(v) for v in args.yaw.split(":"))
    found = found_by_slot(Path(h5), DlibReader(find_predictor()), np.linspace(a, b, args.n))
    ident = json.loads(_run(["gannotate", "evaluate", "identity", h5, "--input", str(args.input), "--json"]))
    counts = m["counts"]
    return {"command": shlex.join(cmd), "samples": counts["samples_written"] + counts["samples_skipped"],
            "slots": counts["sources_ok"] * counts["targets_per_source"], "gate": counts.get("gate"),
            "elapsed_s": m["elapsed_s"], "independent": found, "identity": ident, "loadavg": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, required=True, help="held-out faces (folder or list file)")
    ap.add_argument("--out", type=Path, default=Path("outputs/renderer_table"))
    ap.add_argument("--renderers", default="warp,profile,gan")
    ap.add_argument("--arms", default="before,defaults", help=f"of {list(ARMS)}")
    ap.add_argument("--yaw", default="-60:60")
    ap.add_argument("--n", type=int, default=9)
    ap.add_argument("--expression", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--generator", type=Path,
                    help="gan: this refiner instead of the shipped one (a fine-tune to compare)")
    ap.add_argument("--real", type=Path, help="real annotated photos read the same way, for reference (e.g. turned ones)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "renderer_table.json"
    results: dict[str, Any] = json.loads(table.read_text()) if table.exists() else {}
    for renderer in args.renderers.split(","):
        for name in args.arms.split(","):
            results[f"{renderer}/{name}"] = arm(args, renderer, name)
            table.write_text(json.dumps(results, indent=1))
    if args.real:
        real = read_real(args.real, DlibReader(find_predictor()))
        results["real photos"] = {"by_yaw": real.summary["by_yaw"], "source": str(args.real)}
        table.write_text(json.dumps(results, indent=1))
    print(markdown({k: v for k, v in results.items() if "slots" in v}))


def markdown(results: dict[str, Any]) -> str:
    """One row per arm: found % per |slot yaw|, SFace mean and same-person share, the gate's work."""
    slots = list(next(iter(results.values()))["independent"])
    head = ["arm", *(f"found {s}°" for s in slots), "SFace mean (same %)", "dlib NME of found", "redraws / dropped slots", "img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, v in results.items():
        g = v["gate"] or {}
        cells = [k, *(f"{v['independent'][s]['found']:.0f}%" for s in slots),
                 f"{v['identity']['mean']:.3f} ({v['identity']['share_same']:.0f}%)",
                 "/".join(f"{c['nme_median']:.1f}" if c["nme_median"] else "–" for c in v["independent"].values()),
                 f"{g.get('redraws', 0)} / {g.get('dropped', 0)} of {v['slots']}", f"{v['samples'] / v['elapsed_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
