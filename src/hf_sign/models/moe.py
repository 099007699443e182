"""Mixture-of-experts feed-forward layer shared by the hf-sign models: expert-choice and token-choice routing.

Every expert is a two-layer feed-forward network `E_i(x) = act(x W_1^i + b_1^i) W_2^i + b_2^i` with the shapes of
diffusers' `FeedForward(dim, inner_dim=ffn_dim)` (biases included, so one expert has exactly the parameters of the
dense FFN it replaces). The experts' weights are stacked, `(num_experts, ...)`, and applied with one batched
matrix product per layer of the expert: there is no Python loop over tokens, batch items or experts.

Expert choice (Zhou et al. 2022; Sign-MExD eqs. 5-8), `routing="expert_choice"`:

* affinities `A = softmax(x W_r)` over the experts (eq. 5), `W_r` the router ("expert embedding", no bias);
* each expert `i` takes the `C` tokens of the sequence with the highest `A[:, i]` (eq. 6); the gate of a chosen
  token is its affinity `A[s, i]`, every other gate is 0;
* `out[s] = sum_i G[s, i] * E_i(x[s])` over the experts that chose token `s` (eqs. 7-8). A token no expert chose
  gets 0 (the block's residual connection carries it through unchanged).

The capacity is `C = floor(S * capacity_factor / num_experts)` (eq. 6's `C = S f_c / E`, rounded down so that
the experts never process more than `f_c` token slots per token on average), with `S` the number of *real* tokens
of that sequence (`token_mask` True): a padded batch routes every sequence exactly as it would be routed alone,
and `C` is capped at `S` (with `capacity_factor > num_experts` an expert simply takes every real token). Padded
tokens get the score `-inf` before the top-C, so they are never chosen. A sequence whose `C` would be 0
(`S * capacity_factor < num_experts`) is refused with a `ValueError`.

Token choice (`routing="token_choice"`, for the comparison; Shazeer et al. 2017, GShard, Switch): the same
softmax affinities; every real token goes to its `top_k` experts. With `top_k > 1` the gates are the chosen
affinities renormalised to sum to 1 (GShard top-2, Mixtral); with `top_k == 1` the gate is the raw affinity
(Switch Transformer: renormalising a single gate would make it 1 and cut the router's gradient). There is no
expert capacity here (no token is dropped, every real token is processed by exactly `top_k` experts): the
comparison isolates the routing rule, not a capacity heuristic. Token choice needs a load-balancing loss to keep
its experts in use; `RoutingInfo` carries what such a loss needs (`router_probs`, `dispatch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from diffusers.utils import BaseOutput
from torch import nn

__all__ = ["ROUTING_TYPES", "RoutingInfo", "MoEFeedForward", "expert_capacity"]

ROUTING_TYPES = ("expert_choice", "token_choice")
_ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


@dataclass
class RoutingInfo(BaseOutput):
    """What one MoE layer did with a batch.

    Args:
        router_probs (`torch.Tensor` of shape `(batch, seq_len, num_experts)`): the affinities `A` (eq. 5), softmax
            over the experts (float32), for every token, padded ones included.
        dispatch (`torch.BoolTensor` of shape `(batch, seq_len, num_experts)`): True where expert `i` processed
            token `s`; always False on padded tokens.
        combine_weights (`torch.Tensor` of shape `(batch, seq_len, num_experts)`): the gates `G` (eq. 6) that
            weight each expert's output; 0 where `dispatch` is False.
        tokens_per_expert (`torch.LongTensor` of shape `(batch, num_experts)`): how many tokens each expert
            processed in each sequence (`capacity_per_sample` for every expert under expert choice).
        routing (`str`): `"expert_choice"` or `"token_choice"`.
        capacity (`int`, *optional*): expert choice: the largest `C` in the batch (the `C` of every sequence when
            none is padded); `None` under token choice.
        capacity_per_sample (`torch.LongTensor` of shape `(batch,)`, *optional*): expert choice: each sequence's `C`.
        top_k (`int`, *optional*): token choice: experts per token; `None` under expert choice.
    """

    router_probs: torch.Tensor
    dispatch: torch.Tensor
    combine_weights: torch.Tensor
    tokens_per_expert: torch.Tensor
    routing: str = "expert_choice"
    capacity: Optional[int] = None
    capacity_per_sample: Optional[torch.Tensor] = None
    top_k: Optional[int] = None


def expert_capacity(num_tokens: torch.Tensor, num_experts: int, capacity_factor: float) -> torch.LongTensor:
    """Expert-choice capacity per sequence: `min(floor(num_tokens * capacity_factor / num_experts), num_tokens)`.

    Raises a `ValueError` where a sequence's capacity would be 0 (`num_tokens * capacity_factor < num_experts`).
    A small epsilon keeps exact products (e.g. `6 * 0.5 / 3`) from rounding down through float error.
    """
    capacity = torch.floor(num_tokens.to(torch.float64) * capacity_factor / num_experts + 1e-9).long()
    capacity = torch.minimum(capacity, num_tokens.long())
    if bool((capacity < 1).any()):
        n = int(num_tokens[capacity < 1].min())
        raise ValueError(
            f"Expert-choice capacity C = floor(num_tokens * capacity_factor / num_experts) is 0 for a sequence of {n} "
            f"real token(s) with `num_experts`={num_experts} and `capacity_factor`={capacity_factor}: every sequence "
            "needs num_tokens * capacity_factor >= num_experts (use fewer experts, a larger capacity factor or "
            "longer sequences)."
        )
    return capacity


class MoEFeedForward(nn.Module):
    r"""Feed-forward layer made of `num_experts` experts and a router (see the module docstring).

    Args:
        hidden_dim (`int`): width of the tokens (input and output).
        ffn_dim (`int`): hidden width of every expert.
        num_experts (`int`): number of experts `E` (>= 1).
        routing (`str`, *optional*, defaults to `"expert_choice"`): `"expert_choice"` (each expert picks its top-C
            tokens, eqs. 5-8) or `"token_choice"` (each token picks its top-k experts).
        capacity_factor (`float`, *optional*, defaults to 2.0): `f_c` of expert choice, the average number of experts
            per token (`C = floor(S * f_c / E)`); must be > 0.
        top_k (`int`, *optional*, defaults to 2): experts per token under token choice; 1 <= top_k <= num_experts
            (checked only when `routing="token_choice"`).
        dropout (`float`, *optional*, defaults to 0.0): dropout after the experts' activation (as diffusers'
            `FeedForward`).
        activation (`str`, *optional*, defaults to `"gelu"`): `"gelu"`, `"gelu_tanh"`, `"relu"` or `"silu"`.
    """

    def __init__(
        self,
        hidden_dim: int,
        ffn_dim: int,
        num_experts: int,
        routing: str = "expert_choice",
        capacity_factor: float = 2.0,
        top_k: int = 2,
        dropout: float = 0.0,
        activation: str = "gelu",
    ):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"`num_experts` must be >= 1; got {num_experts}.")
        if routing not in ROUTING_TYPES:
            raise ValueError(f"`routing` must be one of {ROUTING_TYPES}; got {routing!r}.")
        if not capacity_factor > 0:
            raise ValueError(f"`capacity_factor` must be > 0; got {capacity_factor}.")
        if routing == "token_choice" and not 1 <= top_k <= num_experts:
            raise ValueError(f"`top_k` must be between 1 and `num_experts` ({num_experts}); got {top_k}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {tuple(_ACTIVATIONS)}; got {activation!r}.")
        self.num_experts = num_experts
        self.routing = routing
        self.capacity_factor = float(capacity_factor)
        self.top_k = top_k
        self.act = _ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

        # 1. router W_r (the experts' embeddings), no bias as in eq. 5
        self.router = nn.Linear(hidden_dim, num_experts, bias=False)
        # 2. the experts, stacked: x @ w1[i] + b1[i] -> act -> @ w2[i] + b2[i]; initialised as nn.Linear is
        self.w1 = nn.Parameter(torch.empty(num_experts, hidden_dim, ffn_dim))
        self.b1 = nn.Parameter(torch.empty(num_experts, ffn_dim))
        self.w2 = nn.Parameter(torch.empty(num_experts, ffn_dim, hidden_dim))
        self.b2 = nn.Parameter(torch.empty(num_experts, hidden_dim))
        self.reset_expert_parameters()

    def reset_expert_parameters(self) -> None:
        """`nn.Linear`'s default initialisation for every expert: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = 1.0 / math.sqrt(weight.shape[1])
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    @property
    def parameters_per_expert(self) -> int:
        """Parameters of one expert (`2 * hidden_dim * ffn_dim + ffn_dim + hidden_dim`)."""
        return sum(p[0].numel() for p in (self.w1, self.b1, self.w2, self.b2))

    @property
    def experts_per_token(self) -> float:
        """Average number of experts that process a token: `min(f_c, E)` (expert choice) or `top_k`."""
        if self.routing == "expert_choice":
            return min(self.capacity_factor, float(self.num_experts))
        return float(self.top_k)

    def _experts(self, tokens: torch.Tensor) -> torch.Tensor:
        """Apply expert `i` to `tokens[i]`: `(num_experts, n, hidden_dim)` -> `(num_experts, n, hidden_dim)`."""
        h = self.dropout(self.act(torch.baddbmm(self.b1[:, None, :], tokens, self.w1)))
        return torch.baddbmm(self.b2[:, None, :], h, self.w2)

    def forward(
        self, hidden_states: torch.Tensor, token_mask: Optional[torch.Tensor] = None, return_routing: bool = True
    ) -> Tuple[torch.Tensor, Optional[RoutingInfo]]:
        r"""Route the tokens of `hidden_states` to the experts and combine their outputs.

        Args:
            hidden_states (`torch.Tensor` of shape `(batch, seq_len, hidden_dim)`): the tokens.
            token_mask (`torch.BoolTensor` of shape `(batch, seq_len)`, *optional*): True on real tokens; padded
                tokens are never routed and their output is 0. Default: every token is real.
            return_routing (`bool`, *optional*, defaults to `True`): build the `RoutingInfo`; `False` returns
                `None` in its place and skips the statistics (sampling speed).

        Returns:
            `(output (batch, seq_len, hidden_dim), RoutingInfo or None)`.
        """
        batch, seq_len, _ = hidden_states.shape
        if token_mask is not None:
            if tuple(token_mask.shape) != (batch, seq_len):
                raise ValueError(
                    f"`token_mask` must have shape ({batch}, {seq_len}) (batch, seq_len); "
                    f"got {tuple(token_mask.shape)}."
                )
            token_mask = token_mask.bool()

        # 1. affinities A = softmax(x W_r) over the experts (eq. 5), in float32 as attention softmaxes are
        probs = self.router(hidden_states).softmax(dim=-1, dtype=torch.float32)

        # 2. route, run the experts and combine (eqs. 6-8)
        if self.routing == "expert_choice":
            return self._expert_choice(hidden_states, probs, token_mask, return_routing)
        if token_mask is None:
            token_mask = torch.ones(batch, seq_len, dtype=torch.bool, device=hidden_states.device)
        return self._token_choice(hidden_states, probs, token_mask, return_routing)

    def _expert_choice(self, x, probs, token_mask: Optional[torch.Tensor], return_routing: bool):
        batch, seq_len, dim = x.shape
        num_experts = self.num_experts

        # 1. capacity per sequence from its real tokens; the top-C of the largest C, then each sequence keeps its own
        #    first C slots (top-k is sorted, so those are exactly its top-C; padding, at -inf, is never among them).
        #    Without padding every sequence has the same C and every slot is kept (no mask arithmetic).
        scores = probs.transpose(1, 2)  # (B, E, S)
        if token_mask is None:
            capacity = expert_capacity(torch.tensor([seq_len]), num_experts, self.capacity_factor)
            c_max = int(capacity)
            capacity = capacity.to(x.device).expand(batch)
            gate, index = scores.topk(c_max, dim=-1, sorted=False)  # (B, E, C)
            kept = None
        else:
            capacity = expert_capacity(token_mask.sum(1), num_experts, self.capacity_factor)
            c_max = int(capacity.max())
            scores = scores.masked_fill(~token_mask[:, None, :], float("-inf"))
            gate, index = scores.topk(c_max, dim=-1, sorted=True)
            kept = (torch.arange(c_max, device=x.device)[None, None, :] < capacity[:, None, None]).expand_as(index)
            gate = torch.where(kept, gate, torch.zeros_like(gate))  # eq. 6: G = A on the chosen tokens, else 0

        # 2. every expert's chosen tokens in one expert-major buffer (E, B * C, D) (one copy), and the experts
        flat_index = (index + torch.arange(batch, device=x.device)[:, None, None] * seq_len).transpose(0, 1)
        flat_index = flat_index.reshape(-1)  # (E * B * C,): expert, then sequence, then slot
        chosen = x.reshape(batch * seq_len, dim).index_select(0, flat_index).view(num_experts, batch * c_max, dim)
        expert_out = self._experts(chosen)

        # 3. eq. 8: out[s] = sum_i G[s, i] E_i(x[s]), summed into the token positions
        weighted = expert_out * gate.transpose(0, 1).reshape(num_experts, -1, 1).to(expert_out.dtype)
        out = x.new_zeros(batch * seq_len, dim).index_add_(0, flat_index, weighted.view(-1, dim))
        out = out.view(batch, seq_len, dim)
        if not return_routing:
            return out, None

        # 4. statistics: which experts chose each token, and their gates
        kept = torch.ones_like(index, dtype=torch.bool) if kept is None else kept
        dispatch = torch.zeros(batch, num_experts, seq_len, dtype=torch.bool, device=x.device)
        dispatch.scatter_(2, index, kept)
        combine = torch.zeros(batch, num_experts, seq_len, dtype=probs.dtype, device=x.device)
        combine.scatter_(2, index, gate)
        info = RoutingInfo(
            router_probs=probs,
            dispatch=dispatch.transpose(1, 2),
            combine_weights=combine.transpose(1, 2),
            tokens_per_expert=capacity[:, None].expand(batch, num_experts).clone(),
            routing="expert_choice",
            capacity=c_max,
            capacity_per_sample=capacity.clone(),
        )
        return out, info

    def _token_choice(self, x, probs, token_mask: torch.Tensor, return_routing: bool):
        batch, seq_len, dim = x.shape
        num_experts, k = self.num_experts, self.top_k

        # 1. every token's top-k experts and gates (renormalised for k > 1, raw for k = 1: see the module docstring)
        top_probs, top_experts = probs.topk(k, dim=-1)  # (B, S, k)
        gates = top_probs / top_probs.sum(-1, keepdim=True) if k > 1 else top_probs
        gates = gates * token_mask[..., None]

        # 2. group the (token, expert) assignments by expert: padded tokens go to an extra, discarded bucket, and
        #    each assignment gets a slot in its expert's buffer (its rank among that expert's assignments)
        expert_of = torch.where(token_mask[..., None], top_experts, num_experts).reshape(-1)  # (B * S * k,)
        token_of = torch.arange(batch * seq_len, device=x.device).repeat_interleave(k)
        order = torch.argsort(expert_of, stable=True)
        counts = torch.bincount(expert_of, minlength=num_experts + 1)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(order)
        slot[order] = torch.arange(order.numel(), device=x.device) - starts[expert_of[order]]
        real = expert_of < num_experts
        width = max(int(counts[:num_experts].max()), 1)

        # 3. the experts on their buffers (E, width, D); empty slots hold zeros and are never read back
        flat = x.reshape(batch * seq_len, dim)
        buffer = x.new_zeros(num_experts, width, dim)
        buffer[expert_of[real], slot[real]] = flat[token_of[real]]
        expert_out = self._experts(buffer)

        # 4. combine: out[s] = sum over its k experts of gate * E_i(x[s])
        weighted = expert_out[expert_of[real], slot[real]] * gates.reshape(-1)[real, None].to(x.dtype)
        out = torch.zeros_like(flat).index_add_(0, token_of[real], weighted).reshape(batch, seq_len, dim)
        if not return_routing:
            return out, None

        # 5. statistics
        dispatch = torch.zeros(batch, seq_len, num_experts, dtype=torch.bool, device=x.device)
        dispatch.scatter_(2, top_experts, token_mask[..., None].expand(-1, -1, k))
        combine = torch.zeros_like(probs).scatter_(2, top_experts, gates.to(probs.dtype))
        info = RoutingInfo(
            router_probs=probs,
            dispatch=dispatch,
            combine_weights=combine,
            tokens_per_expert=dispatch.sum(1),
            routing="token_choice",
            top_k=k,
        )
        return out, info
