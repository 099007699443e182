"""Sign-MExD's pose denoiser (Shen et al., Sec. II, Fig. 1): a gloss-conditioned transformer over pose frames whose
feed-forward layers can be expert-choice mixtures of experts.

Input: noisy poses `x_t` of shape (B, T, pose_dim), the timestep, and the gloss encoder's token states
(B, L, cross_attention_dim). Every frame is a token: `proj_in(x_t)` plus the sinusoidal embedding of its frame index
plus the timestep embedding (diffusers' `Timesteps` -> `TimestepEmbedding`, as DiT's timestep MLP), added to every
frame. Each of the
`num_layers` pre-norm blocks applies

    h = h + MHSA(LN(h))                  self-attention over the real frames (padded frames are never attended to)
    h = h + MHCA(LN(h), g)               cross-attention to the gloss tokens (eqs. 3-4), padded glosses masked
    h = h + FFN(LN(h))                   a dense FFN, or a `MoEFeedForward` in the blocks named by `moe_layers`

and `proj_out(LN(h))` gives the prediction (the clean poses `x_0`: Sign-MExD predicts the sample, eq. 2).

Mixture of experts (Sec. II-C): in the blocks listed in `moe_layers` the FFN is replaced by `num_experts` experts of
the same shape with expert-choice routing (eqs. 5-8, `hf_sign.models.moe`). The routing runs over the *frames of a
sequence*: each expert picks its `C = floor(T_real * f_c / E)` frames, with `T_real` the sample's real frames, and
padded frames are never routed, so a padded batch gives every sample the output it has alone.
`forward(return_routing=True)` returns one `RoutingInfo` per MoE layer (tokens per expert, which experts chose each
frame).

Table I: `table_i_shapes()` gives the configurations XL / XXL / 3XL (2 / 4 / 8 blocks) x dense / 4E / 8E / 16E,
`TABLE_I` the paper's parameter counts, and `count_parameters` / `table_i_parameter_counts` ours (see
`table_i_shapes` for how the widths were derived and what remains different).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ..attention import MaskedAttention
from ..embeddings import broadcast_timestep, sinusoidal_embedding
from ..moe import ROUTING_TYPES, MoEFeedForward, RoutingInfo

__all__ = ["SignMExDTransformer", "SignMExDTransformerOutput"]


@dataclass
class SignMExDTransformerOutput(BaseOutput):
    """Output of [`SignMExDTransformer`].

    Args:
        sample (`torch.Tensor` of shape `(batch, num_frames, pose_dim)`): the predicted clean poses `x_0` (padded
            frames hold meaningless values; mask them).
        routing (`List[RoutingInfo]`, *optional*): one `RoutingInfo` per MoE layer, in block order, when
            `return_routing=True`.
    """

    sample: torch.Tensor
    routing: Optional[List[RoutingInfo]] = None


class SignMExDBlock(nn.Module):
    """Pre-norm MHSA -> MHCA -> FFN (dense `FeedForward` or `MoEFeedForward`) on frames (B, T, D)."""

    def __init__(self, dim: int, num_heads: int, cross_dim: int, ffn_dim: int, dropout: float, moe: dict = None):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = MaskedAttention(dim, num_heads, dropout=dropout)
        self.cross_attn = MaskedAttention(dim, num_heads, cross_attention_dim=cross_dim, dropout=dropout)
        if moe is None:
            self.ffn = FeedForward(dim, inner_dim=ffn_dim, dropout=dropout, activation_fn="gelu")
        else:
            self.ffn = MoEFeedForward(dim, ffn_dim, dropout=dropout, **moe)

    @property
    def is_moe(self) -> bool:
        return isinstance(self.ffn, MoEFeedForward)

    def forward(
        self, h, frame_mask, glosses, gloss_mask, return_routing: bool = False
    ) -> Tuple[torch.Tensor, Optional[RoutingInfo]]:
        # 1. self-attention over the real frames
        h = h + self.self_attn(self.norm1(h), attention_mask=frame_mask)[0]
        # 2. cross-attention to the gloss tokens
        h = h + self.cross_attn(self.norm2(h), glosses, attention_mask=gloss_mask)[0]
        # 3. feed-forward: dense, or routed over the real frames
        routing = None
        if self.is_moe:
            out, routing = self.ffn(self.norm3(h), token_mask=frame_mask, return_routing=return_routing)
        else:
            out = self.ffn(self.norm3(h))
        return h + out, routing


class SignMExDTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin):
    r"""Sign-MExD's gloss-conditioned pose diffusion transformer (predicts the clean poses).

    Args:
        pose_dim (`int`, *optional*, defaults to 133): features per frame (133 for `smplx133`).
        hidden_dim (`int`, *optional*, defaults to 256): transformer width D.
        num_layers (`int`, *optional*, defaults to 2): number of MHSA -> MHCA -> FFN blocks.
        num_heads (`int`, *optional*, defaults to 4): attention heads (must divide `hidden_dim`).
        ffn_dim (`int`, *optional*, defaults to 1024): hidden width of the dense FFNs.
        cross_attention_dim (`int`, *optional*, defaults to 256): width of the gloss encoder's states.
        num_experts (`int`, *optional*, defaults to 0): experts per MoE layer; 0 makes every FFN dense.
        moe_layers (`List[int]`, *optional*): indices of the blocks whose FFN is a MoE layer when `num_experts > 0`;
            `None` means every block. With `num_experts == 0` these blocks keep a dense FFN of width `moe_ffn_dim`,
            so a dense configuration can be the exact dense counterpart of a sparse one (Table I).
        routing (`str`, *optional*, defaults to `"expert_choice"`): `"expert_choice"` (the paper, eqs. 5-8) or
            `"token_choice"` (top-k per token, for the comparison).
        capacity_factor (`float`, *optional*, defaults to 2.0): `f_c`, the average number of experts per frame under
            expert choice (`C = floor(T * f_c / E)`).
        top_k (`int`, *optional*, defaults to 2): experts per frame under token choice.
        max_frames (`int`, *optional*, defaults to 512): the longest pose sequence accepted (the bound a pipeline
            generates within); the sinusoidal frame embedding itself has no length limit.
        dropout (`float`, *optional*, defaults to 0.0): dropout on the attention probabilities and after the FFNs'
            (and experts') activation.
        moe_ffn_dim (`int`, *optional*): hidden width of the FFN in the `moe_layers` blocks (every expert's width,
            or the dense FFN's there with `num_experts == 0`); defaults to `ffn_dim`. Table I's counts need experts
            wider than the other blocks' FFN (see `table_i_shapes`).
        timestep_channels (`int`, *optional*, defaults to 256): sinusoidal channels of the timestep before its MLP
            (`Timesteps(timestep_channels)` -> `TimestepEmbedding(timestep_channels, hidden_dim)`; DiT's 256).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        pose_dim: int = 133,
        hidden_dim: int = 256,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        cross_attention_dim: int = 256,
        num_experts: int = 0,
        moe_layers: Optional[Sequence[int]] = None,
        routing: str = "expert_choice",
        capacity_factor: float = 2.0,
        top_k: int = 2,
        max_frames: int = 512,
        dropout: float = 0.0,
        moe_ffn_dim: Optional[int] = None,
        timestep_channels: int = 256,
    ):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads}).")
        if num_layers < 1:
            raise ValueError(f"`num_layers` must be >= 1; got {num_layers}.")
        if num_experts < 0:
            raise ValueError(f"`num_experts` must be >= 0 (0: dense); got {num_experts}.")
        if routing not in ROUTING_TYPES:
            raise ValueError(f"`routing` must be one of {ROUTING_TYPES}; got {routing!r}.")
        if moe_layers is None:
            moe_set = set(range(num_layers)) if num_experts > 0 else set()
        else:
            moe_set = set(int(i) for i in moe_layers)
            if len(moe_set) != len(moe_layers) or not all(0 <= i < num_layers for i in moe_set):
                raise ValueError(
                    f"`moe_layers` must list distinct block indices in [0, {num_layers}) (num_layers); "
                    f"got {list(moe_layers)}."
                )
        self.gradient_checkpointing = False

        # inputs: pose frames as tokens, the timestep (sinusoids -> MLP), added to every frame
        self.proj_in = nn.Linear(pose_dim, hidden_dim)
        self.time_proj = Timesteps(timestep_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(timestep_channels, hidden_dim)

        moe = None
        if num_experts > 0:
            moe = dict(num_experts=num_experts, routing=routing, capacity_factor=capacity_factor, top_k=top_k)
        wide = moe_ffn_dim or ffn_dim
        self.blocks = nn.ModuleList(
            SignMExDBlock(
                hidden_dim,
                num_heads,
                cross_attention_dim,
                wide if i in moe_set else ffn_dim,
                dropout,
                moe if i in moe_set else None,
            )
            for i in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, pose_dim)

    # ------------------------------------------------------------------------------------------ checks
    def _check_inputs(self, sample, timestep, encoder_hidden_states, encoder_attention_mask, attention_mask):
        """Validated `(timestep (B,), frame mask (B, T) bool, gloss mask (B, L) bool)`."""
        cfg = self.config
        if sample.ndim != 3 or sample.shape[-1] != cfg.pose_dim:
            raise ValueError(
                f"`sample` must have shape (batch, num_frames, {cfg.pose_dim}) (pose_dim); got {tuple(sample.shape)}."
            )
        b, t = sample.shape[:2]
        if t > cfg.max_frames:
            raise ValueError(f"`sample` has {t} frames; this model accepts at most {cfg.max_frames} (max_frames).")
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != b:
            raise ValueError(
                f"`encoder_hidden_states` must have shape ({b}, seq_len, {cfg.cross_attention_dim}) "
                f"(batch, seq_len, cross_attention_dim); got {tuple(encoder_hidden_states.shape)}."
            )
        if encoder_hidden_states.shape[-1] != cfg.cross_attention_dim:
            raise ValueError(
                f"`encoder_hidden_states` has width {encoder_hidden_states.shape[-1]}; this model expects "
                f"{cfg.cross_attention_dim} (cross_attention_dim)."
            )
        timestep = broadcast_timestep(timestep, b, sample.device)
        frame_mask = self._check_mask(attention_mask, (b, t), "attention_mask", "(batch, num_frames)", "frame")
        shape = tuple(encoder_hidden_states.shape[:2])
        gloss_mask = self._check_mask(
            encoder_attention_mask, shape, "encoder_attention_mask", "(batch, seq_len)", "token"
        )
        return timestep, frame_mask, gloss_mask

    @staticmethod
    def _check_mask(mask, shape, name, axes, what) -> torch.Tensor:
        if mask is None:
            return None
        if tuple(mask.shape) != shape:
            raise ValueError(f"`{name}` must have shape {shape} {axes}; got {tuple(mask.shape)}.")
        if mask.is_floating_point():
            mask = mask > 0.5
        mask = mask.bool()
        if not mask.any(1).all():
            raise ValueError(f"`{name}` has a sample with no real {what}.")
        return mask

    # ------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, float, int],
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        return_routing: bool = False,
        return_dict: bool = True,
    ) -> Union[SignMExDTransformerOutput, Tuple]:
        r"""Predict the clean poses from noisy ones.

        Args:
            sample (`torch.Tensor` of shape `(batch, num_frames, pose_dim)`): the noisy poses `x_t`.
            timestep (`torch.Tensor` of shape `(batch,)`, or a scalar): diffusion timesteps.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, seq_len, cross_attention_dim)`): gloss encoder
                states.
            encoder_attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1/True on real gloss
                tokens (default: all real).
            attention_mask (`torch.Tensor` of shape `(batch, num_frames)`, *optional*): 1/True on real frames
                (default: all real). Padded frames are never attended to and never routed to an expert, so real
                frames' outputs do not depend on them.
            return_routing (`bool`, *optional*, defaults to `False`): also return one `RoutingInfo` per MoE layer.
            return_dict (`bool`, *optional*, defaults to `True`): return a `SignMExDTransformerOutput`, else a tuple
                `(sample,)`, or `(sample, routing)` with `return_routing`.
        """
        # 1. check the inputs
        timestep, frame_mask, gloss_mask = self._check_inputs(
            sample, timestep, encoder_hidden_states, encoder_attention_mask, attention_mask
        )
        num_frames = sample.shape[1]

        # 2. timestep embedding
        temb = self.time_embedding(self.time_proj(timestep).to(sample.dtype))

        # 3. frame tokens: projected poses + sinusoidal frame position + timestep embedding
        positions = sinusoidal_embedding(torch.arange(num_frames, device=sample.device), self.config.hidden_dim)
        h = self.proj_in(sample) + positions.to(sample.dtype) + temb[:, None, :]

        # 4. the blocks (MHSA -> MHCA -> FFN or MoE), collecting the MoE layers' routing
        routing = []
        for block in self.blocks:
            args = (h, frame_mask, encoder_hidden_states, gloss_mask, return_routing)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                h, info = self._gradient_checkpointing_func(block, *args)
            else:
                h, info = block(*args)
            if info is not None:
                routing.append(info)

        # 5. output head
        out = self.proj_out(self.norm_out(h))
        routing = routing if return_routing else None
        if not return_dict:
            return (out,) if routing is None else (out, routing)
        return SignMExDTransformerOutput(sample=out, routing=routing)
