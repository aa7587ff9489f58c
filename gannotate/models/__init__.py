"""Networks: the GANnotation generator, the PatchGAN critic, feature nets and checkpoint I/O.

Feature networks (SFace identity, VGG-19, LightCNN-29) import ``onnx`` only when SFace weights are read.
"""

from gannotate.models.checkpoint import (
    load_generator,
    load_original_gannotation,
    load_state_strict,
    original_meta,
    safe_load,
    save_generator,
)
from gannotate.models.discriminator import Discriminator, DiscriminatorConfig
from gannotate.models.features import VGG19, LightCNN29v2, SFace, gram_matrix
from gannotate.models.generator import Generator, GeneratorConfig

__all__ = [
    "Generator",
    "GeneratorConfig",
    "Discriminator",
    "DiscriminatorConfig",
    "save_generator",
    "load_generator",
    "load_original_gannotation",
    "original_meta",
    "safe_load",
    "load_state_strict",
    "SFace",
    "VGG19",
    "LightCNN29v2",
    "gram_matrix",
]
