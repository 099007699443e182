"""MaDiS (masked diffusion sign generation): the part-wise VQ-VAE sign tokenizer."""

from .part_vqvae import PartVQVAE, PartVQVAEOutput, part_feature_indices

__all__ = ["PartVQVAE", "PartVQVAEOutput", "part_feature_indices"]
