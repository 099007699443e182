"""Sign-SALD (Shen et al.): skeleton-aware VAE and skeleton-aware latent denoiser (with its length predictor)."""

from .latent_denoiser import SkeletonLatentDenoiser, SkeletonLatentDenoiserOutput
from .skeleton_vae import SkeletonVAE

__all__ = ["SkeletonVAE", "SkeletonLatentDenoiser", "SkeletonLatentDenoiserOutput"]
