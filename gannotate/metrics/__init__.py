"""How good is a generated set, and a detector? Every measure, on one metric registry and one |yaw|-bin table.

- :mod:`~gannotate.metrics.registry`: ``@register_metric`` functions of an :class:`EvalInput`
  (predictions, truth, NME and yaw per face); :func:`compute_metrics` runs them by name.
- :mod:`~gannotate.metrics.yaw`: the |yaw| bin edges, labels and per-bin summaries every report cuts by.
- :mod:`~gannotate.metrics.nme`: NME, failure rate, AUC, CED curves and plots; folders of .pts scored.
- :mod:`~gannotate.metrics.detectors`: detector checkpoints on real faces, compared; fidelity (are the
  generated targets ground truth?).
- :mod:`~gannotate.metrics.identity`: is it still the same person? SFace cosine of each sample to
  its source face, with the share above OpenCV's same-person threshold (0.363).
- :mod:`~gannotate.metrics.independent`: does a predictor trained elsewhere (dlib) find the face and
  read it at its stated landmarks?
- :mod:`~gannotate.metrics.progressive`: is the output reusable? The paper's progressive gap
  ``|R(R(I, s₁), s₂) − R(I, s₂)|`` and the identity of each route, for any renderer.
- :mod:`~gannotate.metrics.payoff`: does generated data make a detector better? Per-face NME (ours and
  the 51-point box measure) by |yaw|, seeds' spread, a paired bootstrap and verdicts
  (the protocol that trains the arms is :mod:`gannotate.payoff`).

Nothing here imports torch at module level: detectors and SFace are built on first use.
"""

from gannotate.metrics.detectors import (
    Comparison,
    FidelityReport,
    compare_checkpoints,
    evaluate_detector,
    evaluate_detectors,
    fidelity,
)
from gannotate.metrics.identity import (
    SAME_PERSON_THRESHOLD,
    FaceEmbedder,
    IdentityReport,
    align_faces,
    cosine,
    identity_scores,
    identity_table,
    summarise_identity,
)
from gannotate.metrics.independent import DlibReader, ReadReport, find_predictor, read_dataset, read_real, reads_table, summarise_reads
from gannotate.metrics.nme import EvalReport, auc, ced, draw_ced, evaluate_folders, evaluate_points, failure_rate, markdown_table
from gannotate.metrics.progressive import ProgressiveConfig, ProgressiveReport, progressive_table, render_routes, run_progressive
from gannotate.metrics.registry import EvalInput, compute_metrics, list_metrics, register_metric
from gannotate.metrics.yaw import LANDMARK_YAW_BINS, SAMPLE_YAW_BINS, YAW_EDGES, bin_label, bin_labels, by_yaw, yaw_bins, yaw_of

__all__ = [
    "EvalInput", "register_metric", "list_metrics", "compute_metrics",
    "YAW_EDGES", "yaw_bins", "bin_label", "bin_labels", "by_yaw", "LANDMARK_YAW_BINS", "SAMPLE_YAW_BINS", "yaw_of",
    "failure_rate", "ced", "auc", "EvalReport", "evaluate_points", "evaluate_folders", "markdown_table", "draw_ced",
    "evaluate_detector", "evaluate_detectors", "Comparison", "compare_checkpoints", "FidelityReport", "fidelity",
    "SAME_PERSON_THRESHOLD", "FaceEmbedder", "IdentityReport", "align_faces", "cosine", "identity_scores",
    "identity_table", "summarise_identity",
    "DlibReader", "ReadReport", "find_predictor", "read_dataset", "read_real", "reads_table", "summarise_reads",
    "ProgressiveConfig", "ProgressiveReport", "progressive_table", "render_routes", "run_progressive",
]
