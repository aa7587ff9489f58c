"""The shipped dense 3D face (Surrey Face Model): its file, its licence line, and how we fit it.

Why here and not in the renderer: planning (``gannotate.targets3d`` draws targets beyond ±45° with it) and
the profile renderer fit the same face with the same settings, and planning must not import a renderer.
The fits themselves are numpy in ``shape_model.face3d`` (:func:`~shape_model.face3d.fit_face3d`,
:func:`~shape_model.face3d.fit_target`); this module holds what ties them to this package's asset.

Licence: the Surrey Face Model is free for non-commercial use only (``gannotate/assets/SFM_LICENCE.md``); every
dataset whose pixels or targets come from it records :data:`FACE_MODEL_ATTRS`.
"""

from __future__ import annotations

from pathlib import Path

from shape_model.face3d import FitConfig

__all__ = ["MODEL_PATH", "SFM_LICENCE", "FACE_MODEL_ATTRS", "SOURCE_FIT", "TARGET_FIT"]

MODEL_PATH = Path(__file__).resolve().parent / "assets" / "sfm_face3d.npz"
SFM_LICENCE = (
    "Surrey Face Model (sfm_shape_3448): free for non-commercial use only; "
    "github.com/patrikhuber/eos share/ (cvssp.org/facemodel); Huber et al., VISAPP 2016"
)
#: what every dataset whose pixels or targets come from the Surrey Face Model records about it
FACE_MODEL_ATTRS = {
    "face_model": "sfm_shape_3448 (Surrey Face Model), github.com/patrikhuber/eos share/",
    "face_model_licence": SFM_LICENCE,
}
#: a source face's fit (identity, expression, pose)
SOURCE_FIT = FitConfig(n_shape=40, shape_reg=3.0, expr_reg=5.0, n_iter=5)
#: a target's fit with the source's identity held (fewer alternations: it starts near the answer)
TARGET_FIT = FitConfig(n_shape=40, shape_reg=3.0, expr_reg=5.0, n_iter=3)
