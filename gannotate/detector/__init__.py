"""A compact heatmap landmark detector: network, data, training, prediction.

Train with :func:`train` on a :class:`FaceSet` from :func:`load_training_faces` (any mix of
``augment`` HDF5 sets and folders of photos with .pts); run with :class:`Detector`, or with
:class:`ExportedDetector` (its ONNX export through OpenCV) where torch is not otherwise loaded.

Why the names load on first use: the network, training and :class:`Detector` import torch (a second of
CPU), and augment's render workers score every render with :class:`ExportedDetector` and the crops of
``gannotate.detector.data`` alone; importing this package must not load torch for them.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "gannotate.detector.data": (
        "NO_AUGMENT", "CropAugmentConfig", "FaceSet", "crop_transform_for_box", "crop_transform_for_points",
        "iter_annotated", "load_training_faces", "sample_batch", "split_by_photo", "write_list_file",
    ),
    "gannotate.detector.model": ("DetectorConfig", "LandmarkNet", "load_checkpoint", "save_checkpoint", "soft_argmax"),
    "gannotate.detector.predict": ("Detector", "predict_folder"),
    "gannotate.detector.exported": ("DEFAULT_CHECKPOINT", "ExportedDetector", "export_onnx"),
    "gannotate.detector.train": ("PRESETS", "DetectorTrainConfig", "train"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
