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
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (config.json, stats.jsonl, checkpoint.pt).")
@click.option("--val", type=click.Path(exists=True, path_type=Path), default=None, help="Validation folder / list file.")
@click.option("--preset", type=click.Choice(["default", "smoke"]), default="default", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Override the preset's steps.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--width", type=click.IntRange(8), default=32, show_default=True, help="Channels at heatmap resolution.")
@click.option("--heatmap-size", type=click.Choice(["32", "64"]), default="32", show_default=True)
@click.option("--scheme", default="ibug68", show_default=True)
@click.option("--time-budget", type=Duration("s"), default=0.0,
              help="Stop after this long: 90s, 40m, 2h (a bare number is seconds; 0: no limit).")
@_convert
@_device
@seed_option
@fail_on_gannotate_error
def train_cmd(sources, out, val, preset, steps, batch_size, width, heatmap_size, scheme, time_budget, convert, device, seed):
    """Train on SOURCES: any mix of augment .h5 datasets and folders / list files of photos with .pts."""
    from gannotate.detector import AugmentConfig, DetectorConfig, PRESETS, load_training_faces, train
    from gannotate.detector.data import canvas_size

    cfg = replace(PRESETS[preset], seed=seed, device=device, time_budget_s=time_budget)
    cfg = replace(cfg, steps=steps or cfg.steps, batch_size=batch_size or cfg.batch_size)
    net_cfg = DetectorConfig(width=width, heatmap_size=int(heatmap_size))
    canvas = canvas_size(net_cfg.input_size, cfg.margin)
    faces, failures = load_training_faces(sources, scheme, canvas, convert)
    _report_failures(failures)
    val_faces = load_training_faces([val], scheme, canvas, convert)[0] if val else None
    ckpt = train(faces, out, cfg, net_cfg, AugmentConfig(), val=val_faces, meta={"sources": [str(s) for s in sources]})
    click.echo(f"trained on {len(faces)} faces → {ckpt}")


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
    from gannotate.evaluate import draw_ced, evaluate_detector, markdown_table

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
