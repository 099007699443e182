"""MaDiS (masked diffusion sign generation): the part-wise VQ-VAE sign tokenizer and the masked diffusion LM."""

from .canvas_cache import MaskedDiffusionCache, MaskedDiffusionCacheLayer, active_canvas_positions
from .configuration_madis import MaDiSConfig
from .modeling_madis import MaDiSConnector, MaDiSForMaskedDiffusion, MaDiSOutput, MixtureOfPartsEmbedding
from .part_vqvae import PartVQVAE, PartVQVAEOutput, part_feature_indices

__all__ = [
    "MaDiSConfig",
    "MaDiSConnector",
    "MaDiSForMaskedDiffusion",
    "MaDiSOutput",
    "MaskedDiffusionCache",
    "MaskedDiffusionCacheLayer",
    "MixtureOfPartsEmbedding",
    "PartVQVAE",
    "PartVQVAEOutput",
    "active_canvas_positions",
    "part_feature_indices",
]
