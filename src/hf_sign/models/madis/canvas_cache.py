"""An approximate key/value cache for masked-diffusion sampling (dKV-Cache's delayed caching, "decode" variant).

A bidirectional LM has no exact KV cache: every position attends to every other, so a key or value of any layer
above the first changes whenever any token of the sequence does. Between two unmasking steps most of the sequence
does not change, though, and its keys and values barely move (dKV-Cache, Ma et al. 2025; Fast-dLLM, Wu et al. 2025).
[`MaskedDiffusionCache`] keeps every layer's keys and values of the whole sequence `[text, canvas]` from a full pass
and lets a later pass run the backbone on a few *active* positions only: their new keys and values are written into
the store at their positions, and their queries attend over the whole store. The caller chooses the active positions
([`active_canvas_positions`]): the still-masked ones (their predictions are needed) and those whose token changed since
the store last saw them (a token unmasked at the previous step is recomputed once with its real token, then frozen:
the delay of dKV-Cache, which is what makes the first layer exact). The text is never recomputed. Restricted to the
masked positions that the current checkpoint stage may unmask, with a full pass at each stage's start, this is
Fast-dLLM's block-wise cache with the stages as blocks.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

__all__ = ["MaskedDiffusionCache", "MaskedDiffusionCacheLayer", "active_canvas_positions"]


class MaskedDiffusionCacheLayer(CacheLayerMixin):
    """One layer's store: keys and values `(B, num_key_value_heads, N, head_dim)` of every position of the sequence.

    The first `update` (a full pass) stores what it gets; each later one writes its keys and values at `positions`
    `(B, q)` (indices into the `N` positions) and returns the whole store.
    """

    is_sliding = False

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.keys, self.values = key_states.clone(), value_states.clone()
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, positions: Optional[torch.LongTensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            # the full pass attends over its own keys; the store keeps a copy for the partial passes
            self.lazy_initialization(key_states, value_states)
            return key_states, value_states
        if positions is None or positions.shape != key_states.shape[:1] + key_states.shape[2:3]:
            raise ValueError(
                f"A partial pass needs `positions` of shape {tuple(key_states.shape[:1] + key_states.shape[2:3])} "
                f"(batch, recomputed positions); got {None if positions is None else tuple(positions.shape)}."
            )
        index = positions[:, None, :, None].expand_as(key_states)
        self.keys.scatter_(2, index, key_states)
        self.values.scatter_(2, index, value_states)
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> Tuple[int, int]:
        """A partial pass attends over the whole store (`kv_offset` 0); the full pass over its own positions."""
        return (self.keys.shape[-2] if self.is_initialized else query_length), 0

    def get_seq_length(self) -> int:
        return self.keys.shape[-2] if self.is_initialized else 0

    def get_max_length(self) -> int:
        return self.get_seq_length() if self.is_initialized else -1


class MaskedDiffusionCache(Cache):
    """The store of a bidirectional LM's keys and values for partial passes (see the module docstring).

    Use: a forward pass over the whole sequence with a fresh cache fills it; then, before each partial pass,
    [`set_positions`] names the positions the pass recomputes (its queries, in input order), and the model's forward
    gets those positions' tokens, their real `position_ids` (RoPE) and the padding mask of the whole sequence.

    Args:
        num_hidden_layers (`int`): the backbone's number of layers.
    """

    def __init__(self, num_hidden_layers: int):
        super().__init__(layers=[MaskedDiffusionCacheLayer() for _ in range(num_hidden_layers)])
        self.positions: Optional[torch.LongTensor] = None

    def set_positions(self, positions: torch.LongTensor) -> None:
        """The positions `(B, q)` (indices into the stored sequence) that the next pass recomputes."""
        if not self.is_initialized:
            raise ValueError("`set_positions` needs a filled cache: run a full pass with this cache first.")
        length = self.get_seq_length()
        if positions.ndim != 2 or bool(((positions < 0) | (positions >= length)).any()):
            raise ValueError(f"`positions` must be a (batch, q) tensor of indices in [0, {length}).")
        self.positions = positions

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        layer = self.layers[layer_idx]
        return layer.update(key_states, value_states, self.positions if layer.is_initialized else None)


def active_canvas_positions(
    sample: torch.LongTensor,
    seen: torch.LongTensor,
    mask_token_id: int,
    unmaskable: Optional[torch.BoolTensor] = None,
) -> torch.LongTensor:
    """The canvas positions a partial pass recomputes: masked (and unmaskable), or changed since the cache saw them.

    Args:
        sample (`torch.LongTensor` of shape `(B, M, P)`): the canvas now.
        seen (`torch.LongTensor` of shape `(B, M, P)`): the canvas whose keys and values the cache holds.
        mask_token_id (`int`): the `<mask>` id.
        unmaskable (`torch.BoolTensor` of shape `(M,)`, *optional*): only the masked positions the step may unmask
            are recomputed (the others keep their stored keys and values); all masked positions by default.

    Returns:
        `torch.LongTensor` of shape `(B, q)`: per row its active positions in increasing order, `q` the largest
        count of a row; a row with fewer repeats its first one (the same computation, written twice with the same
        result), a row with none recomputes its position 0 (only a callback that rewrites the canvas can cause it).
        `q` is 0 when no row has an active position.
    """
    masked = (sample == mask_token_id).all(dim=-1)
    if unmaskable is not None:
        masked &= unmaskable.to(masked.device)
    active = masked | (sample != seen).any(dim=-1)
    counts = active.sum(dim=1, keepdim=True)
    order = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, : int(counts.max())]
    slot = torch.arange(order.shape[1], device=order.device)
    return torch.where(slot < counts, order, order[:, :1])
