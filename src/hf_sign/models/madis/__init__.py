"""MaDiS (masked diffusion sign generation): the part-wise VQ-VAE sign tokenizer and the masked diffusion LM."""

from .configuration_madis import MaDiSConfig
from .modeling_madis import MaDiSConnector, MaDiSForMaskedDiffusion, MaDiSOutput, MixtureOfPartsEmbedding
from .part_vqvae import PartVQVAE, PartVQVAEOutput, part_feature_indices

__all__ = [
    "MaDiSConfig",
    "MaDiSConnector",
    "MaDiSForMaskedDiffusion",
    "MaDiSOutput",
    "MixtureOfPartsEmbedding",
    "PartVQVAE",
    "PartVQVAEOutput",
    "part_feature_indices",
]
