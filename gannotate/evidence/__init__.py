"""Evidence a user can act on before spending compute on a generated set (issue 13).

- :mod:`~gannotate.evidence.identity`: is it still the same person? SFace cosine of each sample to
  its source face, by |yaw| bin, with the share above OpenCV's same-person threshold (0.363).
- :mod:`~gannotate.evidence.progressive`: is the output reusable? The paper's progressive gap
  ``|R(R(I, s₁), s₂) − R(I, s₂)|`` and the identity of each route, for any renderer.
- :mod:`~gannotate.evidence.reenact`: drive one face with a 300-VW-layout clip's landmark track
  through the shape model; video, per-frame .pts and temporal jitter.

Fidelity (are the targets ground truth?) lives in :mod:`gannotate.evaluate`. Nothing here imports
torch at module level: SFace is built on first use.
"""

from gannotate.evidence.identity import (
    IDENTITY_YAW_BINS,
    SAME_PERSON_THRESHOLD,
    FaceEmbedder,
    IdentityReport,
    align_faces,
    cosine,
    identity_scores,
    identity_table,
    summarise_identity,
)
from gannotate.evidence.progressive import (
    ProgressiveConfig,
    ProgressiveReport,
    progressive_table,
    render_routes,
    run_progressive,
)
from gannotate.evidence.reenact import ReenactConfig, ReenactResult, read_driver, retarget, run_reenact, temporal_jitter

__all__ = [
    "IDENTITY_YAW_BINS",
    "SAME_PERSON_THRESHOLD",
    "FaceEmbedder",
    "IdentityReport",
    "align_faces",
    "cosine",
    "identity_scores",
    "identity_table",
    "summarise_identity",
    "ProgressiveConfig",
    "ProgressiveReport",
    "progressive_table",
    "render_routes",
    "run_progressive",
    "ReenactConfig",
    "ReenactResult",
    "read_driver",
    "retarget",
    "run_reenact",
    "temporal_jitter",
]
