"""What a run writes besides its dataset: ``augment --format``'s choices, one registry.

``h5`` (``OUT/dataset.h5``) is always written: resume, merge and every reader rely on it. Every other
format is a per-sample writer the job feeds each committed batch to, files first (a committed row
always has its files), and clears when a run starts over (``--no-resume``). A new format is one
:class:`OutputFormat` with a writer class that has ``write(name, image, points)`` and
``clear_samples()``, plus one :func:`register_output_format` call.

Example:
    >>> list_output_formats()
    ['h5', 'pts']
    >>> parse_formats("pts")            # the required formats come first
    ('h5', 'pts')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from gannotate.errors import GannotateError
from gannotate.registry import Registry

__all__ = ["OutputFormat", "register_output_format", "list_output_formats", "get_output_format", "parse_formats",
           "formats_help"]


@dataclass(frozen=True)
class OutputFormat:
    """One ``--format`` choice.

    Attributes:
        name: the ``--format`` name.
        help: a few words for ``--help``.
        writer: ``writer(out) -> obj`` with ``write(name, image, points)`` and ``clear_samples()``;
            None for the dataset itself (the job's own :class:`~gannotate.io.hdf5.DatasetWriter`).
        folder: the folder it writes under ``OUT``, as the manifest's ``outputs.folder`` names it.
        required: written whatever ``--format`` says.
    """

    name: str
    help: str
    writer: Callable[[Path], Any] | None = None
    folder: str | None = None
    required: bool = False


_FORMATS: Registry[Any] = Registry("output format")


def register_output_format(fmt: OutputFormat) -> OutputFormat:
    """Add ``fmt`` under its name (a second one of a name is a ``ValueError``)."""
    return _FORMATS.register(fmt.name)(fmt)


def list_output_formats() -> list[str]:
    """The ``--format`` choices, in registration order."""
    return _FORMATS.names()


def get_output_format(name: str) -> OutputFormat:
    """The format registered as ``name`` (GannotateError listing the valid ones otherwise)."""
    return _FORMATS.get(name)


def parse_formats(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"h5,pts"`` (or names) → the formats to write, required ones first, each once.

    Raises:
        GannotateError: no format, or an unknown one (the message lists the choices).
    """
    items = tuple(v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip())
    if not items or set(items) - set(list_output_formats()):
        shown = value if isinstance(value, str) else ",".join(value)
        raise GannotateError(f"{shown!r}: choose a comma list of {', '.join(list_output_formats())}")
    required = tuple(n for n in list_output_formats() if get_output_format(n).required)
    return tuple(dict.fromkeys(required + items))


def formats_help() -> str:
    """``--format``'s help, from the registry: ``Outputs: h5 (always) and/or pts (a 300W folder).``"""
    return "Outputs: " + " and/or ".join(f"{n} ({get_output_format(n).help})" for n in list_output_formats()) + "."


def _folder_writer(out: Path) -> Any:
    from gannotate.io.folder_writer import FolderWriter

    return FolderWriter(out)


register_output_format(OutputFormat("h5", "always", required=True))
register_output_format(OutputFormat("pts", "a 300W folder", writer=_folder_writer, folder="images/"))
