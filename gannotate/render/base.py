"""The renderer seam: one base class, a batch check, a registry of named renderers and their specs.

A renderer puts the face of a crop onto new landmarks::

    render(images, source_points, target_points) -> images

with images uint8 ``(B, H, W, 3)`` RGB and points float32 ``(B, K, 2)`` ``(x, y)``, 0-based pixel
centres, in the frame of the given images.

*Geometric* renderers (warp, profile) are factored as geometry, then a texture lookup:
:meth:`GeometricRenderer.geometry` turns the landmarks into a :class:`Geometry` — per output
pixel, up to L source positions with blend weights, and a validity mask — and :func:`lookup`
samples the image there. Why: the GAN refiner needs the same geometry batched and
differentiable (``gannotate.render.resample`` runs the lookup with ``grid_sample``), and the
dataset can record the validity mask (1 = the pixel shows surface the source really saw).

Why a registry with frozen specs: ``AugmentConfig`` and ``FrontaliseConfig`` hold one
:class:`RendererSpec` (name + options) whatever the renderer, it lands in the manifest as plain
data, and a new renderer is one file plus one ``register_renderer`` call: its options and help
reach every command's ``--renderer`` from the registration.

Why a base class and not a protocol: callers use every capability (``prepare``, ``render_full``,
``dataset_attrs``, ``process_parallel``) unconditionally, so each has its default in
:class:`Renderer` and a renderer overrides only what it has; nobody probes for attributes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping

import cv2
import numpy as np

from gannotate.errors import GannotateError, ShapeError, check_points
from gannotate.registry import Registry

__all__ = [
    "Renderer",
    "GeometricRenderer",
    "Geometry",
    "RenderOutput",
    "RendererSpec",
    "check_batch",
    "lookup",
    "carried_coverage",
    "covered_valid",
    "render_full_covered",
    "register_renderer",
    "make_renderer",
    "list_renderers",
    "RendererOption",
    "renderer_options",
    "path_options",
    "renderer_help",
    "cli_options",
    "spec_from_cli",
    "spec_taking",
    "spec_identity",
    "DEFAULT_RENDERER",
]

#: The renderer a plain ``gannotate augment`` (and ``AugmentConfig()``) uses: the best this build ships,
#: by fidelity and identity on held-out faces at |yaw| ≥ 30° (README, "Which renderer").
DEFAULT_RENDERER = "profile"


@dataclass(frozen=True)
class Geometry:
    """Where each output pixel reads the source, for a batch.

    Attributes:
        grids: (B, L, H, W, 2) float32 source positions (x, y) in source pixels, 0-based centres.
        weights: (B, L, H, W) float32 blend weight of each layer; they sum to 1 where the layers
            cover the pixel (a pixel no layer covers keeps weight 0 and reads the fill).
        valid: (B, H, W) float32 in [0, 1]: 1 = the pixel shows surface the source saw directly,
            0 = invented (mirrored, filled, or background stretched over a hole).
        fill: (B, H, W, 3) float32 colour for the weight the layers leave over (1 − Σ weights), or
            None when the layers always sum to 1.
    """

    grids: np.ndarray
    weights: np.ndarray
    valid: np.ndarray
    fill: np.ndarray | None = None

    @property
    def n_layers(self) -> int:
        return int(self.grids.shape[1])


@dataclass(frozen=True)
class RenderOutput:
    """What a renderer returns besides pixels, for the dataset and the refiner.

    Attributes:
        images: (B, H, W, 3) uint8.
        valid: (B, H, W) uint8 validity mask, 255 = surface the source saw directly (see :class:`Geometry`),
            or None when the renderer knows no such thing (a plain generator: the dataset then has no masks).
        residual: (B,) float32 landmark error of the renderer's model before its final 2D correction,
            as NME (fraction of the outer-eye-corner distance), or None when it has no model (warp: exact).
    """

    images: np.ndarray
    valid: np.ndarray | None = None
    residual: np.ndarray | None = None


class Renderer(abc.ABC):
    """What ``augment``, ``frontalise``, ``reenact``, the metrics and training need from a renderer.

    Only :meth:`render` must be written; every other capability has a default here, so callers use
    it unconditionally and a renderer overrides just what it has. Renderers subclass this (one file,
    one :func:`register_renderer`; ``docs/renderers.md`` shows a whole one).

    Attributes:
        name: the registered name; it goes into each dataset's ``renderer`` attribute.
        process_parallel: True for a CPU renderer whose batches ``augment --workers N`` may spread over
            N processes (each builds its own from the spec); False keeps rendering in the calling process
            (a GPU model, or one that is cheap to call but costly to build).
        dataset_attrs: attributes every dataset rendered with it records (a model's licence, weights' hash);
            a resumed or merged run must match them.
    """

    name: str = ""
    process_parallel: ClassVar[bool] = False
    dataset_attrs: Mapping[str, str] = MappingProxyType({})

    @abc.abstractmethod
    def render(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> np.ndarray:
        """Render ``images`` (B, H, W, 3) uint8 with ``source_points`` (B, K, 2) onto ``target_points``.

        Returns:
            (B, H, W, 3) uint8, same H and W as the input.
        """

    def prepare(self, image: np.ndarray, points: np.ndarray) -> None:
        """Get ready for a source face (H, W, 3) with ``points`` (K, 2); raise ``GannotateError`` to refuse it.

        Why: a renderer with a per-face model (profile: a 3D fit) refuses an unusable face here, once,
        so the job records one named failure instead of failing batch after batch. Default: accept.
        """

    def render_full(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> RenderOutput:
        """Images with their validity masks and model residuals where the renderer has them (default: neither).

        ``coverage`` (B, H, W) float32 in [0, 1], or None (all 1): how much of each source pixel is the photo's own
        (:attr:`gannotate.geometry.Crop.coverage`: a crop past the photo's edge is filled there). A renderer with a
        validity mask counts what its output reads from the rest as unseen (:func:`covered_valid`).
        """
        return RenderOutput(self.render(images, source_points, target_points))


class GeometricRenderer(Renderer):
    """A renderer whose output is :func:`lookup` of its :meth:`geometry` (warp, profile).

    Training pairs and the refiner need the geometry itself (to resample differentiably), so they
    take only renderers of this kind; :meth:`render_full` must return a validity mask.
    """

    @abc.abstractmethod
    def geometry(self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray) -> Geometry:
        """The :class:`Geometry` for a batch (images given for renderers whose fill reads colours)."""

    @abc.abstractmethod
    def render_full(
        self, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray, coverage: np.ndarray | None = None
    ) -> RenderOutput:
        """Images with their validity masks (and model residuals where the renderer has a model); ``coverage`` as
        :meth:`Renderer.render_full`'s."""


def check_batch(images: np.ndarray, source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a render batch at the public boundary; return (images, source, target) as arrays.

    Raises:
        ShapeError: wrong image shape or dtype, or points that do not match the batch.
        LandmarkError-like ``GannotateError``: non-finite points (from ``check_points``).
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise ShapeError(f"images: expected (B, H, W, 3) uint8, got {imgs.shape} {imgs.dtype}")
    src = check_points(source, name="source_points")
    tgt = check_points(target, name="target_points")
    if src.ndim != 3 or src.shape != tgt.shape or src.shape[0] != imgs.shape[0]:
        raise ShapeError(
            f"source_points and target_points: expected (B, K, 2) with B={imgs.shape[0]}, "
            f"got {src.shape} and {tgt.shape}"
        )
    return imgs, src, tgt


def lookup(images: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Sample ``images`` (B, H, W, 3) uint8 at ``geometry``: Σ_l w_l · bilinear(image, grid_l) + rest · fill.

    Out-of-image positions replicate the border (``grid_sample``'s ``padding_mode="border"``), so the
    torch lookup in ``gannotate.render.resample`` gives the same values.
    """
    b, n_layers, h, w = geometry.weights.shape
    out = np.empty((b, h, w, 3), np.uint8)
    acc = np.empty((h, w, 3), np.float32)  # reused: a batch's samples are summed one after another
    term = np.empty((h, w, 3), np.float32)
    for i in range(b):
        acc.fill(0.0)
        for layer in range(n_layers):
            wgt = geometry.weights[i, layer]
            if not wgt.any():
                continue
            # one two-channel map: OpenCV reads it as it reads the separate x and y maps, without copying them apart
            sample = cv2.remap(images[i], geometry.grids[i, layer], None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            np.multiply(wgt[..., None], sample, out=term)
            acc += term
        if geometry.fill is not None:
            np.multiply((1.0 - geometry.weights[i].sum(0))[..., None], geometry.fill[i], out=term)
            acc += term
        acc += 0.5
        np.clip(acc, 0, 255, out=acc)
        out[i] = acc
    return out


def carried_coverage(geometry: Geometry, coverage: np.ndarray) -> np.ndarray:
    """(B, H, W) float32: how much of each output pixel shows the photo, not the fill past its edge.

    The source ``coverage`` (B, H, W) each pixel's layers read, weighted as :func:`lookup` blends them (sampled
    the same way, border replicated); exactly 1 for a sample whose coverage is all 1 and where no layer reads.
    """
    cov = np.asarray(coverage, np.float32)
    b, n_layers, h, w = geometry.weights.shape
    out = np.ones((b, h, w), np.float32)
    for i in range(b):  # only the rare samples whose crop reaches past their photo do any work
        if cov[i].min() >= 1.0:
            continue
        seen = np.zeros((h, w), np.float32)
        total = np.zeros((h, w), np.float32)
        for layer in range(n_layers):
            wgt = geometry.weights[i, layer]
            if not wgt.any():
                continue
            c = cv2.remap(cov[i], geometry.grids[i, layer], None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            seen += wgt * c
            total += wgt
        out[i] = np.where(total > 0, seen / np.maximum(total, 1e-6), 1.0)
    return out


def covered_valid(geometry: Geometry, coverage: np.ndarray | None) -> np.ndarray:
    """(B, H, W) ``geometry.valid`` with what the layers read from beyond the photo counted as unseen
    (scaled by :func:`carried_coverage`); unchanged without ``coverage``.

    Why: a fill past the photo's edge is invented, and a mask that called it seen would let a refiner learn it
    and ``invalid_share`` miss it.
    """
    if coverage is None:
        return geometry.valid
    return geometry.valid * carried_coverage(geometry, coverage)


def render_full_covered(
    renderer: Renderer, images: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
    coverage: np.ndarray | None,
) -> RenderOutput:
    """``renderer.render_full`` with the source crops' ``coverage`` (B, H, W), passed on only when given and only
    to a ``render_full`` that takes it: a renderer written before it existed renders every batch as before (its
    masks then do not know the fill past the photo)."""
    if coverage is not None and _takes_coverage(renderer):
        return renderer.render_full(images, source_points, target_points, coverage)
    return renderer.render_full(images, source_points, target_points)


def _takes_coverage(renderer: Renderer) -> bool:
    import inspect

    try:
        return "coverage" in inspect.signature(renderer.render_full).parameters
    except (TypeError, ValueError):  # a callable without a signature: call it the old way
        return False


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RendererSpec:
    """A renderer by name with its options, frozen so configs stay hashable and go into manifests.

    Attributes:
        name: a registered renderer ("warp", "profile", "gan", ...).
        options: ((key, value), ...) passed to the renderer's factory as keyword arguments; values
            are plain data (str, int, float, bool, None) so the spec round-trips through JSON.
    """

    name: str = DEFAULT_RENDERER
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, name: str, **options: Any) -> "RendererSpec":
        """``RendererSpec.of("gan", generator="G.pt")``; None-valued options are dropped (= defaults)."""
        opts = tuple(sorted((k, str(v) if hasattr(v, "__fspath__") else v) for k, v in options.items() if v is not None))
        return cls(name, opts)

    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


@dataclass(frozen=True)
class RendererOption:
    """One keyword option of a renderer's factory, declared once with its command-line face.

    Every command that takes ``--renderer`` offers each declared option as ``--<name with dashes>``
    (``gannotate.cli.options.renderer_options_decorator``), so a new option is one edit in its
    renderer's file.

    Attributes:
        name: the factory's keyword (``batch_size`` → ``--batch-size``).
        help: the option's help line.
        kind: how the command line reads it: "text", "path", "int", "float", or "device" (a torch device,
            checked against this machine).
        cli: False for an option the commands set from one of their own (``batch_size`` from the job's
            ``--batch-size``) or do not offer; it is still a valid spec option.
    """

    name: str
    help: str = ""
    kind: str = "text"
    cli: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Renderer]
    options: tuple[RendererOption, ...]
    help: str
    identity: Callable[..., Mapping[str, str]] | None

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)


_RENDERERS: Registry[Callable[..., Any]] = Registry("renderer")
_OPTION_KINDS = ("text", "path", "int", "float", "device")


def register_renderer(
    name: str,
    options: tuple[RendererOption | str, ...] = (),
    help: str = "",
    identity: Callable[..., Mapping[str, str]] | None = None,
) -> Callable[[Callable[..., Renderer]], Callable[..., Renderer]]:
    """Decorator registering a renderer factory under ``name``.

    Args:
        options: the keyword options the factory takes (a bare name is an option the command line
            does not offer).
        help: one line for ``--renderer``'s help ("warp: <help>; profile: <help>; ...").
        identity: ``identity(**options) -> attrs``: the ``dataset_attrs`` a spec fixes without building the
            renderer (gan: the weights' hash), so a backend that never builds one can still refuse to mix
            runs (see :func:`spec_identity`).
    """
    opts = tuple(o if isinstance(o, RendererOption) else RendererOption(o, cli=False) for o in options)
    bad = [o.name for o in opts if o.kind not in _OPTION_KINDS]
    if bad:
        raise ValueError(f"renderer {name!r}: option(s) {bad} have a kind outside {_OPTION_KINDS}")

    def deco(factory: Callable[..., Renderer]) -> Callable[..., Renderer]:
        _RENDERERS.register(name)(_Entry(factory, opts, help, identity))  # type: ignore[arg-type]
        return factory

    return deco


def list_renderers() -> list[str]:
    """Registered renderer names, in registration order (the CLI's ``--renderer`` choices)."""
    return _RENDERERS.names()


def renderer_options(name: str) -> tuple[str, ...]:
    """Option names the renderer ``name`` accepts."""
    return _RENDERERS.get(name).option_names  # type: ignore[attr-defined]


def path_options(name: str) -> tuple[str, ...]:
    """Option names of the renderer ``name`` that hold a file path (kind "path": a run elsewhere resolves them)."""
    return tuple(o.name for o in _RENDERERS.get(name).options if o.kind == "path")  # type: ignore[attr-defined]


def renderer_help(name: str) -> str:
    """The one-line help ``name`` was registered with."""
    return _RENDERERS.get(name).help  # type: ignore[attr-defined]


def cli_options() -> tuple[RendererOption, ...]:
    """Every option the command line offers for some renderer, once each, in registration order.

    Raises:
        ValueError: two renderers declare one option name with a different kind (one flag cannot read both).
    """
    seen: dict[str, RendererOption] = {}
    for name in list_renderers():
        for opt in _RENDERERS.get(name).options:  # type: ignore[attr-defined]
            if not opt.cli:
                continue
            first = seen.setdefault(opt.name, opt)
            if first.kind != opt.kind:
                raise ValueError(f"renderer option {opt.name!r} is declared as {first.kind} and as {opt.kind}")
    return tuple(seen.values())


def make_renderer(spec: RendererSpec | str) -> Renderer:
    """Build the renderer a spec names.

    Raises:
        GannotateError: unknown name, an option the renderer does not take, a renderer that cannot be set
            up (e.g. ``gan`` without a usable generator file), or a factory that returns no :class:`Renderer`.
    """
    spec = RendererSpec(spec) if isinstance(spec, str) else spec
    entry: _Entry = _RENDERERS.get(spec.name)  # type: ignore[assignment]
    bad = sorted(set(spec.kwargs()) - set(entry.option_names))
    if bad:
        raise GannotateError(f"renderer {spec.name!r} takes no option(s) {bad}; it takes {list(entry.option_names)}")
    renderer = entry.factory(**spec.kwargs())
    if not isinstance(renderer, Renderer):
        raise GannotateError(
            f"renderer {spec.name!r}: its factory returned a {type(renderer).__name__}, not a "
            "gannotate.render.Renderer; subclass Renderer (docs/renderers.md)"
        )
    return renderer


def spec_identity(spec: RendererSpec) -> dict[str, str]:
    """The ``dataset_attrs`` a spec fixes before its renderer is built (its registered ``identity``), else {}."""
    entry: _Entry = _RENDERERS.get(spec.name)  # type: ignore[assignment]
    return {} if entry.identity is None else dict(entry.identity(**spec.kwargs()))


def spec_from_cli(name: str, **given: Any) -> RendererSpec:
    """A spec from command-line values: keeps the options ``name`` takes, refuses set ones it does not.

    ``given`` holds every renderer option the CLI offers (None = not set by the user); an option that
    is set but meaningless for this renderer (``--generator`` with ``--renderer warp``) is an error,
    not silently dropped.

    Raises:
        GannotateError: unknown renderer, or an option set that it does not take.
    """
    takes = renderer_options(name)
    stray = sorted(k for k, v in given.items() if v is not None and k not in takes)
    if stray:
        flags = ", ".join("--" + k.replace("_", "-") for k in stray)
        raise GannotateError(f"{flags} has no effect with --renderer {name} (it takes {list(takes) or 'no options'})")
    return RendererSpec.of(name, **{k: v for k, v in given.items() if k in takes})


def spec_taking(name: str, **offered: Any) -> RendererSpec:
    """A spec with those ``offered`` values that ``name`` takes, the rest dropped.

    For values a caller offers every renderer alike (a job's batch size, a recipe's ``--device``), where
    one a renderer does not take is no mistake.
    """
    takes = renderer_options(name)
    return RendererSpec.of(name, **{k: v for k, v in offered.items() if k in takes})
