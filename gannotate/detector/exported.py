"""The shipped detector as an ONNX graph run by OpenCV: the same predictions without loading torch.

Why: augment scores every render with the shipped detector (``reader_nme``) in each render worker, and
loading torch costs a worker about a second of CPU, a tenth of a whole run's (30 real photos × 40 targets,
``--workers 2``). OpenCV is loaded there already. Its forward pass is slower than torch's on one thread
(about 3.1 against 2.2 ms a face), which a run of 1,000 scored renders per worker repays.

The graph is exported from a checkpoint (:func:`export_onnx`; the shipped one by
``recipes/export_detector_onnx.py``) with every BatchNorm folded into its convolution, and a sidecar
``<name>.onnx.json`` records what it was made from: the sha256 of the checkpoint and of the graph, and the
crop the checkpoint predicts on (input and heatmap size, margin, scheme). :meth:`ExportedDetector.load`
checks both hashes, so a graph that no longer stands for its checkpoint (a new ``detector.pt``, a graph
edited or truncated) is refused by name rather than read as if it were the detector.

Convention: images uint8 (H, W, 3) RGB; points float32 (K, 2) ``(x, y)``, 0-based pixel centres.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from gannotate.detector.data import crop_transform_for_box
from gannotate.errors import CheckpointError, check_points
from gannotate.geometry import landmark_box

__all__ = ["DEFAULT_CHECKPOINT", "DEFAULT_EXPORT", "ExportedDetector", "export_onnx", "sidecar_path"]

_ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_CHECKPOINT = _ASSETS / "detector.pt"
"""The shipped detector (trained by recipes/train_detector.py on AFW + Helen train, real faces only)."""
DEFAULT_EXPORT = _ASSETS / "detector.onnx"
"""The shipped detector's graph (:data:`DEFAULT_CHECKPOINT` exported); its sidecar lies beside it."""
_SIDECAR_KEYS = ("checkpoint_sha256", "onnx_sha256", "input_size", "heatmap_size", "margin", "scheme", "n_points")


