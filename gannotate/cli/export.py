"""``gannotate export DATASET.h5 --format pts|ljson|hrnet-csv|coco --out DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from gannotate.cli.options import fail_on_gannotate_error, seed_option
from gannotate.io.exporters import export as export_dataset
from gannotate.io.exporters import list_exporters

__all__ = ["export"]


@click.command("export")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list_exporters()), required=True,
              help="Output format: 300W .pts folder, menpo LJSON v2, HRNet 300W csv, or COCO keypoints JSON.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (created).")
@seed_option
@fail_on_gannotate_error
def export(dataset: Path, fmt: str, out_dir: Path, seed: int) -> None:
    """Export the samples of DATASET (an HDF5 written by augment) to another format."""
    del seed  # exports are deterministic; accepted like every command
    result = export_dataset(dataset, fmt, out_dir)
    click.echo(str(result))
