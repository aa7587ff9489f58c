"""Generator checkpoints: our own format, and the original GANnotation release (quarantined here).

Nothing loaded here can execute code: every file goes through ``torch.load(..., weights_only=True)``,
which only rebuilds tensors and plain containers; a pickle carrying anything else (for example an
object whose ``__reduce__`` calls ``os.system``) is refused with :class:`CheckpointError` before any
of it runs.

Our format (``format_version`` 1) is a plain dict::

    {"format_version": 1, "kind": "gannotate.generator",
     "config": {GeneratorConfig fields}, "meta_json": "<JSON object>", "state_dict": {name: tensor}}

``meta`` is a :class:`gannotate.generator_meta.GeneratorMeta` (scheme, image size, heatmap mode and σ,
crop mode and relative margin, value ranges, kind ``paper``/``refine`` and the base renderer, and
``info`` on how it was made), stored as JSON text so that it round-trips exactly.
"""

from __future__ import annotations

import json
import logging
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from gannotate.errors import CheckpointError, SchemeError
from gannotate.io.atomic import atomic_path
from gannotate.heatmaps import DEFAULT_SIGMA, LEGACY_SIGMA
from gannotate.landmarks import IBUG66, get_scheme, scheme_for
from gannotate.models.generator import Generator, GeneratorConfig
from gannotate.generator_meta import GeneratorMeta

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_META",
    "safe_load",
    "unwrap_state_dict",
    "load_state_strict",
    "save_generator",
    "is_generator_file",
    "load_generator",
    "load_original_gannotation",
    "original_meta",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_KIND = "gannotate.generator"
REQUIRED_META = ("scheme", "image_size", "heatmap_mode", "heatmap_sigma", "crop_mode", "value_range")


def _check_zip_crc(path: Path) -> None:
    """Refuse a torch zip checkpoint whose records fail their CRC32.

    Why: ``torch.load`` does not check the CRC32 that ``torch.save`` writes for every record, so
    flipped bytes inside a tensor load silently as wrong weights. Reading every record once
    (``ZipFile.testzip``) costs one pass over the file. Legacy (non-zip) files have no CRC.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(path, f"corrupt (damaged zip structure: {e})"[:300]) from None
    if bad is not None:
        raise CheckpointError(path, f"corrupt (CRC mismatch in {bad}); re-download or restore the file")


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with every failure as CheckpointError.

    Args:
        path: a file written by ``torch.save``.
        map_location: device for the tensors.

    Raises:
        CheckpointError: missing file, unreadable/corrupt file (including a record whose bytes do
            not match its CRC32), or a pickle that would need code (classes, functions,
            ``__reduce__`` payloads) to load — refused, never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    _check_zip_crc(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            path,
            "refused: the file holds pickled objects or code that a weights-only load does not allow "
            f"({first[:200]}); only tensors and plain containers are accepted",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError, struct.error) as e:
        raise CheckpointError(path, f"not a readable torch checkpoint: {type(e).__name__}: {e}"[:400]) from None


def unwrap_state_dict(obj: Any, path: str | Path, what: str = "") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded file: bare or under ``'state_dict'``, ``module.`` prefixes stripped.

    Args:
        obj: what :func:`safe_load` returned.
        path: the file (for the error message).
        what: the network, for the error message (e.g. ``"VGG19"``).

    Raises:
        CheckpointError: no dict of tensors, bare or under ``'state_dict'``.
    """
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        name = f"{what} " if what else ""
        raise CheckpointError(path, f"expected a {name}state dict of tensors (bare or under 'state_dict')")
    # DataParallel / DDP save their wrapped module's keys as ``module.<key>``
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _scheme_name(n_points: int) -> str:
    """The registered scheme with K points, or ``"custom<K>"`` for toy configurations."""
    try:
        return scheme_for(n_points).name
    except SchemeError:
        return f"custom{n_points}"


def _default_meta(cfg: GeneratorConfig) -> dict:
    return {"scheme": _scheme_name(cfg.n_points), "image_size": cfg.image_size, "heatmap_sigma": DEFAULT_SIGMA}