def sidecar_path(onnx_path: str | Path) -> Path:
    """``detector.onnx`` → ``detector.onnx.json`` (what the graph was exported from)."""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Export a detector checkpoint to ``out`` (ONNX, BatchNorm folded) and write its sidecar; both atomically.

    Uses torch's TorchScript-based exporter (a build step: nothing at run time needs torch for the graph).
    """
    import io
    import warnings

    import torch

    from gannotate.detector.model import inference_copy, load_checkpoint
    from gannotate.io.atomic import atomic_path

    checkpoint, out = Path(checkpoint), Path(out)
    net, meta = load_checkpoint(checkpoint)
    fast = inference_copy(net).to(memory_format=torch.contiguous_format).eval()
    cfg = net.cfg
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is the older of torch's two
        warnings.simplefilter("ignore")
        torch.onnx.export(fast, torch.zeros(1, 3, cfg.input_size, cfg.input_size), buf, dynamo=False,
                          opset_version=13, input_names=["crops"], output_names=["logits"],
                          dynamic_axes={"crops": {0: "batch"}, "logits": {0: "batch"}})
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    side = {
        "checkpoint_sha256": _sha256(checkpoint), "onnx_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
        "input_size": int(cfg.input_size), "heatmap_size": int(cfg.heatmap_size), "margin": float(meta["margin"]),
        "scheme": str(meta["scheme"]), "n_points": int(cfg.n_points),
    }
    with atomic_path(sidecar_path(out)) as tmp:
        Path(tmp).write_text(json.dumps(side, indent=1) + "\n")
    return out


def _soft_argmax(logits: np.ndarray) -> np.ndarray:
    """(B, K, h, w) logits → (B, K, 2) spatial-softmax expectation (x, y) in heatmap pixels (float32, as torch's)."""
    b, k, h, w = logits.shape
    z = logits.reshape(b, k, h * w).astype(np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    prob = (e / e.sum(axis=-1, keepdims=True)).reshape(b, k, h, w)
    x = (prob.sum(axis=2) * np.arange(w, dtype=np.float32)).sum(axis=-1)
    y = (prob.sum(axis=3) * np.arange(h, dtype=np.float32)).sum(axis=-1)
    return np.stack([x, y], axis=-1)


@dataclass
class ExportedDetector:
    """A detector graph read by ``cv2.dnn``; predicts as :class:`~gannotate.detector.predict.Detector` does.

    Attributes:
        net: the OpenCV network; info: the sidecar (crop geometry and provenance); batch_size: crops per pass.

    Example:
        >>> det = ExportedDetector.load()                       # the shipped detector, checked against detector.pt
        >>> pts = det.predict_from_points(images, targets)      # (B, 68, 2), cropped on each target's box
    """

    net: Any
    info: dict[str, Any]
    batch_size: int = 64
    _lock: Any = field(default_factory=threading.Lock, repr=False)  # one cv2.dnn.Net: one forward pass at a time

    @classmethod
    def load(cls, path: str | Path | None = None, checkpoint: str | Path | None = None) -> "ExportedDetector":
        """Read ``path`` (None: the shipped graph) after checking it against its sidecar and ``checkpoint``.

        Args:
            checkpoint: the detector it must stand for (None: the shipped ``detector.pt`` when ``path`` is the
                shipped graph, else no check of the checkpoint).

        Raises:
            CheckpointError: graph or sidecar missing or unreadable, the graph not the one the sidecar names,
                or exported from another checkpoint.
        """
        onnx_path = DEFAULT_EXPORT if path is None else Path(path)
        if checkpoint is None and path is None:
            checkpoint = DEFAULT_CHECKPOINT
        side = sidecar_path(onnx_path)
        if not onnx_path.is_file():
            raise CheckpointError(onnx_path, "no such detector graph (export it with recipes/export_detector_onnx.py)")
        try:
            info = json.loads(side.read_text())
            missing = [k for k in _SIDECAR_KEYS if k not in info]
        except (OSError, ValueError) as e:
            raise CheckpointError(side, f"cannot read the graph's sidecar: {e}") from e
        if missing:
            raise CheckpointError(side, f"sidecar lacks {missing}")
        if _sha256(onnx_path) != info["onnx_sha256"]:
            raise CheckpointError(onnx_path, "is not the graph its sidecar names (sha256 differs): re-export it")
        if checkpoint is not None and _sha256(Path(checkpoint)) != info["checkpoint_sha256"]:
            raise CheckpointError(onnx_path, f"was exported from another checkpoint than {checkpoint}: re-export it "
                                             "with recipes/export_detector_onnx.py")
        try:
            net = cv2.dnn.readNetFromONNX(str(onnx_path))
        except cv2.error as e:
            raise CheckpointError(onnx_path, f"OpenCV cannot read the graph: {e}") from e
        return cls(net, info)

    @property
    def input_size(self) -> int:
        return int(self.info["input_size"])

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB crops → (B, K, 2) float32 points in crop pixels."""
        s, hm = self.input_size, int(self.info["heatmap_size"])
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = np.ascontiguousarray(crops[start: start + self.batch_size].transpose(0, 3, 1, 2), np.float32)
            x /= np.float32(127.5)
            x -= np.float32(1.0)  # [-1, 1], as the network was trained
            with self._lock:
                self.net.setInput(x)
                logits = self.net.forward()
            # heatmap pixel → crop pixel, as detector.model.heatmap_to_crop (which is torch's)
            out.append((_soft_argmax(logits) + np.float32(0.5)) * np.float32(s / hm) - np.float32(0.5))
        k = int(self.info["n_points"])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, k, 2), np.float32)

    def predict_from_points(self, images: Sequence[np.ndarray], points: np.ndarray) -> np.ndarray:
        """(B, K, 2) points in each image, cropped on the landmark box of reference ``points`` (B, K', 2)."""
        pts = check_points(points)
        pts = pts[None] if pts.ndim == 2 else pts
        s, margin = self.input_size, float(self.info["margin"])
        transforms = [crop_transform_for_box(landmark_box(p), s, margin) for p in pts]
        if not transforms:
            return np.zeros((0, int(self.info["n_points"]), 2), np.float32)
        crops = np.stack([t.warp(im, s) for im, t in zip(images, transforms)])
        pred = self.predict_crops(crops)
        return np.stack([t.inverse().apply(p) for t, p in zip(transforms, pred)]).astype(np.float32)
