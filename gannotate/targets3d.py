"""Targets beyond ±45° of yaw as a real head shows them: the shape model's request, re-drawn by the 3D face.

Why: the 2D shape model's cubic pose basis runs out of training faces beyond about 45°, and its targets'
far-side jaw bulges out past the nose (README, "Which yaw range"): the profile renderer's 3D fit leaves a
median 16.5% NME on them at 52.5–60°, its last correction tears the face into strips to reach them, and a
detector trained on them learns a jaw no head has. So past ``lo`` degrees each target is fitted with the
Surrey Face Model holding the *source's* identity (pose started from the plan's pose change, expression
free), and the fit's own landmarks — the jaw by landmark marching, on the silhouette as 300W and 300W-LP
annotate it — replace the shape model's, blended in smoothly from ``lo`` to ``hi`` degrees. Within ``lo``
nothing changes. Measured on the 69 validation faces at ±60° with the profile renderer: SFace identity
0.426 → 0.492, dlib finds 17% → 23% of the faces, and reads them at 38 → 26% NME; the renderer's fit
residual falls from 21% to 0.6% (README, "Which yaw range").

The plan's ``params`` and ``pose`` stay the shape model's request, so beyond ``lo`` the stored landmarks are
no longer ``instance(params)``. The face model is non-commercial (its licence goes into such datasets).
"""

from __future__ import annotations

import numpy as np

from gannotate.face3d import MODEL_PATH, SOURCE_FIT, TARGET_FIT
from gannotate.plan import RELIABLE_YAW
from shape_model.face3d import Face3DFit, Face3DModel, euler_to_rotation, fit_face3d, fit_target, load_face3d, turned

__all__ = ["HIGH_YAW", "consistent_targets", "turned_targets", "with_shape_model_jaw", "blend_weight", "fit_source"]

HIGH_YAW = 60.0  # the 3D face's landmarks blend in from plan.RELIABLE_YAW and are the targets from here


