"""``gannotate preview DATASET.h5 --out sheet.png [--n 16] [--seed 0] [--worst N]``."""

from __future__ import annotations

from pathlib import Path

import click

from gannotate.cli.options import fail_on_gannotate_error, seed_option
from gannotate.preview import preview_dataset

__all__ = ["preview"]


@click.command("preview")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_png", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@click.option("--n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Samples to show.")
@click.option("--cell", type=click.IntRange(min=16), default=128, show_default=True, help="Cell size in pixels.")
@click.option("--ncols", type=click.IntRange(min=1), default=None, help="Columns (default: about square).")
@click.option("--worst", type=click.IntRange(min=1), default=None,
              help="Show the WORST samples of lowest quality instead (worst first; needs a dataset with quality fields).")
@seed_option
@fail_on_gannotate_error
def preview(dataset: Path, out_png: Path, n: int, cell: int, ncols: int | None, worst: int | None, seed: int) -> None:
    """Write a contact sheet of N random samples of DATASET (or its --worst N) with their landmarks drawn."""
    click.echo(str(preview_dataset(dataset, out_png, n=worst or n, seed=seed, ncols=ncols, cell=cell, worst=worst is not None)))
