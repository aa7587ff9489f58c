"""``gannotate train pairs|refine|export-refiner``: the refiner's data, training and export (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gannotate.cli.options import Duration, LazyChoice, check_device, fail_on_gannotate_error, seed_option, unused_seed_option
from gannotate.cli.options import loss_weight_option
from gannotate.plan import DEFAULT_TURN, TURNS  # torch-free

__all__ = ["pairs", "refine", "export_refiner", "probe_refiner"]


#: what every refiner pairs file holds (gannotate.training.pairs writes them); checked before training starts
_PAIR_DATASETS = ("x", "y", "p", "v", "pts_x", "pts_y", "kind", "group")


def _check_pairs_file(path: Path) -> None:
    """Refuse, in one line, a file that is not refiner pairs (an augment dataset is the likely mix-up).

    Raises:
        DatasetError: naming the file and what it is instead.
    """
    import h5py

    from gannotate.errors import DatasetError
    from gannotate.io.filelock import short_reason

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in _PAIR_DATASETS if k not in f]
            augment = "n_samples" in f.attrs and "landmarks" in f
    except OSError as e:
        raise DatasetError(path, f"not a readable HDF5 pairs file ({short_reason(e)})") from None
    if augment:
        raise DatasetError(path, "this is an augment dataset, not refiner pairs; build pairs with "
                                 "`gannotate train pairs --shared DATA` and pass that file to --pairs")
    if missing:
        raise DatasetError(path, f"not a refiner pairs file (missing {', '.join(missing)}); build one with "
                                 "`gannotate train pairs`")


def _refine_presets() -> list[str]:
    from gannotate.training.config import REFINE_PRESETS

    return sorted(REFINE_PRESETS)


@click.command()
@click.option("--shared", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The shared data folder (AFW/Helen photos + 300-VW-style clips).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("outputs/refine/pairs_profile.h5"),
              show_default=True)
@click.option("--renderer", default="profile", show_default=True, help="Geometric base renderer (profile or warp).")
@click.option("--per-photo", type=click.IntRange(1), default=3, show_default=True, help="Render-and-back pairs per photo.")
@click.option("--pairs-per-clip", type=click.IntRange(0), default=60, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
              help="Photos held out (split by photo, as the detector recipe): never used for pairs.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="Processes rendering pairs.")
@click.option("--turn", type=click.Choice(list(TURNS)), default=DEFAULT_TURN, show_default=True,
              help="How the photos' targets turn the head: as augment's --turn, so the refiner learns on the "
                   "renders it will refine.")
@seed_option
@fail_on_gannotate_error
def pairs(shared, out, renderer, per_photo, pairs_per_clip, val_fraction, jobs, turn, seed):  # type: ignore[no-untyped-def]
    """Build the refiner's training pairs: render-and-back 20-60° away from each photo, and clip pairs."""
    from gannotate.detector.data import split_by_photo
    from gannotate.training.pairs import PairConfig, PairSet, build_pairs, load_clip_frames, load_photo_crops

    photos_dir = shared / "300w_afw_helen_spinkoo"
    train_faces, _ = split_by_photo(photos_dir / "image_for_pts.txt", photos_dir / "images", val_fraction, seed)
    cfg = PairConfig(renderer=renderer, per_photo=per_photo, pairs_per_clip=pairs_per_clip, turn=turn, seed=seed)
    photos = load_photo_crops(train_faces, cfg.size, cfg.margin)
    clips = load_clip_frames(shared / "videos_300vw_style", cfg.frames_per_clip) if pairs_per_clip else []
    path = build_pairs(out, photos, clips, cfg, n_jobs=jobs)
    attrs = PairSet.load(path).attrs
    click.echo(f"{attrs.get('n_written')} pairs ({attrs.get('n_render_back')} render-and-back, {attrs.get('n_clip')} clip; "
               f"{attrs.get('n_skipped')} refused by the renderer) -> {path}")


@click.command()
@click.option("--pairs", "pairs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs/refine/run"), show_default=True)
@click.option("--preset", type=LazyChoice(_refine_presets), default="refine", show_default=True)
@click.option("--max-steps", type=click.IntRange(1), default=None)
@click.option("--time-budget", type=Duration("min"), default=None, help="e.g. 90m, 2h (a bare number is minutes).")
@click.option("--resume", is_flag=True, help="Continue exactly from <run-dir>/checkpoint.pt.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from another run's checkpoint.pt (its generator, optimiser and step) or an exported refiner "
                   "such as gannotate/assets/generator_refine.pt (its weights); a fresh critic either way.")
@loss_weight_option("--weight")
@click.option("--device", default=None, callback=check_device, help="torch device (default: CUDA if available).")
@seed_option
@fail_on_gannotate_error
def refine(pairs_path, run_dir, preset, max_steps, time_budget, resume, init_from, loss_weights, device, seed):  # type: ignore[no-untyped-def]
    """Train the refiner (render + validity + heatmaps → refined face) with the paper's losses."""
    from dataclasses import replace

    from gannotate.training.config import REFINE_PRESETS
    from gannotate.training.refine import train_refiner

    _check_pairs_file(pairs_path)
    cfg = replace(REFINE_PRESETS[preset], seed=seed)
    cfg = replace(cfg, weights=cfg.weights.with_named(loss_weights))
    res = train_refiner(cfg, pairs_path, run_dir, max_steps=max_steps, time_budget_min=time_budget, resume=resume,
                        device=device, init_from=init_from)
    click.echo(json.dumps({"step": res.step, "stopped_by": res.stopped_by, "checkpoint": str(res.checkpoint),
                           "probe": res.probe}, indent=2))


@click.command("export-refiner")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--weights", type=click.Choice(["ema", "raw"]), default="ema", show_default=True)
@click.option("--fp32", is_flag=True, help="Keep float32 weights (default: float16, half the size).")
@unused_seed_option
@fail_on_gannotate_error
def export_refiner(checkpoint, out, weights, fp32, seed):  # type: ignore[no-untyped-def]
    """Write a refiner checkpoint's generator as a file for `augment --renderer gan --generator OUT`."""
    from gannotate.training.refine import export_refiner as export

    click.echo(export(checkpoint, out, half=not fp32, weights=weights))


@click.command("probe-refiner")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pairs", "pairs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The pairs file the run trained on (its held-out groups are probed).")
@click.option("--device", default="cpu", show_default=True, callback=check_device)
@unused_seed_option
@fail_on_gannotate_error
def probe_refiner(checkpoint, pairs_path, device, seed):  # type: ignore[no-untyped-def]
    """Held-out probe of a refiner run (G and its EMA): face-region L1 vs its base render and SFace identity, as JSON."""
    from gannotate.training.refine import heldout_probe

    _check_pairs_file(pairs_path)
    click.echo(json.dumps(heldout_probe(checkpoint, pairs_path, device), indent=2))
