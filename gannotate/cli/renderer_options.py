"""``--renderer`` and its options for every command that renders, built from the renderer registry.

Why from the registry: each renderer declares its options (:class:`~gannotate.render.RendererOption`) and a
help line where it registers, so a new renderer or option is one edit in the renderer's file and reaches
``augment``, ``frontalise``, ``reenact`` and ``evaluate progressive`` alike, with the same flags and help.

Example::

    @click.command()
    @renderer_options(default="warp")
    @click.option("--batch-size", type=int, default=16)
    def cmd(renderer: RendererChoice, batch_size: int) -> None:
        spec = renderer.spec(batch_size=batch_size)  # --generator etc. as given; batch_size where it is taken
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import click

from gannotate.cli.options import check_device

__all__ = ["RendererChoice", "renderer_options", "renderer_choice_help", "add_renderer_arguments"]


@dataclass(frozen=True)
class RendererChoice:
    """The ``--renderer`` a user chose and the renderer options given on the command line (None = not given).

    Attributes:
        name: a registered renderer; values: option name → value; devices: the options that name a torch device.
    """

    name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()

    def spec(self, **shared: Any) -> Any:
        """The :class:`~gannotate.render.RendererSpec`: the options given (one the renderer does not take is an
        error), plus those ``shared`` values of the command (e.g. ``batch_size``) that the renderer takes."""
        from gannotate.render import renderer_options, spec_from_cli

        takes = renderer_options(self.name)
        return spec_from_cli(self.name, **self.values, **{k: v for k, v in shared.items() if k in takes and k not in self.values})

    def check_devices(self, ctx: click.Context) -> None:
        """Refuse (exit 2) a device option this machine lacks, for commands that check it late (augment: Ray)."""
        for name in self.devices:
            check_device(ctx, None, self.values.get(name))  # type: ignore[arg-type]


def renderer_choice_help() -> str:
    """``warp: <help>; profile: <help>; ...`` from each registered renderer's help line."""
    from gannotate.render import list_renderers, renderer_help

    return "; ".join(f"{name}: {renderer_help(name)}" for name in list_renderers()) + "."


_ARG_TYPES: dict[str, Any] = {"path": Path, "int": int, "float": float}  # RendererOption.kind → argparse type


def _click_type(kind: str) -> Any:
    return click.Path(path_type=Path) if kind == "path" else _ARG_TYPES.get(kind, str)


def renderer_options(
    default: str | None = None, required: bool = False, check_devices: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding ``--renderer`` and one option per declared renderer option; the command receives one
    ``renderer`` argument, a :class:`RendererChoice`.

    Args:
        default: the ``--renderer`` default (None with ``required``).
        check_devices: check device options as they are parsed (False: the command calls
            :meth:`RendererChoice.check_devices` itself when it knows where the renderer runs).
    """
    from gannotate.render import cli_options, list_renderers

    declared = cli_options()
    devices = tuple(o.name for o in declared if o.kind == "device")

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {o.name: kwargs.pop(o.name) for o in declared}
            kwargs["renderer"] = RendererChoice(kwargs.pop("renderer"), values, devices)
            return f(*args, **kwargs)

        for opt in reversed(declared):
            callback = check_device if (opt.kind == "device" and check_devices) else None
            wrapper = click.option(opt.flag, opt.name, type=_click_type(opt.kind), default=None, callback=callback,
                                   help=opt.help)(wrapper)
        return click.option(
            "--renderer", type=click.Choice(list_renderers()), default=default, required=required,
            show_default=default is not None, help=renderer_choice_help(),
        )(wrapper)

    return deco


def add_renderer_arguments(parser: Any, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The same renderer options on an ``argparse`` parser (the recipes'); returns the option names added.

    ``exclude`` leaves out options the caller declares itself (a recipe's ``--device`` that also runs SFace).
    """
    from gannotate.render import cli_options

    added = []
    for opt in cli_options():
        if opt.name in exclude:
            continue
        parser.add_argument(opt.flag, dest=opt.name, type=_ARG_TYPES.get(opt.kind, str), default=None, help=opt.help)
        added.append(opt.name)
    return tuple(added)
