"""Placeholder of the renderer's reference image encoder (replaced by the renderer's implementation)."""

from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class ReferenceImageEncoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, cross_attention_dim: int = 32):
        super().__init__()
        self.proj = nn.Linear(3, cross_attention_dim)
