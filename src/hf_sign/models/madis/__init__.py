"""MaDiS (masked diffusion sign generation): the part-wise VQ-VAE sign tokenizer."""

from .part_vqvae import PartVQVAE, PartVQVAEOutput

__all__ = ["PartVQVAE", "PartVQVAEOutput"]
