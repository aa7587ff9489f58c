"""The metrics' former home, kept importable for :mod:`gannotate.evidence.payoff` until it moves into
:mod:`gannotate.metrics` (new code imports :mod:`gannotate.metrics`)."""

from gannotate.metrics.detectors import evaluate_detectors
from gannotate.metrics.nme import draw_ced

__all__ = ["draw_ced", "evaluate_detectors"]
