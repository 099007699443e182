"""Position embeddings and FiLM conditioning shared by the hf-sign models.

* `sinusoidal_embedding`: diffusers' `get_timestep_embedding` (the transformer's sinusoids, cosine half first) of
  values of any shape, for absolute positions and for phases.
* `relative_position_embedding`: the same sinusoids of each token's position relative to its sequence's valid length.
* `FiLM`: `(1 + scale(c)) * h + shift(c)`, identity at initialisation.

Timesteps use diffusers' own `Timesteps` and `TimestepEmbedding` directly. diffusers' adaptive norms
(`AdaLayerNorm`, `AdaLayerNormZero`) modulate the *normalised input* of a sub-layer; FiLM as Sign-SALD defines it
(eq. 6) modulates the sub-layer's *output* before the residual sum, so it is a block of its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

__all__ = ["sinusoidal_embedding", "relative_position_embedding", "broadcast_timestep", "FiLM"]


def sinusoidal_embedding(values: torch.Tensor, dim: int, scale: float = 1.0) -> torch.Tensor:
    """Sinusoidal embedding `(*values.shape, dim)` of `values * scale` (float32).

    `get_timestep_embedding(values * scale, dim, flip_sin_to_cos=True, downscale_freq_shift=0)`: frequencies
    `10000^(-k / (dim / 2))`, cosines first, as diffusers' `Timesteps(dim, True, 0)` embeds timesteps. `scale`
    multiplies the values before the sinusoids, which spreads values in [0, 1] (phases, relative positions) over
    the frequencies.
    """
    flat = values.reshape(-1).to(torch.float32) * scale
    emb = get_timestep_embedding(flat, dim, flip_sin_to_cos=True, downscale_freq_shift=0)
    return emb.reshape(*values.shape, dim)


def relative_position_embedding(mask: torch.Tensor, dim: int, scale: float = 100.0) -> torch.Tensor:
    """Sinusoidal embedding `(batch, seq_len, dim)` of each token's relative position `i / (valid_length - 1)`.

    The first valid token is at 0 and the last at 1 (positions past the valid length are clamped to 1), so two
    sequences of different lengths can be aligned by position: "a third of the way through the signing" with "a
    third of the way through the sentence". `mask` `(batch, seq_len)` marks the valid tokens (a prefix); `scale`
    spreads [0, 1] over the sinusoid frequencies.
    """
    valid = mask.sum(1, keepdim=True).to(torch.float32)
    rel = torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32)[None] / (valid - 1).clamp_min(1.0)
    return sinusoidal_embedding(rel.clamp(max=1.0), dim, scale=scale)


def broadcast_timestep(timestep, batch_size: int, device: torch.device) -> torch.Tensor:
    """A denoiser's `timestep` argument as a `(batch_size,)` tensor on `device`: a number or a one-element tensor is
    repeated, a `(batch_size,)` tensor kept; any other shape raises a `ValueError`."""
    if not torch.is_tensor(timestep):
        timestep = torch.tensor([timestep], device=device)
    timestep = timestep.to(device).reshape(-1)
    if timestep.shape[0] == 1:
        timestep = timestep.expand(batch_size)
    if timestep.shape[0] != batch_size:
        raise ValueError(f"`timestep` must be a scalar or have shape ({batch_size},); got {tuple(timestep.shape)}.")
    return timestep


class FiLM(nn.Module):
    r"""Feature-wise linear modulation: `FiLM(h, c) = (1 + scale(c)) * h + shift(c)`.

    `scale` and `shift` come from one linear layer on `silu(c)`, broadcast over every axis of `h` between the batch
    and the channels (frames, joints, ...). The layer is zero-initialised, so FiLM starts as the identity and the
    condition's influence is learned from there (as diffusers' zero-initialised adaptive norms do).

    Args:
        cond_dim (`int`): width of the condition `c` (e.g. a timestep embedding).
        dim (`int`): channels of the modulated hidden states.
    """

    def __init__(self, cond_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden_states: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """`hidden_states` `(batch, ..., dim)`, `cond` `(batch, cond_dim)` -> modulated `(batch, ..., dim)`."""
        params = self.proj(F.silu(cond))
        params = params.reshape(params.shape[0], *([1] * (hidden_states.ndim - 2)), params.shape[-1])
        scale, shift = params.chunk(2, dim=-1)
        return (1.0 + scale) * hidden_states + shift
