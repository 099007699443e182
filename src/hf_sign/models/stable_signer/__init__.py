"""Stable Signer (Fang et al.): the renderer's reference image encoder."""

from .reference_encoder import ReferenceImageEncoder, ReferenceImageEncoderOutput

__all__ = ["ReferenceImageEncoder", "ReferenceImageEncoderOutput"]
