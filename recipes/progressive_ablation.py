"""Compare progressive-gap reports route by route: is one generator's gap really smaller than another's?

    python recipes/progressive_ablation.py outputs/progressive/triple outputs/progressive/notriple [more ...]

Each argument is an ``--out`` folder of ``gannotate evaluate progressive`` (its ``report.json``),
all on the same faces and yaws. Prints one row per report (mean gap, change, identity of one and two
passes) and, for every report against the first, the mean paired difference of the gap over the
routes both share, with a 95% bootstrap interval over *faces* (routes of one face are not
independent) and the share of faces where the first has the smaller gap. Markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_routes(folder: Path) -> dict[tuple[str, float, float], dict]:
    doc = json.loads((folder / "report.json").read_text())
    return {(r["face"], float(r["yaw1"]), float(r["yaw2"])): r for r in doc["routes"]}


def paired(a: dict, b: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean gap difference a − b over shared routes; bootstrap CI over faces; share of faces with a < b."""
    keys = sorted(set(a) & set(b))
    faces = sorted({k[0] for k in keys})
    per_face = np.array([np.mean([a[k]["gap"] - b[k]["gap"] for k in keys if k[0] == f]) for f in faces])
    rng = np.random.default_rng(seed)
    boot = [rng.choice(per_face, len(per_face)).mean() for _ in range(n_boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"routes": len(keys), "faces": len(faces), "diff": float(per_face.mean()), "ci95": (float(lo), float(hi)),
            "share_smaller": float((per_face < 0).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", type=Path)
    args = ap.parse_args()
    routes = {p: load_routes(p) for p in args.reports}
    print("| report | routes | gap | change | identity one / two passes |\n|---|---|---|---|---|")
    for p, r in routes.items():
        v = list(r.values())
        mean = {k: float(np.mean([x[k] for x in v if x.get(k) is not None])) for k in ("gap", "change", "identity_one", "identity_two")}
        print(f"| {p.name} | {len(v)} | {mean['gap']:.2f} | {mean['change']:.2f} | {mean['identity_one']:.3f} / {mean['identity_two']:.3f} |")
    first = args.reports[0]
    print(f"\n| {first.name} − other | faces | gap difference | 95% CI (faces) | faces where {first.name} is smaller |\n|---|---|---|---|---|")
    for p in args.reports[1:]:
        d = paired(routes[first], routes[p])
        print(f"| − {p.name} | {d['faces']} | {d['diff']:+.2f} | [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] | {100 * d['share_smaller']:.0f}% |")


if __name__ == "__main__":
    main()
