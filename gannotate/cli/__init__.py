"""The ``gannotate`` command: a click group whose subcommands only parse, call the library and print.

Each command group lives in its own module here and holds no logic the library lacks.
Exit codes (0–4, and 130 for Ctrl-C) are listed in docs/reference.md; ``gannotate.cli.options`` maps errors to them.
Subcommand modules import torch only
inside their commands, so ``gannotate --help`` stays fast (tests/test_cli_options.py checks it).
"""

from __future__ import annotations

import logging
from typing import Any

import click

from gannotate import __version__
from gannotate.cli.commands import register_all

__all__ = ["main", "EXIT_INTERRUPTED"]

#: the shell's code for a command stopped by SIGINT (128 + 2); click's own Abort would exit 1, the
#: code for "some inputs failed"
EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """The command group, with Ctrl-C leaving as 130 and one line instead of click's "Aborted!" (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted: what was committed is kept; run the same command again to resume", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gannotate")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Grow face-alignment training sets: shape-model targets rendered with their landmarks as ground truth."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


register_all(main)
