"""Reading and writing faces, landmarks and datasets (the only package that touches files).

Readers return (H, W, 3) uint8 RGB images and (K, 2) float32 (x, y) 0-based points; every
foreign convention (1-based .pts, menpo's (y, x), OpenCV's BGR) is converted here.
:class:`LandmarkDataset` (a PyTorch Dataset) is imported on first use, so ``import gannotate.io``
does not import torch.
"""

from typing import Any


from gannotate.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from gannotate.io.builtin import BUILTIN_FACE_NAMES, BuiltinFace, builtin_faces
from gannotate.io.exporters import export, list_exporters, register_exporter
from gannotate.io.folder_writer import FolderWriter, sample_name, unquote_key
from gannotate.io.folders import Discovery, FaceRef, Failure, check_inside, discover, load_face
from gannotate.io.hdf5 import DatasetReader, DatasetWriter
from gannotate.io.images import IMAGE_EXTENSIONS, ReducedImage, read_image, read_image_reduced, write_image
from gannotate.io.landmarks_io import LANDMARK_EXTENSIONS, read_landmarks, read_ljson
from gannotate.io.pts import read_pts, write_pts
from gannotate.io.videos import Clip, discover_clips, iter_frames

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "BUILTIN_FACE_NAMES",
    "BuiltinFace",
    "builtin_faces",
    "export",
    "list_exporters",
    "register_exporter",
    "FolderWriter",
    "sample_name",
    "unquote_key",
    "Discovery",
    "FaceRef",
    "Failure",
    "check_inside",
    "discover",
    "load_face",
    "DatasetReader",
    "DatasetWriter",
    "IMAGE_EXTENSIONS",
    "read_image",
    "read_image_reduced",
    "ReducedImage",
    "write_image",
    "LANDMARK_EXTENSIONS",
    "read_landmarks",
    "read_ljson",
    "read_pts",
    "write_pts",
    "Clip",
    "discover_clips",
    "iter_frames",
    "LandmarkDataset",
]


def __getattr__(name: str) -> Any:
    """``LandmarkDataset`` on first access (it needs torch; the rest of io does not)."""
    if name == "LandmarkDataset":
        from gannotate.io.dataset import LandmarkDataset

        return LandmarkDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
