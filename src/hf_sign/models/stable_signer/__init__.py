"""Stable Signer's models: the SLUL linker (T5), the SLP-MoE gate and the renderer's reference image encoder."""

from .expert_gate import PoseExpertGate, PoseExpertGateOutput
from .linker import SignLinkerConfig, SignLinkerForConditionalGeneration, build_linker_tokenizer
from .reference_encoder import ReferenceImageEncoder, ReferenceImageEncoderOutput

__all__ = [
    "PoseExpertGate",
    "PoseExpertGateOutput",
    "ReferenceImageEncoder",
    "ReferenceImageEncoderOutput",
    "SignLinkerConfig",
    "SignLinkerForConditionalGeneration",
    "build_linker_tokenizer",
]
