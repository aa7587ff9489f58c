"""``gannotate evaluate payoff``: does generated data make a detector better on your own photos?"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gannotate.cli.options import fail_on_gannotate_error, seed_option

__all__ = ["payoff_cmd"]


def _floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def _names(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _ints(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


def _named_paths(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for v in value:
        name, sep, path = v.partition("=")
        p = Path(path if sep else name)
        if not p.exists():
            raise click.BadParameter(f"{p}: no such file or folder")
        out[name if sep else _default_name(p)] = p
    return out


def _default_name(p: Path) -> str:
    """``outputs/warp45/dataset.h5`` → ``warp45``; ``faces/`` or ``set.h5`` → their stem."""
    return p.parent.name if p.name == "dataset.h5" else p.stem


@click.command("payoff")
@click.option("--real", type=click.Path(exists=True, path_type=Path), required=True,
              help="Annotated photos (folder, or list file of '<landmarks> <image>' lines; 68 points).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Image root of a --real list file [default: the list file's folder].")
@click.option("--generated", multiple=True, callback=_named_paths, metavar="[NAME=]H5",
              help="A generated set made from (some of) --real's faces; only samples of training photos are used. Repeatable.")
@click.option("--renderers", default="", callback=_names,
              help="Also generate with these renderers (e.g. profile,warp) from the training faces.")
@click.option("--ranges", default="45,60", show_default=True, callback=_floats,
              help="Yaw half-ranges (degrees) of the sets --renderers generates.")
@click.option("--gate/--no-gate", default=False, show_default=True,
              help="Generate as augment does by default (the nearer side, the quality gate, --turn mixed, --enclose); off: "
                   "every target from the photo's own side, nothing rejected, the shape model's turn.")
@click.option("--data-draws", type=click.IntRange(1), default=1, show_default=True,
              help="Draws of each set --renderers generates (augment seeds --seed, --seed+1, ...): detector seed k "
                   "trains on draw k mod N, so the spread over seeds holds the data's own draw.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Working folder: split, generated sets, runs, payoff.json/.md, CEDs. A rerun resumes.")
@click.option("--scenarios", default="frontal", show_default=True, callback=_names,
              help="frontal (train on faces below 20°), all, few100, few50 (faces drawn by photo).")
@click.option("--recipes", default="mixed", show_default=True, callback=_names,
              help="mixed (each batch --real-share real faces) and/or pretrain (generated first, then real).")
@click.option("--arms", default="", callback=_names,
              help="Only these arms besides real, e.g. 'profile±45,profile±45 pretrain' [default: every set × recipe].")
@click.option("--real-share", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.5, show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True, callback=_ints, help="Detector seeds, shared by every arm.")
@click.option("--steps", type=click.IntRange(1), default=1500, show_default=True,
              help="Steps per run (every arm the same; pretrain: per phase).")
@click.option("--turned-yaw", type=click.FloatRange(0.0, 90.0), default=28.0, show_default=True,
              help="Photos with a face at least this turned are test-only.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 0.9), default=0.15, show_default=True,
              help="Share of the other photos held out as a second test set.")
@click.option("--test", "tests", multiple=True, callback=_named_paths, metavar="NAME=FACES",
              help="A further test set (folder or list file). Repeatable.")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="Runs trained at once (one thread each).")
@click.option("--no-train", is_flag=True, help="Score the complete runs only (a partial experiment).")
@seed_option
@fail_on_gannotate_error
def payoff_cmd(real, root, generated, renderers, ranges, gate, data_draws, out, scenarios, recipes, arms, real_share,
               seeds, steps, turned_yaw, val_fraction, tests, jobs, no_train, seed):
    """Train the detector on your real photos with and without generated data; score it on turned faces.

    Photos are split by photo: every photo with a face turned at least --turned-yaw is test-only,
    so the test holds the poses the training lacks. Each arm (real only, and real + each generated
    set per recipe) trains --steps steps per seed; the table gives NME (ours and the 51-point
    box-normalised one) per |yaw| bin, mean ± std over seeds, and the change against real only with
    a paired bootstrap interval over test faces and a verdict where both agree.
    """
    from gannotate.metrics.payoff import payoff_markdown
    from gannotate.payoff.protocol import PayoffConfig, run_payoff

    if not generated and not renderers:
        raise click.UsageError("give --generated sets and/or --renderers to generate with")
    logging.getLogger("gannotate.payoff").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(message)s", level=logging.WARNING)
    cfg = PayoffConfig(real=real, root=root, out=out, scenarios=scenarios, renderers=renderers, ranges=ranges,
                       generated=generated, recipes=recipes, arms=arms, seeds=seeds, steps=steps, real_share=real_share,
                       turned_yaw=turned_yaw, val_fraction=val_fraction, split_seed=seed, gen_seed=seed,
                       data_draws=data_draws, gate=gate, tests=tests, jobs=jobs)
    doc = run_payoff(cfg, train_missing=not no_train)
    for test, by_scenario in doc["tests"].items():
        for scenario, summary in by_scenario.items():
            click.echo(payoff_markdown(summary, f"{scenario} · test {test}"))
    click.echo(f"written: {out / 'payoff.json'}, {out / 'payoff.md'}, {out / 'ced'}/")
