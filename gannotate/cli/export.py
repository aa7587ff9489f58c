"""``gannotate export DATASET.h5 --format pts|ljson|hrnet-csv|coco --out DIR [--val-fraction F]`` (split: hrnet-csv, coco)."""

from __future__ import annotations

from pathlib import Path

import click

from gannotate.cli.options import fail_on_gannotate_error, unused_seed_option
from gannotate.io.exporters import export as export_dataset
from gannotate.io.exporters import list_exporters

__all__ = ["export"]


@click.command("export")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list_exporters()), required=True,
              help="Output format: 300W .pts folder, menpo LJSON v3, HRNet 300W csv, or COCO keypoints JSON.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder. Built beside it and moved into place when complete; an existing folder is "
                   "replaced when it is empty or an earlier export, and refused otherwise.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="hrnet-csv and coco: put this share of the source faces (all their samples) in the "
                   "validation file (face_landmarks_valid.csv / annotations_valid.json) and the rest in the "
                   "training file (face_landmarks_train.csv / annotations_train.json); deterministic.")
@unused_seed_option
@fail_on_gannotate_error
def export(dataset: Path, fmt: str, out_dir: Path, val_fraction: float | None, seed: int) -> None:
    """Export the samples of DATASET (an HDF5 written by augment) to another format.

    Nothing partial is ever left at --out: the export is built in a hidden folder beside it and
    moved into place only when complete. An existing --out is replaced whole when it is empty or an
    earlier export (it holds .gannotate-export.json); any other existing path is refused (exit 3).
    Exit code 4 when an image or a sample's ground truth (landmarks, params, pose, indices) no longer
    matches its stored checksum (the file is damaged).
    """
    del seed  # exports are deterministic; the hidden --seed keeps scripts that pass it working
    if val_fraction is not None and fmt not in ("hrnet-csv", "coco"):
        raise click.UsageError(f"--val-fraction applies to --format hrnet-csv and coco, not {fmt}")
    result = export_dataset(dataset, fmt, out_dir, val_fraction=val_fraction)
    click.echo(str(result))
