"""GANnotation training: losses, triplet data, the training cache, the configuration and the loop.

Import the loop from :mod:`gannotate.training.trainer` (it pulls in the networks); the names below
are the package's table of contents.
"""

from gannotate.training.cache import CACHE_FORMAT, CacheWriter, TrainingCache, context_crop, plausible_frames, prepare_cache
from gannotate.training.curves import draw_curves, read_stats
from gannotate.training.config import PRESETS, TrainConfig, get_preset
from gannotate.training.losses import (
    LossWeights,
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
from gannotate.training.triplets import TripletBatches, TripletConfig, TripletSampler, to_tensor_images

__all__ = [
    "CACHE_FORMAT", "CacheWriter", "TrainingCache", "context_crop", "plausible_frames", "prepare_cache",
    "PRESETS", "TrainConfig", "get_preset", "draw_curves", "read_stats",
    "LossWeights", "TripleConsistencyLoss", "d_hinge", "g_hinge", "gram_matrix", "identity_l1", "perceptual",
    "pixel_l2", "self_consistency", "total_variation", "triple_consistency",
    "TripletBatches", "TripletConfig", "TripletSampler", "to_tensor_images",
]
