"""The gate of Stable Signer's SLP-MoE (paper, section 2.3): semantic query -> weights over K pose experts.

`w_k = exp(q^T W_k) / sum_j exp(q^T W_j)` with a gloss-conditioned query `q`. The paper writes `q = Pool(H)`, the
pooled linker encoder states; a sentence-level query alone cannot tell two glosses of one sentence apart, so the
query of gloss `i` is `[Pool(H); d_i]`, the pooled encoder states beside the linker decoder's state at that
gloss (its input is gloss `i`, it has seen the glosses before it): `query_dim = 2 * d_model`. With
`hidden_dim = 0` the gate is the paper's single linear map `W`; `hidden_dim > 0` puts one hidden layer in front
(the "Pose Chosen Network" MLP of Fig. 2).

Each expert `k` retrieves candidate `k` of the gloss from the [`~hf_sign.data.pose_bank.PoseBank`]; at inference
the top-gated expert's clip is used, in training the blend `P = sum_k w_k P_k`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from torch import nn

__all__ = ["PoseExpertGate", "PoseExpertGateOutput"]


@dataclass
class PoseExpertGateOutput(BaseOutput):
    """Output of [`PoseExpertGate`].

    Args:
        weights (`torch.Tensor` of shape `(N, num_experts)`): the gate `w`, rows sum to 1.
        logits (`torch.Tensor` of shape `(N, num_experts)`): the pre-softmax scores `q^T W_k`.
    """

    weights: torch.Tensor
    logits: torch.Tensor


class PoseExpertGate(ModelMixin, ConfigMixin):
    """Softmax gate over `num_experts` pose experts.

    Args:
        query_dim (`int`, *optional*, defaults to 1536): width of the query (2 x the linker's `d_model`).
        num_experts (`int`, *optional*, defaults to 4): `K`, candidates per gloss in the pose bank.
        hidden_dim (`int`, *optional*, defaults to 0): 0 for the paper's linear gate, else the width of one hidden
            GELU layer in front of it.
        dropout (`float`, *optional*, defaults to 0.0): dropout on the query.
    """

    @register_to_config
    def __init__(self, query_dim: int = 1536, num_experts: int = 4, hidden_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"`num_experts` must be >= 1; got {num_experts}.")
        if query_dim < 1 or hidden_dim < 0:
            raise ValueError(f"`query_dim` must be >= 1 and `hidden_dim` >= 0; got {query_dim}, {hidden_dim}.")
        self.query_dropout = nn.Dropout(dropout)
        self.hidden = nn.Sequential(nn.Linear(query_dim, hidden_dim), nn.GELU()) if hidden_dim else nn.Identity()
        self.proj = nn.Linear(hidden_dim or query_dim, num_experts)

    def forward(
        self, query: torch.Tensor, expert_mask: Optional[torch.Tensor] = None, return_dict: bool = True
    ) -> PoseExpertGateOutput:
        """Gate weights for `query` `(N, query_dim)`.

        Args:
            query (`torch.Tensor` of shape `(N, query_dim)`): one query per gloss.
            expert_mask (`torch.Tensor` of shape `(N, num_experts)`, *optional*): False for experts that may not be
                chosen (they get weight 0); every row needs one True.
            return_dict (`bool`, *optional*, defaults to `True`): a `PoseExpertGateOutput` or a tuple.
        """
        if query.ndim != 2 or query.shape[-1] != self.config.query_dim:
            raise ValueError(f"`query` must have shape (N, {self.config.query_dim}); got {tuple(query.shape)}.")
        # 1. scores q^T W_k
        logits = self.proj(self.hidden(self.query_dropout(query)))
        # 2. experts that may not be chosen drop out of the softmax
        if expert_mask is not None:
            if not bool(expert_mask.any(dim=-1).all()):
                raise ValueError("`expert_mask` leaves a row without any expert.")
            logits = logits.masked_fill(~expert_mask.bool(), float("-inf"))
        # 3. softmax over the experts
        weights = logits.softmax(dim=-1)
        if not return_dict:
            return (weights, logits)
        return PoseExpertGateOutput(weights=weights, logits=logits)
