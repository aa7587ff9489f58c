"""Generator training: configs, losses, data (triplets, pairs, cache), the two loops and their run bookkeeping.

- :mod:`~gannotate.training.config`: every config (:class:`GANTrainConfig`, :class:`RefineConfig`,
  :class:`LossWeights`, :class:`TripletConfig`) and the presets.
- :mod:`~gannotate.training.losses`: the loss terms as tensor functions and the two objectives
  (:class:`TripleConsistencyLoss`, :class:`RefineLoss`), each with ``accumulate_gradients(phase, batch)``.
- :mod:`~gannotate.training.runs`: the run folder, atomic verified checkpoints, RNG state and
  stats.jsonl rows, shared by every trainer (import from there).
- :mod:`~gannotate.training.feature_nets`: the identity/perceptual networks a config names.
- :mod:`~gannotate.training.trainer` (GANnotation) and :mod:`~gannotate.training.refine` (the refiner):
  the loops; import them from there (they pull in the networks).
"""

from gannotate.training.cache import CACHE_FORMAT, CacheWriter, TrainingCache, context_crop, plausible_frames, prepare_cache
from gannotate.training.config import (
    PRESETS,
    REFINE_PRESETS,
    GANTrainConfig,
    LossWeights,
    RefineConfig,
    TripletConfig,
    get_preset,
    parse_loss_weights,
    with_weights,
)
from gannotate.training.curves import draw_curves, read_stats
from gannotate.training.losses import (
    RefineLoss,
    TripleConsistencyLoss,
    d_hinge,
    g_hinge,
    gram_matrix,
    identity_l1,
    perceptual,
    pixel_l2,
    self_consistency,
    total_variation,
    triple_consistency,
)
from gannotate.training.triplets import TripletBatches, TripletSampler, to_tensor_images

__all__ = [
    "CACHE_FORMAT", "CacheWriter", "TrainingCache", "context_crop", "plausible_frames", "prepare_cache",
    "PRESETS", "REFINE_PRESETS", "GANTrainConfig", "LossWeights", "RefineConfig", "TripletConfig", "get_preset",
    "parse_loss_weights", "with_weights", "draw_curves", "read_stats",
    "RefineLoss", "TripleConsistencyLoss", "d_hinge", "g_hinge", "gram_matrix", "identity_l1", "perceptual",
    "pixel_l2", "self_consistency", "total_variation", "triple_consistency",
    "TripletBatches", "TripletSampler", "to_tensor_images",
]
