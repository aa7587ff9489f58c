"""Renderers: put the face of a crop onto new landmarks, one file per renderer behind one base class.

``base`` holds :class:`Renderer` (every optional capability with its default), the batch check,
:class:`Geometry` + :func:`lookup` and the registry (options and help that every ``--renderer`` shows);
``warp`` (2D piecewise-affine), ``profile`` (3D face profiling, the 300W-LP recipe) and ``gan``
(trained generator or refiner) each register themselves here. Nothing imported here imports torch:
the GAN renderer loads the network code when it is built; ``resample`` (the differentiable torch
lookup) is imported explicitly by whoever needs it.
"""

from gannotate.render.base import (
    DEFAULT_RENDERER,
    GeometricRenderer,
    Geometry,
    Renderer,
    RendererOption,
    RendererSpec,
    RenderOutput,
    check_batch,
    cli_options,
    list_renderers,
    lookup,
    make_renderer,
    register_renderer,
    renderer_help,
    renderer_options,
    path_options,
    spec_from_cli,
    spec_identity,
    spec_taking,
)
from gannotate.render import base as _base
from gannotate.render.warp import WarpRenderer, build_mesh, warp_maps, warp_one
from gannotate.render import gan as _gan  # noqa: F401  (registers "gan")
from gannotate.render import profile as _profile  # noqa: F401  (registers "profile")

__all__ = [*_base.__all__, "WarpRenderer", "build_mesh", "warp_maps", "warp_one"]
