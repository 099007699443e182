"""`ReferenceImageEncoder`: the signer's reference appearance image -> the renderer's cross-attention states.

Stable Signer's renderer (a diffusers `UNet2DConditionModel` with a `ControlNetModel`) draws a signer in the
appearance of a reference image. This small conv net turns that image into `encoder_hidden_states` for the UNet's
(and the ControlNet's) cross attention: a grid of local tokens (where the clothing, skin and background are) plus one
global token (the average appearance), each with a learned position embedding.

```
image (B, 3, H, W) in [-1, 1]
  -> conv_in -> [GroupNorm, SiLU, 3x3 conv stride 2] per entry of block_out_channels    (B, C, H / 2^n, W / 2^n)
  -> adaptive average pool to token_grid_size x token_grid_size, and a global mean     (B, grid^2 + 1, C)
  -> linear to cross_attention_dim, + position embedding, LayerNorm                    (B, grid^2 + 1, D)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

__all__ = ["ReferenceImageEncoder", "ReferenceImageEncoderOutput"]


@dataclass
class ReferenceImageEncoderOutput(BaseOutput):
    """Output of [`ReferenceImageEncoder`].

    Args:
        last_hidden_state (`torch.Tensor` of shape `(batch, token_grid_size**2 + 1, cross_attention_dim)`): the
            reference tokens, the renderer's `encoder_hidden_states` (grid tokens row by row, then the global token).
    """

    last_hidden_state: torch.Tensor


class ReferenceImageEncoder(ModelMixin, ConfigMixin):
    r"""Encodes a reference appearance image into tokens for cross attention.

    Args:
        in_channels (`int`, *optional*, defaults to 3): image channels.
        block_out_channels (`Tuple[int]`, *optional*, defaults to `(32, 64, 64)`): channels after each stride-2
            block (one halving of the resolution per entry).
        token_grid_size (`int`, *optional*, defaults to 4): the local tokens form a `token_grid_size` x
            `token_grid_size` grid (adaptive average pooling, so any image size works).
        cross_attention_dim (`int`, *optional*, defaults to 64): token width (the UNet's `cross_attention_dim`).
        norm_num_groups (`int`, *optional*, defaults to 8): groups of the GroupNorms (must divide every channel
            count).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        block_out_channels: Tuple[int, ...] = (32, 64, 64),
        token_grid_size: int = 4,
        cross_attention_dim: int = 64,
        norm_num_groups: int = 8,
    ):
        super().__init__()
        if not block_out_channels:
            raise ValueError("`block_out_channels` must hold at least one entry.")
        bad = [c for c in block_out_channels if c % norm_num_groups]
        if bad:
            raise ValueError(f"`norm_num_groups`={norm_num_groups} must divide every block channel count; not {bad}.")
        if token_grid_size < 1:
            raise ValueError(f"`token_grid_size` must be >= 1; got {token_grid_size}.")
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        blocks = []
        channels = block_out_channels[0]
        for out in block_out_channels:
            blocks += [
                nn.GroupNorm(norm_num_groups, channels),
                nn.SiLU(),
                nn.Conv2d(channels, out, kernel_size=3, stride=2, padding=1),
            ]
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(token_grid_size)
        self.proj = nn.Linear(channels, cross_attention_dim)
        self.position_embedding = nn.Parameter(torch.zeros(token_grid_size**2 + 1, cross_attention_dim))
        nn.init.normal_(self.position_embedding, std=0.02)
        self.norm = nn.LayerNorm(cross_attention_dim)

    @property
    def num_tokens(self) -> int:
        """Tokens per image: the grid plus the global token."""
        return self.config.token_grid_size**2 + 1

    def forward(
        self, reference_image: torch.Tensor, return_dict: bool = True
    ) -> Union[ReferenceImageEncoderOutput, Tuple[torch.Tensor]]:
        r"""
        Args:
            reference_image (`torch.Tensor` of shape `(batch, in_channels, height, width)`): the reference image,
                scaled to [-1, 1].
            return_dict (`bool`, *optional*, defaults to `True`): return a [`ReferenceImageEncoderOutput`], else a
                tuple.

        Returns:
            [`ReferenceImageEncoderOutput`] or `tuple`: tokens `(batch, token_grid_size**2 + 1, cross_attention_dim)`.
        """
        if reference_image.ndim != 4 or reference_image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"`reference_image` must have shape (batch, {self.config.in_channels}, height, width); got "
                f"{tuple(reference_image.shape)}."
            )
        # 1. convolutional features at 1 / 2^n of the resolution
        h = self.blocks(self.conv_in(reference_image))
        # 2. a grid of local tokens and one global token
        local = self.pool(h).flatten(2).transpose(1, 2)  # (B, grid^2, C)
        tokens = torch.cat([local, h.mean(dim=(2, 3))[:, None]], dim=1)
        # 3. to the cross-attention width, with positions
        states = self.norm(self.proj(tokens) + self.position_embedding.to(tokens.dtype))
        if not return_dict:
            return (states,)
        return ReferenceImageEncoderOutput(last_hidden_state=states)
