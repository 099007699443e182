"""Masked multi-head attention shared by the hf-sign models: self- and cross-attention over token sequences.

`MaskedAttention` computes `softmax(Q K^T / sqrt(d_head))` explicitly, applies a boolean mask, and can hand the
probabilities back (`output_attentions=True`) from the same code path that produces the output, so what a loss or
a plot reads is exactly what the model used.

Why not diffusers' own `diffusers.models.attention_processor.Attention`:

* its processors return only the hidden states: diffusers models have no `output_attentions` (the Attend-and-Excite
  pipeline collects maps with a custom processor writing into a side store), while Sign-SALD's attention-guidance
  loss needs the probabilities of every layer as a return value;
* its masks are additive float masks reshaped by `prepare_attention_mask` to `(batch * heads, 1, seq_len)`; padded
  pose frames and text tokens here are boolean key-padding masks `(batch, seq_len)`, the transformers convention;
* its `to_out` is a `ModuleList([Linear, Dropout])` (state-dict keys `to_out.0.*`) with dropout on the output; this
  block keeps the parameter names `to_q`, `to_k`, `to_v` and `to_out` (one `Linear`) of the Sign-SALD checkpoints
  and drops attention probabilities, as `torch.nn.functional.scaled_dot_product_attention(dropout_p=...)` does.

The projections are named as diffusers names them, so a diffusers `Attention` could take over the weights
(`to_out.weight` -> `to_out.0.weight`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MaskedAttention"]


class MaskedAttention(nn.Module):
    r"""Multi-head scaled dot-product attention with a boolean mask, returning its probabilities on request.

    `out = to_out(softmax(Q K^T / sqrt(dim_head), masked) V)` with `Q = to_q(hidden_states)` and `K`, `V` from
    `encoder_hidden_states` (cross-attention) or from `hidden_states` (self-attention).

    Args:
        query_dim (`int`): width of `hidden_states` and of the output.
        heads (`int`, *optional*, defaults to 8): number of attention heads; must divide `query_dim`.
        cross_attention_dim (`int`, *optional*): width of `encoder_hidden_states`; defaults to `query_dim`.
        dropout (`float`, *optional*, defaults to 0.0): dropout on the attention probabilities (training only; the
            returned probabilities are taken before it).
        bias (`bool`, *optional*, defaults to `True`): biases on the query, key and value projections (the output
            projection always has one).
    """

    def __init__(
        self,
        query_dim: int,
        heads: int = 8,
        cross_attention_dim: Optional[int] = None,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        if heads < 1 or query_dim % heads:
            raise ValueError(f"`query_dim` ({query_dim}) must be divisible by `heads` ({heads}).")
        context_dim = query_dim if cross_attention_dim is None else cross_attention_dim
        self.heads = heads
        self.dropout = dropout
        self.scale = (query_dim // heads) ** -0.5
        self.to_q = nn.Linear(query_dim, query_dim, bias=bias)
        self.to_k = nn.Linear(context_dim, query_dim, bias=bias)
        self.to_v = nn.Linear(context_dim, query_dim, bias=bias)
        self.to_out = nn.Linear(query_dim, query_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        r"""Attend from `hidden_states` to `encoder_hidden_states` (default: to `hidden_states` itself).

        Args:
            hidden_states (`torch.Tensor` of shape `(batch, query_len, query_dim)`): the queries.
            encoder_hidden_states (`torch.Tensor` of shape `(batch, key_len, cross_attention_dim)`, *optional*): the
                keys and values; `None` for self-attention.
            attention_mask (`torch.Tensor`, *optional*): boolean (or 0/1 integer), True where a query may attend: a
                key-padding mask `(batch, key_len)` or a full mask `(batch, query_len, key_len)`. Every query should
                keep at least one key; one that keeps none attends uniformly and its output is meaningless (mask it
                downstream, as padded queries are).
            output_attentions (`bool`, *optional*, defaults to `False`): also return the probabilities.

        Returns:
            `(hidden_states (batch, query_len, query_dim), probabilities (batch, heads, query_len, key_len) or None)`.
            The probabilities sum to 1 over the kept keys and are 0 on masked keys.
        """
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, query_len = hidden_states.shape[:2]
        key_len = context.shape[1]
        if context.shape[0] != batch:
            raise ValueError(
                f"`encoder_hidden_states` has batch size {context.shape[0]}; `hidden_states` has {batch}."
            )

        # 1. project and split into heads: (batch * heads, len, dim_head)
        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2).flatten(0, 1)

        query = split_heads(self.to_q(hidden_states))
        key, value = split_heads(self.to_k(context)), split_heads(self.to_v(context))

        # 2. scores `bias + scale * Q K^T` in one batched matrix product (as diffusers' `get_attention_scores`); the
        #    bias is 0 where a query may attend and the dtype's lowest value elsewhere, so exp gives exactly 0 there
        #    and a row without any valid key stays finite
        bias = self._mask_bias(attention_mask, batch, query_len, key_len, query.dtype, query.device)
        scores = torch.baddbmm(bias, query, key.transpose(1, 2), alpha=self.scale)

        # 3. probabilities (softmax in float32, as diffusers' `upcast_softmax`) and the weighted values
        probs = scores.softmax(dim=-1, dtype=torch.float32).to(value.dtype)
        out = torch.bmm(F.dropout(probs, self.dropout, self.training), value)

        # 4. merge the heads and project out
        out = self.to_out(out.unflatten(0, (batch, self.heads)).transpose(1, 2).flatten(2))
        return out, (probs.unflatten(0, (batch, self.heads)) if output_attentions else None)

    def _mask_bias(self, mask, batch: int, query_len: int, key_len: int, dtype, device) -> torch.Tensor:
        """Additive bias for the scores: `(batch * heads, 1 or query_len, key_len)`, or a scalar 0 without a mask."""
        if mask is None:
            return torch.zeros((), dtype=dtype, device=device)
        if mask.is_floating_point():
            raise ValueError(
                "`attention_mask` must be boolean (or 0/1 integers), True where a query may attend; got a "
                f"{mask.dtype} tensor (additive float masks are not supported)."
            )
        if tuple(mask.shape) == (batch, key_len):
            mask = mask[:, None, :]
        elif tuple(mask.shape) != (batch, query_len, key_len):
            raise ValueError(
                f"`attention_mask` must have shape ({batch}, {key_len}) (batch, key_len) or ({batch}, {query_len}, "
                f"{key_len}) (batch, query_len, key_len); got {tuple(mask.shape)}."
            )
        bias = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask.bool(), torch.finfo(dtype).min)
        return bias.repeat_interleave(self.heads, dim=0)  # the (batch, heads) order of `split_heads`
