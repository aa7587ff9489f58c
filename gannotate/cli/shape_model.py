"""``gannotate shape-model``: build, sample and inspect the point distribution model."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from gannotate.cli.options import RangeType, fail_on_gannotate_error, seed_option, unused_seed_option
from shape_model.build import DEFAULT_MODEL_PATH, load_model, model_sha256

__all__ = ["shape_model"]

#: ``shape-model build`` writes here unless told otherwise (never over the shipped model by default)
_BUILD_OUT = Path("outputs") / "shape_model" / DEFAULT_MODEL_PATH.name

_model_option = click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model .npz (default: the shipped shape_model/data/pdm_ibug68.npz).",
)


@click.group(name="shape-model")
def shape_model() -> None:
    """Build, sample and inspect the shape model (PDM with yaw/pitch in degrees)."""


@shape_model.command("build")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="../shared/data",
    show_default=True,
    help="Folder with 300w_afw_helen_spinkoo/, aflw2000_3d_3ddfa/ (see docs/shape_model.md).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=str(_BUILD_OUT), show_default=True,
    help="Where the model goes; the shipped model is replaced only with --force.",
)
@click.option("--force", is_flag=True, help="Allow --out to be the shipped shape_model/data/pdm_ibug68.npz.")
@click.option("--degree", type=click.IntRange(1, 3), default=3, show_default=True, help="Yaw/pitch basis degree.")
@click.option(
    "--variance", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.95, show_default=True,
    help="Residual variance the expression modes must explain.",
)
@click.option("--derive-face3d", is_flag=True, help="Also re-derive shape_model/data/mean_face_3d_68.txt first.")
@unused_seed_option
@fail_on_gannotate_error
def build(data: Path, out: Path, force: bool, degree: int, variance: float, derive_face3d: bool, seed: int) -> None:
    """Build a model from the shared 68-point shapes (deterministic).

    Writes outputs/shape_model/pdm_ibug68.npz by default; use it with `--model`. Replacing the
    shipped model (what every command uses by default) takes `--out shape_model/data/pdm_ibug68.npz --force`.
    """
    from shape_model.shipped import build_default_model, derive_mean_face_3d

    if _is_shipped_model(out) and not force:
        raise click.UsageError(f"--out {out} is the shipped shape model, which every command uses by default; "
                               "add --force to replace it, or give another --out")
    if derive_face3d:
        _, k, mae = derive_mean_face_3d(data)
        click.echo(f"generic 3D face: depth x{k:.2f}, AFLW2000 train-half yaw MAE {mae:.2f} deg")
    model = build_default_model(data, out, pose_degree=degree, variance=variance, command=" ".join(sys.argv))
    prov = model.provenance
    click.echo(
        f"wrote {out}: {model.n_expression} expression modes "
        f"({100 * prov['explained_variance']:.1f}% of the residual), "
        f"pose degree {model.pose_degree}, {prov['n_training_shapes']} training shapes (x2 mirrored)"
    )


def _is_shipped_model(path: Path) -> bool:
    """Does ``path`` name the shipped model file (through any relative path or link)?"""
    try:
        return Path(path).resolve() == DEFAULT_MODEL_PATH.resolve()
    except OSError:
        return False


@shape_model.command("sample")
@_model_option
@click.option("--yaw", type=RangeType(-90, 90), default="-45:45", show_default=True, help="Yaw range, degrees.")
@click.option("--pitch", type=RangeType(-90, 90), default="0:0", show_default=True, help="Pitch range, degrees.")
@click.option("--roll", type=RangeType(-180, 180), default="0:0", show_default=True, help="In-plane rotation range.")
@click.option("--expression", type=click.FloatRange(0.0), default=1.0, show_default=True, help="Expression scale (σ).")
@click.option("--n", "n", type=click.IntRange(1, 1024), default=16, show_default=True, help="Number of shapes.")
@click.option("--cell", type=click.IntRange(32, 1024), default=128, show_default=True, help="Cell size in pixels.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Sheet image (.png).")
@seed_option
@fail_on_gannotate_error
def sample(
    model_path: Path | None,
    yaw: tuple[float, float],
    pitch: tuple[float, float],
    roll: tuple[float, float],
    expression: float,
    n: int,
    cell: int,
    out: Path,
    seed: int,
) -> None:
    """Draw N random shapes (sorted by yaw) on a contact sheet."""
    from gannotate.io.images import write_image
    from gannotate.preview import contact_sheet

    model = load_model(model_path)
    params = model.sample(
        np.random.default_rng(seed), n, yaw_range=yaw, pitch_range=pitch, roll_range=roll, expression_scale=expression
    )
    params = params[np.argsort(params.yaw, kind="stable")]
    params.scale[:] = 0.18 * cell  # the model's mean face has unit RMS radius
    params.tx[:], params.ty[:] = (cell - 1) / 2.0, (cell - 1) / 2.0
    shapes = model.instances(params)
    canvas = np.full((cell, cell, 3), 255, dtype=np.uint8)
    labels = [f"y{y:+.0f} p{p:+.0f}" for y, p in zip(params.yaw, params.pitch)]
    sheet = contact_sheet([canvas] * n, list(shapes), cell=cell, labels=labels)
    write_image(out, sheet)
    click.echo(f"wrote {out}: {n} shapes, yaw {yaw[0]:g}:{yaw[1]:g}, pitch {pitch[0]:g}:{pitch[1]:g}, seed {seed}")


@shape_model.command("info")
@_model_option
@unused_seed_option
@fail_on_gannotate_error
def info(model_path: Path | None, seed: int) -> None:
    """Print the model's size, provenance and checksum."""
    path = DEFAULT_MODEL_PATH if model_path is None else model_path
    model = load_model(path)
    prov = model.provenance
    click.echo(f"model: {path}")
    click.echo(f"sha256: {model_sha256(path)}")
    click.echo(f"points: {model.n_points}  expression modes: {model.n_expression}  params: {model.n_params}")
    click.echo(f"pose basis: polynomial degree {model.pose_degree} in yaw, pitch (degrees)")
    if "explained_variance" in prov:
        click.echo(f"explained residual variance: {100 * prov['explained_variance']:.1f}%")
    for key in ("counts", "held_out", "date", "command"):
        if key in prov:
            click.echo(f"{key}: {prov[key]}")
    std = ", ".join(f"{s:.3f}" for s in model.expression_std[:5])
    click.echo(f"expression std (first 5, model units): {std}")