def save_generator(
    path: str | Path, generator: Generator, meta: GeneratorMeta | Mapping[str, Any] | None = None
) -> Path:
    """Write a generator and its metadata atomically in our format.

    Args:
        path: output file (``.pt``); its folder is created.
        generator: the network (its ``cfg`` is stored; weights are saved on CPU).
        meta: a :class:`GeneratorMeta`, or a mapping of its fields (keys that are not fields go
            into ``info``); missing fields get the paper defaults (scheme from K, exact heatmaps
            with σ = DEFAULT_SIGMA, paper crop, [-1, 1]).

    Returns:
        ``path``.

    Raises:
        CheckpointError: when ``meta`` is invalid or not JSON-able.
    """
    path = Path(path)
    if isinstance(meta, GeneratorMeta):
        typed = meta
    else:
        full = _default_meta(generator.cfg)
        full.update(dict(meta or {}))
        try:
            typed = GeneratorMeta.from_dict(full)
        except (TypeError, ValueError) as e:
            raise CheckpointError(path, f"invalid generator metadata: {e}") from None
    if typed.image_size != generator.cfg.image_size:
        typed = GeneratorMeta.from_dict({**typed.to_dict(), "image_size": generator.cfg.image_size})
    try:
        meta_json = json.dumps(typed.to_dict(), sort_keys=True)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"metadata is not JSON-serialisable: {e}") from None
    payload = {
        "format_version": FORMAT_VERSION,
        "kind": _KIND,
        "config": generator.cfg.to_dict(),
        "meta_json": meta_json,
        "state_dict": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_state_strict(path: str | Path, model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state, strict=True)`` that names missing, unexpected and mis-shaped keys.

    Raises:
        CheckpointError: naming ``path`` and up to 10 keys of each kind.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' …' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:10]}{' …' if len(unexpected) > 10 else ''}")
        if shapes:
            parts.append(f"shape mismatches {shapes[:5]}")
        what = f"{type(model).__name__}({getattr(model, 'cfg', '')})"
        raise CheckpointError(path, f"does not match the {what}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def is_generator_file(path: str | Path) -> bool:
    """True for a file :func:`save_generator` wrote (by its kind; :func:`load_generator` checks the rest).

    Raises:
        CheckpointError: as :func:`safe_load`.
    """
    obj = safe_load(path)
    return isinstance(obj, dict) and obj.get("kind") == _KIND


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, GeneratorMeta]:
    """Load a generator saved by :func:`save_generator`, in eval mode on ``device``.

    Returns:
        ``(generator, meta)``.

    Raises:
        CheckpointError: missing/unsafe/corrupt file, another format or version, or keys that do not
            match the stored config (named in the message).
    """
    path = Path(path)
    obj = safe_load(path, map_location="cpu")
    if not isinstance(obj, dict) or obj.get("kind") != _KIND:
        hint = " (for the original GANnotation release use load_original_gannotation)"
        raise CheckpointError(path, f"not a gannotate generator checkpoint{hint}")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"format_version {obj.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        cfg = GeneratorConfig(**obj["config"])
        raw = json.loads(obj["meta_json"])
        state = obj["state_dict"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"malformed checkpoint: {type(e).__name__}: {e}") from None
    lacking = [k for k in REQUIRED_META if k not in raw]
    if lacking:
        raise CheckpointError(path, f"metadata lacks {lacking}")
    try:
        meta = GeneratorMeta.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid generator metadata: {e}") from None
    _check_meta_matches(path, cfg, meta)
    generator = Generator(cfg)
    load_state_strict(path, generator, state)
    return generator.to(device).eval(), meta


def _check_meta_matches(path: Path, cfg: GeneratorConfig, meta: GeneratorMeta) -> None:
    """Refuse a file whose metadata contradicts its network (wrong scheme, size or kind)."""
    try:
        k = get_scheme(meta.scheme).n_points
    except SchemeError:
        k = int(meta.scheme[6:]) if meta.scheme.startswith("custom") and meta.scheme[6:].isdigit() else -1
    if k != cfg.n_points:
        raise CheckpointError(path, f"scheme {meta.scheme!r} has {k} points but the network takes {cfg.n_points} heatmaps")
    if meta.image_size != cfg.image_size or meta.image_size % 4:
        raise CheckpointError(path, f"image size {meta.image_size} in the metadata does not fit the network "
                                    f"(config {cfg.image_size}; must be equal and divisible by 4)")
    if (meta.kind == "refine") != (cfg.extra_channels > 0):
        raise CheckpointError(path, f"kind {meta.kind!r} does not match a network with {cfg.extra_channels} extra channel(s)")


def original_meta() -> GeneratorMeta:
    """Input rules of the original release (reference/anchors.md §1.1): 66 points, legacy maps and crop.

    The release's demo feeds images in [0, 1] (``/255``, no normalisation) and maps its output with
    ``0.5·(G + 1)``, i.e. reads the output as [-1, 1]; both are recorded so a renderer can follow.
    """
    return GeneratorMeta(
        scheme=IBUG66.name, image_size=128, heatmap_mode="legacy", heatmap_sigma=LEGACY_SIGMA, crop_mode="legacy",
        value_range=(0.0, 1.0), output_range=(-1.0, 1.0),
        info={"source": "ESanchezLozano/GANnotation release (CC BY-NC 4.0)"},
    )


def load_original_gannotation(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Generator, GeneratorMeta]:
    """Load the original GANnotation release checkpoint into the K = 66 generator, strictly.

    Accepts ``{'state_dict': {...}}`` (the release) or a bare state dict (its training code), with or
    without the ``module.`` prefix that ``DataParallel`` adds.

    Returns:
        ``(generator, original_meta())`` with the generator in eval mode on ``device``.

    Raises:
        CheckpointError: missing/unsafe file, no state dict inside, or keys that do not match the
            release layout (missing and unexpected keys are named).
    """
    path = Path(path)
    obj = safe_load(path, map_location="cpu")
    state = unwrap_state_dict(obj, path)
    generator = Generator(GeneratorConfig(n_points=IBUG66.n_points, width=64, n_res=6, image_size=128))
    load_state_strict(path, generator, state)
    log.info("loaded the original GANnotation generator from %s", path)
    return generator.to(device).eval(), original_meta()
