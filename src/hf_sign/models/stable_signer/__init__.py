"""Stable Signer's models: the SLUL linker (T5), the SLP-MoE gate and the renderer's reference encoder."""

from .expert_gate import PoseExpertGate, PoseExpertGateOutput
from .linker import SignLinkerConfig, SignLinkerForConditionalGeneration, build_linker_tokenizer
from .reference_encoder import ReferenceImageEncoder

__all__ = [
    "PoseExpertGate",
    "PoseExpertGateOutput",
    "ReferenceImageEncoder",
    "SignLinkerConfig",
    "SignLinkerForConditionalGeneration",
    "build_linker_tokenizer",
]
