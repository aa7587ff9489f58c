"""A compact heatmap landmark detector: network, data, training, prediction.

Train with :func:`train` on a :class:`FaceSet` from :func:`load_training_faces` (any mix of
``augment`` HDF5 sets and folders of photos with .pts); run with :class:`Detector`.
"""

from gannotate.detector.data import (
    NO_AUGMENT,
    CropAugmentConfig,
    FaceSet,
    crop_transform_for_box,
    crop_transform_for_points,
    iter_annotated,
    load_training_faces,
    sample_batch,
    split_by_photo,
    write_list_file,
)
from gannotate.detector.model import DetectorConfig, LandmarkNet, load_checkpoint, save_checkpoint, soft_argmax
from gannotate.detector.predict import DEFAULT_CHECKPOINT, Detector, predict_folder
from gannotate.detector.train import PRESETS, DetectorTrainConfig, train

__all__ = [
    "CropAugmentConfig",
    "NO_AUGMENT",
    "FaceSet",
    "crop_transform_for_box",
    "crop_transform_for_points",
    "iter_annotated",
    "load_training_faces",
    "sample_batch",
    "split_by_photo",
    "write_list_file",
    "DetectorConfig",
    "LandmarkNet",
    "load_checkpoint",
    "save_checkpoint",
    "soft_argmax",
    "DEFAULT_CHECKPOINT",
    "Detector",
    "predict_folder",
    "PRESETS",
    "DetectorTrainConfig",
    "train",
]
