"""``gannotate detector train|predict|evaluate`` and ``gannotate annotate``: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from gannotate.cli.options import (
    EXIT_FAILURES,
    Duration,
    check_device,
    fail_on_gannotate_error,
    seed_option,
    unused_seed_option,
)

__all__ = ["detector", "annotate"]

_checkpoint = click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
                           help="Detector checkpoint [default: the shipped gannotate/assets/detector.pt].")
_device = click.option("--device", default="cpu", show_default=True, callback=check_device,
                       help="Torch device (cpu, cuda, cuda:N); refused when this machine lacks it.")
_convert = click.option("--convert", is_flag=True, help="Convert 68-point truth to the detector's 66 points when they differ.")


def _report_failures(failures: list, label: str = "skipped") -> None:
    for f in failures:
        click.echo(f"{label}: {f.path}: {f.reason}", err=True)


@click.group()
def detector() -> None:
    """Train, run and score the compact heatmap landmark detector."""


@detector.command("train")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run folder (config.json, stats.jsonl, checkpoint.pt, train_state.pt); a rerun resumes it.")
@click.option("--val", type=click.Path(exists=True, path_type=Path), default=None, help="Validation folder / list file.")
@click.option("--generated", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Generated .h5 sets trained beside SOURCES by --recipe (repeatable).")
@click.option("--recipe", type=click.Choice(["mixed", "pretrain"]), default="mixed", show_default=True,
              help="mixed: each batch holds --real-share real faces; pretrain: --steps on the generated faces, "
                   "then --steps on the real ones from those weights (OUT/pretrain/).")
@click.option("--real-share", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True,
              help="Share of real faces per batch with --recipe mixed.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from this detector checkpoint's weights (fine-tuning).")
@click.option("--preset", type=click.Choice(["default", "smoke"]), default="default", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Override the preset's steps.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--width", type=click.IntRange(8), default=32, show_default=True, help="Channels at heatmap resolution.")
@click.option("--heatmap-size", type=click.Choice(["32", "64"]), default="32", show_default=True)
@click.option("--scheme", default="ibug68", show_default=True)
@click.option("--time-budget", type=Duration("s"), default=0.0,
              help="Stop after this long: 90s, 40m, 2h (a bare number is seconds; 0: no limit).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@_convert
@_device
@seed_option
@fail_on_gannotate_error
def train_cmd(sources, out, val, generated, recipe, real_share, init_from, preset, steps, batch_size, width, heatmap_size,
              scheme, time_budget, quiet, convert, device, seed):
    """Train on SOURCES (folders / list files of photos with .pts, or .h5 sets) and, optionally, --generated sets."""
    from gannotate.detector import CropAugmentConfig, DetectorConfig, PRESETS, load_training_faces
    from gannotate.detector.data import canvas_size
    from gannotate.detector.train import train_with_generated

    cfg = replace(PRESETS[preset], seed=seed, device=device, time_budget_s=time_budget, real_share=real_share,
                  init_from=str(init_from or ""))
    cfg = replace(cfg, steps=steps or cfg.steps, batch_size=batch_size or cfg.batch_size)
    net_cfg = DetectorConfig(width=width, heatmap_size=int(heatmap_size))
    canvas = canvas_size(net_cfg.input_size, cfg.margin)
    faces, failures = load_training_faces(sources, scheme, canvas, convert)
    _report_failures(failures)
    gen = load_training_faces(generated, scheme, canvas, convert)[0] if generated else None
    val_faces = load_training_faces([val], scheme, canvas, convert)[0] if val else None
    ckpt = train_with_generated(faces, gen, out, cfg, recipe, net_cfg, CropAugmentConfig(), val=val_faces,
                                meta={"sources": [str(s) for s in sources], "generated": [str(g) for g in generated]},
                                progress=None if quiet else ProgressLine())
    if not quiet:
        click.echo("", err=True)
    n_gen = f" + {len(gen)} generated ({recipe})" if gen is not None else ""
    click.echo(f"trained on {len(faces)} faces{n_gen} → {ckpt}")


class ProgressLine:
    """``step 250/1500 · 1.4 steps/s · ETA 15 min`` on one stderr line, rewritten in place."""

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None

    def __call__(self, step: int, steps: int, elapsed: float) -> None:
        if self.first is None:  # a resumed run starts counting here
            self.first = (step, elapsed)
            rate = step / max(elapsed, 1e-9)
        else:
            rate = (step - self.first[0]) / max(elapsed - self.first[1], 1e-9)
        eta = (steps - step) / max(rate, 1e-9)
        click.echo(f"\rstep {step}/{steps} · {rate:.2f} steps/s · ETA {_minutes(eta)}   ", nl=False, err=True)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


@detector.command("predict")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the predicted .pts.")
@_checkpoint
@_convert
@_device
@unused_seed_option
@fail_on_gannotate_error
def predict_cmd(source, out, checkpoint, convert, device, seed):
    """Predict landmarks for annotated faces in SOURCE, cropping on each face's landmark box; write OUT/<key>.pts."""
    from gannotate.detector import Detector, predict_folder

    res = predict_folder(source, out, Detector.load(checkpoint, device), convert)
    _report_failures(res.failures)
    click.echo(f"{len(res.written)} predictions written to {out}; {len(res.failures)} skipped")
    if res.failures:
        sys.exit(EXIT_FAILURES)


@detector.command("evaluate")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@_checkpoint
@_convert
@_device
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--ced", type=click.Path(path_type=Path), default=None, help="Write the CED curve PNG here.")
@unused_seed_option
@fail_on_gannotate_error
def evaluate_cmd(source, checkpoint, convert, device, as_json, ced, seed):
    """NME (by yaw bin), failure rates and AUC of the detector on annotated faces in SOURCE."""
    from gannotate.metrics import draw_ced, evaluate_detector, markdown_table

    rep = evaluate_detector(checkpoint, source, convert, device)
    _report_failures(rep.failures)
    if ced:
        draw_ced({"detector": rep.nme}, ced)
    click.echo(json.dumps(rep.summary, indent=2) if as_json else markdown_table({"detector": rep.summary}), nl=False)


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_checkpoint
@_device
@click.option("--overwrite", is_flag=True, help="Replace existing .pts files.")
@click.option("--score-threshold", type=click.FloatRange(0.0, 1.0), default=0.6, show_default=True, help="YuNet confidence.")
@click.option("--refine", type=click.IntRange(0, 5), default=1, show_default=True, help="Re-crop passes on the predicted landmarks.")
@unused_seed_option
@fail_on_gannotate_error
def annotate(folder, checkpoint, device, overwrite, score_threshold, refine, seed):
    """Find faces (YuNet) in the photos of FOLDER and write 68-point <stem>.pts next to each image."""
    from gannotate.annotate import Annotator, annotate_folder

    res = annotate_folder(folder, Annotator.create(checkpoint, device, score_threshold, refine), overwrite)
    _report_failures(res.not_found, "no face")
    _report_failures(res.failures)
    click.echo(f"{len(res.written)} annotated, {len(res.not_found)} without a face, "
               f"{len(res.failures)} unreadable, {len(res.skipped)} already annotated")
    if res.not_found or res.failures:
        sys.exit(EXIT_FAILURES)
