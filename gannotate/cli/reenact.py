"""``gannotate reenact``: drive one annotated face with a 300-VW-layout clip's landmarks; parse, call, print."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from gannotate.cli.options import EXIT_FAILURES, fail_on_gannotate_error, unused_seed_option
from gannotate.cli.renderer_options import renderer_options

__all__ = ["reenact"]


@click.command("reenact")
@click.option("--face", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Face image with a same-stem .pts (or .ljson), or the landmark file itself.")
@click.option("--driver", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Clip folder in the 300-VW layout: vid.mp4 + annot/000001.pts ...")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output video (.mp4); landmarks go to <its folder>/frames/NNNNNN.pts, the report to <video>.json.")
@renderer_options(default="warp")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True,
              help="relative: face's expression + the driver's change from its first frame; absolute: the driver's.")
@click.option("--size", type=click.IntRange(16), default=256, show_default=True, help="Output frame side in pixels.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=None, help="Frame rate [default: the driver's].")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True, help="Frames per renderer call.")
@unused_seed_option
@fail_on_gannotate_error
def reenact(face, driver, out, renderer, mode, size, fps, batch_size, seed):  # type: ignore[no-untyped-def]
    """Reenact FACE with DRIVER's pose and expression through the shape model; write a video and per-frame .pts.

    Exit code 1 when driver frames were skipped (missing or unreadable .pts; each is named on stderr).
    """
    from gannotate.reenact import ReenactConfig, run_reenact
    spec = renderer.spec()
    cfg = ReenactConfig(face=face, driver=driver, out=out, renderer=spec, mode=mode, size=size, fps=fps,
                        batch_size=batch_size, command=shlex.join(["gannotate"] + sys.argv[1:]))
    res = run_reenact(cfg)
    for number, reason in res.skipped:
        click.echo(f"skipped: driver frame {number}: {reason}", err=True)
    click.echo(res.summary())
    if res.skipped:
        sys.exit(EXIT_FAILURES)
