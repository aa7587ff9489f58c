"""Shared click option types and decorators (ranges like ``-45:45``, durations like ``40m``,
``--device`` checking, ``--seed``, error reporting and exit codes).

Nothing here imports torch at module level: ``gannotate --help`` must stay fast.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

import click

from gannotate.errors import DatasetCorruptError, GannotateError, NoFacesError
from shape_model.errors import ShapeModelError

__all__ = [
    "RangeType",
    "Duration",
    "LazyChoice",
    "check_device",
    "seed_option",
    "unused_seed_option",
    "loss_weight_option",
    "fail_on_gannotate_error",
    "EXIT_FAILURES",
    "EXIT_USAGE",
    "EXIT_FATAL",
    "EXIT_CORRUPT",
]

# exit codes (the table users read: docs/reference.md)
EXIT_FAILURES = 1  # the run finished but some inputs failed (listed in the manifest)
EXIT_USAGE = 2  # click's code for a bad option value
EXIT_FATAL = 3  # nothing (more) could be done: bad model, unwritable output, ...
EXIT_CORRUPT = 4  # stored data fails its checksum (DatasetCorruptError)

_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


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


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices come from ``load()`` the first time they are needed.

    Why: choices such as the training presets live in modules that import torch; building the
    option at import time would make ``gannotate --help`` import torch (seconds).
    """

    def __init__(self, load: Callable[[], Sequence[str]], case_sensitive: bool = True):
        self._load = load
        self._choices: Sequence[str] | None = None
        self.case_sensitive = case_sensitive

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        if self._choices is None:
            self._choices = list(self._load())
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._choices = list(value)


class Duration(click.ParamType):
    """A time span such as ``90s``, ``40m`` / ``40min`` or ``1.5h``, converted to ``unit``.

    A bare number keeps the unit the option always had (``bare_unit``), so old command lines
    mean what they meant: ``detector train --time-budget 600`` is still 600 s and
    ``train run --time-budget 40`` still 40 min.

    Args:
        unit: what the command receives, ``"s"`` or ``"min"``.
        bare_unit: the unit of a number without suffix (default: ``unit``).

    Example:
        >>> Duration("min").convert("2h", None, None)
        120.0
    """

    name = "DURATION"

    def __init__(self, unit: str = "s", bare_unit: str | None = None):
        self.unit, self.bare_unit = unit, bare_unit or unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        m = _DURATION.match(str(value))
        suffix = (m.group(2).lower() if m else "") or self.bare_unit
        if m is None or suffix not in _UNIT_SECONDS:
            self.fail(f"{value!r} is not a duration like 90s, 40m or 2h "
                      f"(a bare number is in {self.bare_unit})", param, ctx)
        return float(m.group(1)) * _UNIT_SECONDS[suffix] / _UNIT_SECONDS[self.unit]


def check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for ``--device``: refuse (exit 2) a device this machine does not have.

    Why here: a CUDA device asked for on a CPU-only machine otherwise surfaces as a torch
    traceback deep inside model loading, or worse, as a silent fall-back. torch is imported
    only when a non-CPU device is named, so ``--help`` stays torch-free.
    """
    if value is None or value.strip().lower() in ("", "cpu"):
        return value
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError) as e:
        raise click.BadParameter(f"{value!r} is not a torch device ({e}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"{value!r}: CUDA is not available on this machine "
                                     f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise click.BadParameter(f"{value!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise click.BadParameter(f"{value!r}: MPS is not available on this machine; use --device cpu")
    return value


def seed_option(f: Callable) -> Callable:
    """``--seed`` of a command that draws at random: same seed, same output on CPU."""
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)


def unused_seed_option(f: Callable) -> Callable:
    """``--seed`` of a deterministic command: hidden from ``--help`` (offering it would suggest the
    output depends on it) but still accepted, so scripts that pass ``--seed`` to every command work."""
    return click.option("--seed", type=int, default=0, hidden=True,
                        help="Ignored: this command draws nothing at random.")(f)


class _LazyHelpOption(click.Option):
    """An option whose help text is built when help is shown (it may need modules that import torch)."""

    def __init__(self, *args: Any, help_text: Callable[[], str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._help_text = help_text

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = self._help_text()
        return super().get_help_record(ctx)


def _loss_weight_help() -> str:
    from gannotate.training.config import LossWeights

    return f"Override one loss weight (repeatable; names: {', '.join(LossWeights.names())}; 0 switches it off)."


def _collect_loss_weights(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> None:
    """Parse ``NAME=VALUE`` items into ``ctx.params["loss_weights"]`` (``{loss name: weight}``, merged over aliases)."""
    from gannotate.training.config import parse_loss_weights

    merged = ctx.params.setdefault("loss_weights", {})
    try:
        merged.update(parse_loss_weights(values))
    except GannotateError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def loss_weight_option(*hidden_aliases: str) -> Callable[[Callable], Callable]:
    """``--loss-weight NAME=VALUE`` (repeatable) → the command's ``loss_weights`` argument, ``{loss name: weight}``.

    Names come from :class:`gannotate.training.config.LossWeights`; a weight must be 0 or more.
    ``hidden_aliases`` are older spellings still accepted (not shown in help).
    """

    def deco(f: Callable) -> Callable:
        for alias in hidden_aliases:
            f = click.option(alias, "loss_weight_alias", multiple=True, hidden=True, expose_value=False,
                             callback=_collect_loss_weights)(f)
        return click.option("--loss-weight", multiple=True, metavar="NAME=VALUE", expose_value=False,
                            callback=_collect_loss_weights, cls=_LazyHelpOption, help_text=_loss_weight_help)(f)

    return deco


def _hdf5_failed_writes() -> int:
    """gannotate.io.hdf5's count of writes HDF5 refused, without importing h5py when unused."""
    mod = sys.modules.get("gannotate.io.hdf5")
    return 0 if mod is None else int(mod.failed_writes())


def _exit(message: str, code: int, failed_writes_before: int) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``.

    After HDF5 refused a write in this command (disk full), its ids for that file cannot be
    released and HDF5 can segfault in its own exit handler, turning ``code`` into 139; then the
    process leaves through ``os._exit`` once stdout and stderr are flushed (the committed samples
    are already on disk: nothing is lost by skipping the interpreter's clean-up).
    """
    click.echo(message, err=True)
    if _hdf5_failed_writes() > failed_writes_before:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def fail_on_gannotate_error(f: Callable) -> Callable:
    """Turn a GannotateError (or shape_model's ShapeModelError) into one line on stderr and exit
    code 3 (4 for a :class:`~gannotate.errors.DatasetCorruptError`, 1 for a
    :class:`~gannotate.errors.NoFacesError`), through ``os._exit`` when HDF5 refused a write on
    the way (see :func:`_exit`)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = _hdf5_failed_writes()
        try:
            return f(*args, **kwargs)
        except DatasetCorruptError as e:
            _exit(f"error: {e}", EXIT_CORRUPT, before)
        except NoFacesError as e:
            _exit(f"error: {e}", EXIT_FAILURES, before)
        except (GannotateError, ShapeModelError) as e:
            _exit(f"error: {e}", EXIT_FATAL, before)

    return wrapper
