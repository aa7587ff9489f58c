"""``gannotate evaluate nme|fidelity``: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gannotate.cli.options import EXIT_FAILURES, check_device, fail_on_gannotate_error, seed_option

__all__ = ["evaluate"]


@click.group()
def evaluate() -> None:
    """Score landmarks: NME by yaw bin, failure rates, AUC, CED; fidelity of generated sets."""


@evaluate.command("nme")
@click.option("--predictions", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--truth", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--convert", is_flag=True, help="Compare on 66 points when one side has 68 and the other 66.")
@click.option("--ced", type=click.Path(path_type=Path), default=None, help="Write the CED curve PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@seed_option
@fail_on_gannotate_error
def nme_cmd(predictions, truth, convert, ced, as_json, seed):
    """Match .pts files of PREDICTIONS and TRUTH by relative stem and report NME statistics."""
    from gannotate.evaluate import draw_ced, evaluate_folders, markdown_table

    rep = evaluate_folders(predictions, truth, convert)
    for f in rep.failures:
        click.echo(f"skipped: {f.path}: {f.reason}", err=True)
    if ced:
        draw_ced({"predictions": rep.nme}, ced)
    click.echo(json.dumps(rep.summary, indent=2) if as_json else markdown_table({"predictions": rep.summary}), nl=False)
    if rep.failures:
        sys.exit(EXIT_FAILURES)


@evaluate.command("fidelity")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--detector", "checkpoint", type=click.Path(path_type=Path), default=None,
              help="Detector checkpoint [default: the shipped one].")
@click.option("--real", type=click.Path(exists=True, path_type=Path), default=None,
              help="Real annotated faces for the reference NME [default: the value stored in the checkpoint].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score only the first N samples.")
@click.option("--convert", is_flag=True, help="Allow 68 → 66 conversion when schemes differ.")
@click.option("--device", default="cpu", show_default=True, callback=check_device, help="Torch device.")
@click.option("--json", "as_json", is_flag=True)
@seed_option
@fail_on_gannotate_error
def fidelity_cmd(dataset, checkpoint, real, limit, convert, device, as_json, seed):
    """NME of the detector on DATASET's generated images vs its stored targets, beside its NME on real faces."""
    from gannotate.evaluate import fidelity

    rep = fidelity(dataset, checkpoint, real, convert, limit, device)
    if as_json:
        click.echo(json.dumps({"generated": rep.generated, "real_nme": rep.real_nme, "ratio": rep.ratio,
                               "real_source": rep.real_source}, indent=2))
        return
    click.echo(f"generated ({rep.generated['n_faces']} faces): NME {rep.generated['nme']:.2f}% "
               f"(FR@10 {rep.generated['failure_10']:.1f}%)")
    click.echo(f"real ({rep.real_source}): NME {rep.real_nme:.2f}%")
    click.echo(f"ratio generated / real: {rep.ratio:.2f}")
