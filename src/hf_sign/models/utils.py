"""Small helpers shared by the hf-sign models: masked pooling and renaming the weights of older checkpoints."""

from __future__ import annotations

import re
from typing import MutableMapping, Sequence, Tuple

import torch

__all__ = ["masked_mean", "rename_state_dict_keys"]


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden_states` `(batch, seq_len, dim)` over the tokens where `mask` `(batch, seq_len)` is True."""
    weights = mask.to(hidden_states.dtype)[..., None]
    return (hidden_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def rename_state_dict_keys(
    state_dict: MutableMapping[str, torch.Tensor], renames: Sequence[Tuple[str, str]], prefix: str = ""
) -> MutableMapping[str, torch.Tensor]:
    """Rename, in place, the keys of `state_dict` that a model stored under older names.

    Args:
        state_dict (`dict`): the weights, possibly of a module nested under `prefix`.
        renames (sequence of `(pattern, replacement)`): `re.sub` rules applied to each key with `prefix` removed;
            a key that no rule changes stays as it is, so current checkpoints pass through untouched.
        prefix (`str`, *optional*, defaults to `""`): the module's prefix in `state_dict` (`load_state_dict` hooks
            receive it, e.g. `"denoiser."`).

    Returns:
        The same `state_dict`.
    """
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix):]
        new = local
        for pattern, replacement in renames:
            new = re.sub(pattern, replacement, new)
        if new != local:
            state_dict[prefix + new] = state_dict.pop(key)
    return state_dict
