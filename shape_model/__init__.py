"""Point distribution model of 68-point faces (numpy/scipy/opencv only; never imports gannotate).

    points = S(scale, theta, t) · (mean + B_pose · φ(yaw, pitch) + P · c)

yaw and pitch are real degrees (positive yaw: the face turns to its own left, nose towards the
image right; positive pitch: looking up), theta is the in-plane rotation in degrees (clockwise on
screen, y down). ``load_model()`` returns the shipped model (``data/pdm_ibug68.npz``).

Example:
    >>> from shape_model import load_model
    >>> model = load_model()
    >>> params = model.fit(points)                       # (N, 68, 2) -> Params
    >>> targets = model.sample(rng, 16, yaw_range=(-45, 45), base=params[0])
    >>> shapes = model.instances(targets)                # (16, 68, 2) float32
"""

from shape_model.build import DEFAULT_MODEL_PATH, build_model, load_model, model_sha256, save_model
from shape_model.errors import ShapeModelError
from shape_model.params import Params
from shape_model.pdm import PointDistributionModel
from shape_model.plausibility import is_plausible
from shape_model.pose import estimate_pose, load_mean_face_3d
from shape_model.procrustes import Similarity2D, align, generalised_procrustes

__all__ = [
    "PointDistributionModel",
    "Params",
    "ShapeModelError",
    "build_model",
    "save_model",
    "load_model",
    "model_sha256",
    "DEFAULT_MODEL_PATH",
    "estimate_pose",
    "load_mean_face_3d",
    "is_plausible",
    "Similarity2D",
    "align",
    "generalised_procrustes",
]
