"""Where each subcommand module is attached to the group (one line per command)."""

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
    """Attach every command of :data:`_COMMANDS` to ``group``."""
    for module, attr in _COMMANDS:
        group.add_command(getattr(importlib.import_module(f"gannotate.cli.{module}"), attr))
