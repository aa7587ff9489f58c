"""Shared click option types and decorators (ranges like ``-45:45``, ``--seed``, error reporting)."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from gannotate.errors import GannotateError
from shape_model.errors import ShapeModelError

__all__ = ["RangeType", "seed_option", "fail_on_gannotate_error", "EXIT_FAILURES", "EXIT_FATAL"]

EXIT_FAILURES = 1  # the run finished but some inputs failed (listed in the manifest)
EXIT_FATAL = 3  # nothing (more) could be done: bad model, unwritable output, ...


class RangeType(click.ParamType):
    """``A:B`` → ``(A, B)`` floats with A ≤ B; a single number ``A`` → ``(A, A)``."""

    name = "A:B"

    def __init__(self, low: float | None = None, high: float | None = None):
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        parts = text.split(":")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            self.fail(f"{text!r} is not a range like -45:45", param, ctx)
        if len(nums) == 1:
            nums = nums * 2
        if len(nums) != 2:
            self.fail(f"{text!r} is not a range like -45:45", param, ctx)
        a, b = nums
        if a > b:
            self.fail(f"{text!r}: the start must not exceed the end (did you mean {b:g}:{a:g}?)", param, ctx)
        for v in (a, b):
            if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
                self.fail(f"{text!r}: values must lie in [{self.low:g}, {self.high:g}]", param, ctx)
        return a, b


def seed_option(f: Callable) -> Callable:
    """``--seed``: every command takes one; same seed, same output on CPU."""
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)


def fail_on_gannotate_error(f: Callable) -> Callable:
    """Turn a GannotateError (or shape_model's ShapeModelError) into one line on stderr and exit code 3."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (GannotateError, ShapeModelError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_FATAL)

    return wrapper
