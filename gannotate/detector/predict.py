"""Run a trained detector on photos: crop from a face box, predict, map back to the photo.

A :class:`Detector` crops each face exactly as training did (``data.crop_transform_for_box``: the
landmark box made square and grown by the checkpoint's ``margin``) and maps the predicted points
back with the crop's inverse. With a box that is only *near* the landmark box (from a face
detector), ``refine`` re-crops on the predicted landmarks' own box and predicts again, which brings
the crop back to what the network was trained on.

Convention: images uint8 (H, W, 3) RGB; boxes ``(x0, y0, x1, y1)`` in 0-based pixel coordinates;
points float32 (K, 2) ``(x, y)`` 0-based pixel centres, in the photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from gannotate.detector.data import crop_transform_for_box, crop_transform_for_points, iter_annotated, to_tensor
from gannotate.detector.exported import DEFAULT_CHECKPOINT
from gannotate.detector.model import LandmarkNet, inference_copy, load_checkpoint
from gannotate.errors import GannotateError, check_points
from gannotate.geometry import Affine, landmark_box
from gannotate.landmarks import Scheme, get_scheme

__all__ = ["DEFAULT_CHECKPOINT", "Detector", "PredictionResult", "predict_annotated", "predict_annotated_many", "predict_folder"]

log = logging.getLogger(__name__)


@dataclass
class Detector:
    """A loaded detector.

    Attributes:
        net: the network (eval mode; predictions run a folded copy of it, :func:`~gannotate.detector.model.inference_copy`, made on first use).
        meta: checkpoint metadata (scheme, margin, input_size, ...).
        device: where the network runs.
        batch_size: crops per forward pass.

    Example:
        >>> det = Detector.load()                          # the shipped checkpoint
        >>> pts = det.predict(image, box=(x0, y0, x1, y1))  # (68, 2) in the photo
    """

    net: LandmarkNet
    meta: dict
    device: torch.device
    batch_size: int = 64
    _fast: LandmarkNet | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", batch_size: int = 64) -> "Detector":
        """Load ``path`` (None → :data:`DEFAULT_CHECKPOINT`)."""
        net, meta = load_checkpoint(DEFAULT_CHECKPOINT if path is None else path, device)
        return cls(net, meta, torch.device(device), batch_size)

    @property
    def scheme(self) -> Scheme:
        return get_scheme(self.meta["scheme"])

    @property
    def input_size(self) -> int:
        return int(self.net.cfg.input_size)

    @property
    def margin(self) -> float:
        return float(self.meta["margin"])

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB crops → (B, K, 2) float32 points in crop pixels."""
        if self._fast is None:
            self._fast = inference_copy(self.net)
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = to_tensor(crops[start: start + self.batch_size], self.device).contiguous(memory_format=torch.channels_last)
            out.append(self._fast.predict_points(x).cpu().numpy())
        k = self.net.cfg.n_points
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, k, 2), np.float32)

    def predict_boxes(self, images: Sequence[np.ndarray], boxes: np.ndarray, refine: int = 0) -> np.ndarray:
        """Predict one face per (image, landmark box) pair.

        Args:
            images: B photos (H, W, 3) uint8 RGB (the same array may repeat for several faces).
            boxes: (B, 4) ``(x0, y0, x1, y1)`` landmark boxes (or detector boxes mapped to them).
            refine: extra passes that re-crop on the previous prediction's landmark box.

        Returns:
            (B, K, 2) float32 points in photo pixels.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(images) != len(boxes):
            raise GannotateError(f"got {len(images)} images but {len(boxes)} boxes")
        transforms = [crop_transform_for_box(b, self.input_size, self.margin) for b in boxes]
        points = self._predict_transforms(images, transforms)
        for _ in range(refine):
            transforms = [crop_transform_for_points(p, self.input_size, self.margin) for p in points]
            points = self._predict_transforms(images, transforms)
        return points

    def predict_from_points(self, images: Sequence[np.ndarray], points: np.ndarray) -> np.ndarray:
        """Predict with the landmark box of reference points (ground truth, or a previous estimate).

        ``points`` (B, K', 2) may be in any scheme: only their box is used.
        """
        pts = check_points(points)
        pts = pts[None] if pts.ndim == 2 else pts
        return self.predict_boxes(images, np.array([landmark_box(p) for p in pts]))

    def predict(self, image: np.ndarray, box: Sequence[float], refine: int = 0) -> np.ndarray:
        """One face: (H, W, 3) photo and its landmark box → (K, 2) points (wraps :meth:`predict_boxes`)."""
        return self.predict_boxes([image], np.asarray(box)[None], refine)[0]

    def _predict_transforms(self, images: Sequence[np.ndarray], transforms: list[Affine]) -> np.ndarray:
        crops = np.stack([t.warp(im, self.input_size) for im, t in zip(images, transforms)]) if transforms else \
            np.zeros((0, self.input_size, self.input_size, 3), np.uint8)
        pred = self.predict_crops(crops)
        return np.stack([t.inverse().apply(p) for t, p in zip(transforms, pred)]) if len(pred) else pred


@dataclass(frozen=True)
class PredictionResult:
    """What :func:`predict_folder` did: written .pts paths and the faces it skipped (``Failure``)."""

    written: list
    failures: list


def predict_folder(
    source: str | Path, out_dir: str | Path, detector: Detector, convert: bool = False
) -> PredictionResult:
    """Predict every annotated face of a folder / list file, cropping on its ground-truth landmark box.

    Writes ``out_dir/<key>.pts`` (1-based on disk), mirroring the input's relative layout, so
    ``gannotate evaluate nme --predictions out_dir --truth source`` matches them by relative stem.

    Raises:
        SchemeError: when the truth has another scheme than the detector and ``convert`` is off.
    """
    from gannotate.io.pts import write_pts

    failures: list = []
    written = [write_pts(Path(out_dir) / f"{key}.pts", pred)
               for key, pred, _ in predict_annotated(source, detector, failures, convert)]
    return PredictionResult(written, failures)


def predict_annotated(
    source: str | Path, detector: Detector, failures: list, convert: bool = False
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(key, prediction, truth)`` for each annotated face of a folder / list file, lazily.

    Each face is cropped on its ground-truth landmark box. Faces are read and predicted in chunks of
    ``detector.batch_size`` (one forward pass each), so at most one chunk of full-size photos is in
    memory at a time. Unreadable files are appended to ``failures`` (see ``iter_annotated``).

    Raises:
        SchemeError: when the truth has another scheme than the detector and ``convert`` is off.
    """
    for key, preds, truth in predict_annotated_many(source, {0: detector}, failures, convert):
        yield key, preds[0], truth


def predict_annotated_many(
    source: str | Path, detectors: Mapping[Any, Detector], failures: list, convert: bool = False
) -> Iterator[tuple[str, dict[Any, np.ndarray], np.ndarray]]:
    """:func:`predict_annotated` for several detectors of one scheme, each photo read and cropped once.

    Why: an experiment scores tens of checkpoints on one test set (the detector payoff: 30), and reading
    the photos dominated its scoring. Chunks are the first detector's ``batch_size``, so every detector
    sees the same batches as on its own.
    """
    if not detectors:
        return
    first = next(iter(detectors.values()))
    if any(d.scheme.name != first.scheme.name for d in detectors.values()):
        raise GannotateError("predict_annotated_many: the detectors use different landmark schemes")
    chunk: list = []

    def flush() -> Iterator[tuple[str, dict[Any, np.ndarray], np.ndarray]]:
        keys, images, truths = zip(*chunk)
        truths_arr = np.stack(truths)
        preds = {name: d.predict_from_points(images, truths_arr) for name, d in detectors.items()}
        chunk.clear()
        for i, key in enumerate(keys):
            yield key, {name: p[i] for name, p in preds.items()}, truths_arr[i]

    for face in iter_annotated(source, first.scheme, failures, convert):
        chunk.append(face)
        if len(chunk) >= max(1, first.batch_size):
            yield from flush()
    if chunk:
        yield from flush()
