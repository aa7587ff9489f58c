"""Where each subcommand module is attached to the group (one line per module)."""

from __future__ import annotations

import importlib

import click

# module name under gannotate.cli → attribute holding a click command or group
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("export", "export"),
    ("preview", "preview"),
    ("shape_model", "shape_model"),
    ("augment", "augment"),
    ("augment", "merge"),
    ("augment", "frontalise"),
    ("train", "train"),
    ("detector", "detector"),
    ("evaluate", "evaluate"),
    ("detector", "annotate"),
    ("train", "export_generator"),
    ("reenact", "reenact"),
)


def register_all(group: click.Group) -> None:
    """Attach every command whose module exists (modules land issue by issue)."""
    for module, attr in _COMMANDS:
        try:
            mod = importlib.import_module(f"gannotate.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"gannotate.cli.{module}":
                continue
            raise
        cmd = getattr(mod, attr, None)
        if cmd is not None:
            group.add_command(cmd)