def blend_weight(yaw: np.ndarray, lo: float = RELIABLE_YAW, hi: float = HIGH_YAW) -> np.ndarray:
    """(n,) 0 for |yaw| ≤ lo, smoothly to 1 at |yaw| ≥ hi."""
    t = np.clip((np.abs(np.asarray(yaw, np.float64)) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def fit_source(source: np.ndarray, model: Face3DModel | None = None) -> Face3DFit:
    """The 3D face fit of a source's (68, 2) landmarks that :func:`consistent_targets` holds the identity of.

    Raises:
        ShapeModelError: the source cannot be fitted (degenerate landmarks).
    """
    return fit_face3d(model or load_face3d(MODEL_PATH), np.asarray(source, np.float64), SOURCE_FIT)


def consistent_targets(
    source: np.ndarray, source_pose: np.ndarray, targets: np.ndarray, target_pose: np.ndarray,
    model: Face3DModel | None = None, source_fit: Face3DFit | None = None,
) -> np.ndarray:
    """(n, 68, 2) targets with those beyond :data:`gannotate.plan.RELIABLE_YAW` re-drawn by the 3D face (see the module doc).

    The fits are the profile renderer's own (``gannotate.face3d``'s settings and
    :func:`shape_model.face3d.fit_target`, way "fit"), so a profile render of such a target needs almost no
    final correction.

    Args:
        source: (68, 2) the face's landmarks; source_pose: (3,) its shape-model yaw, pitch, roll.
        targets: (n, 68, 2) the shape model's targets; target_pose: (n, 3) their yaw, pitch, roll.
        source_fit: :func:`fit_source` of ``source``, when the caller keeps it across calls (fitted here if None).

    Raises:
        ShapeModelError: the source cannot be fitted (degenerate landmarks).
    """
    w = blend_weight(np.asarray(target_pose)[:, 0])
    out = np.asarray(targets, np.float32).copy()
    if not (w > 0).any():
        return out
    model = model or load_face3d(MODEL_PATH)
    src = source_fit if source_fit is not None else fit_source(source, model)
    for i in np.flatnonzero(w > 0):
        fit, _ = fit_target(model, src, source_pose, out[i].astype(np.float64), target_pose[i], TARGET_FIT, ("fit",))
        drawn = fit.camera_vertices(model)[fit.correspondence, :2]
        out[i] = ((1.0 - w[i]) * out[i] + w[i] * drawn).astype(np.float32)
    return out


def turned_targets(
    source: np.ndarray, source_pose: np.ndarray, target_pose: np.ndarray, model: Face3DModel | None = None,
    source_fit: Face3DFit | None = None,
) -> np.ndarray:
    """(n, 68, 2) the source's landmarks moved as its 3D face moves when turned by the pose change.

    Why: the 2D shape model's pose basis was learnt from Procrustes-aligned faces, so as it turns a face it
    also lengthens it — the nose-to-chin distance of its targets grows 24% by 45° of yaw (69 held-out faces),
    which no turning head does. Here the pose change (``target_pose - source_pose``: yaw, pitch, roll) turns
    the source's 3D fit rigidly, the jaw points march to the new silhouette, and each landmark moves by what
    its 3D point moved: at no change the targets are the source's landmarks exactly.

    Args:
        source: (68, 2) the face's landmarks; source_pose: (3,) its shape-model yaw, pitch, roll (degrees).
        target_pose: (n, 3) the targets' yaw, pitch, roll.
        source_fit: the source's :func:`fit_source`, when the caller already has it.

    Raises:
        ShapeModelError: the source cannot be fitted (degenerate landmarks).
    """
    from shape_model.pose import rotation_to_euler

    model = model or load_face3d(MODEL_PATH)
    src = source_fit if source_fit is not None else fit_source(source, model)
    at_source = src.landmarks_2d(model)
    euler = rotation_to_euler(src.rotation[None])[0]
    verts = model.vertices(src.alpha, src.beta)  # one face, many turns: its mesh once
    change = np.asarray(target_pose, np.float64) - np.asarray(source_pose, np.float64)[None]
    out = np.empty((len(change), 68, 2), np.float32)
    for i, d in enumerate(change):
        moved = turned(model, src, euler_to_rotation(*(euler + d)), verts).landmarks_2d(model, verts)
        out[i] = np.asarray(source, np.float64) + moved - at_source
    return out


def with_shape_model_jaw(turned: np.ndarray, shape_targets: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(n, 68, 2) :func:`turned_targets` whose jaw contour is the shape model's, placed by the inner points.

    Why: the 3D turn keeps a head's proportions (no long chin), so more of its renders read as faces at 45°,
    but its jaw points, marched along the fitted mesh's silhouette, sit where no 300W annotator puts a jaw
    (docs/results/renderers.md); the shape model's jaw contour is 300W's. Each target's jaw is the shape
    model's, moved by the similarity that best lays the shape model's 51 inner points onto the turned ones.
    The ``mixed`` turn (:data:`gannotate.plan.MIXED_3D_SHARE`) goes part of the way to these targets. Beyond :data:`gannotate.plan.RELIABLE_YAW` the shape
    model's jaw leaves the head, so the marched jaw blends back in (:func:`blend_weight`), as
    :func:`consistent_targets` does for the shape model's targets.

    Args:
        turned: (n, 68, 2) the 3D-turned targets; shape_targets: (n, 68, 2) the shape model's targets of the
            same requests; yaw: (n,) their target yaw (degrees).
    """
    from gannotate.geometry import fit_similarity
    from gannotate.landmarks import INNER_51

    jaw = np.arange(INNER_51[0])
    out = np.asarray(turned, np.float64).copy()
    keep = 1.0 - blend_weight(yaw)
    for i in np.flatnonzero(keep > 0):
        placed = fit_similarity(shape_targets[i][INNER_51], out[i][INNER_51]).apply(np.asarray(shape_targets[i][jaw], np.float64))
        out[i, jaw] = keep[i] * placed + (1.0 - keep[i]) * out[i, jaw]
    return out.astype(np.float32)
