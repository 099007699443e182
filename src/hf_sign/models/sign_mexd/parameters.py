"""Parameter counts of Sign-MExD (total and active per token) and the Table I configurations XL / XXL / 3XL.

"Active parameters per token" are the parameters one pose frame passes through. Everything outside the experts is
dense and counts once; an MoE layer counts its router plus `k` experts' worth, `k` the average number of experts
that process a frame: `f_c` under expert choice (each of the `E` experts takes `C = T f_c / E` of the `T` frames,
so `E C / T = f_c` experts per frame on average; the paper: f_c "reflects the average number of experts assigned
to process each token"), `top_k` under token choice. `count_parameters(..., experts_per_token=k)` counts with
another `k`.

How Table I's widths were derived (the paper gives no widths; its counts pin them down):

* The sparse totals grow with the experts by the same amount at every depth (4E - dense = 12.59M, 8E - 4E =
  16.81M, 16E - 8E = 33.61M at XL, XXL and 3XL): there is **one** MoE layer ("n experts in a single MoE layer"),
  whatever the depth, and one expert has ~4.20M parameters = `2 * 512 * 4096 + 4096 + 512` (width 512, experts
  512 -> 4096 -> 512).
* A block adds 3.15M (XXL - XL = 6.30M for two blocks, 3XL - XXL = 12.61M for four): `12 * 512^2` plus biases =
  MHSA (1.05M) + MHCA from 512-wide gloss states (1.05M) + an FFN 512 -> 1024 -> 512 (1.05M), the width and FFN
  size of MDM's motion diffusion transformer (Tevet et al. 2023). So the MoE layer's FFN is
  4x wider than the other blocks' (`moe_ffn_dim=4096`, `ffn_dim=1024`), in the dense counterpart as well.
* What remains of the dense XL total (16.94M - 2 blocks - the wide FFN's extra) is the input/output projections for
  PHOENIX14T's 50 3-D joints (`pose_dim=150`, Progressive Transformers' skeleton), the timestep MLP on 256
  sinusoidal channels (DiT's `frequency_embedding_size`, `timestep_channels=256`), and the gloss encoder, which
  the counts only fit when it is included (it is trained with the model): a 2-layer CLIP text transformer of width
  512 (MLP 2048)
  over PHOENIX14T's 1,085 glosses plus 4 special tokens, 128 positions (`TABLE_I_GLOSS_ENCODER`).

With these, totals match Table I within 0.05% (`table_i_parameter_counts`; the last 0.01-0.02M are at the level of
the paper's rounding and of bias/normalisation choices it does not state). The active counts do not: the paper's
"Active Params" (16.78M / 23.07M / 35.65M) sit 0.56-0.94% *below* the dense totals, i.e. about one expert per frame
minus 0.16-0.20M, the same for 4E, 8E and 16E, while eqs. 5-8 with f_c = 2.0 put every frame through two experts on
average (dense + one expert + router: 21.14M at XL). No reading of the paper's definition gives both its f_c and its
active counts; `experts_per_token=1` gives the closest ones (the dense total plus the router).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from ..moe import MoEFeedForward
from .transformer import SignMExDTransformer

__all__ = ["TABLE_I", "TABLE_I_GLOSS_ENCODER", "count_parameters", "table_i_shapes", "table_i_parameter_counts"]

# Table I of the paper, as printed: total parameters per configuration and the active parameters per token
# ("Active Params Sign-MExD", one value per depth for 4E, 8E and 16E; a dense model's active count is its total).
TABLE_I: Dict[str, Dict[str, int]] = {}
for _size, _dense, _4e, _8e, _16e, _active in (
    ("xl", 16_940_000, 29_530_000, 46_340_000, 79_950_000, 16_780_000),
    ("xxl", 23_240_000, 35_840_000, 52_650_000, 86_250_000, 23_070_000),
    ("3xl", 35_850_000, 48_450_000, 65_260_000, 98_860_000, 35_650_000),
):
    TABLE_I[f"{_size}-dense"] = {"total": _dense, "active_per_token": _dense}
    for _n, _total in ((4, _4e), (8, _8e), (16, _16e)):
        TABLE_I[f"{_size}-{_n}e"] = {"total": _total, "active_per_token": _active}

# The gloss encoder counted with the Table I configurations (`CLIPTextConfig` fields; see the module docstring).
TABLE_I_GLOSS_ENCODER: Dict[str, int] = dict(
    vocab_size=1085 + 4,
    hidden_size=512,
    num_hidden_layers=2,
    num_attention_heads=8,
    intermediate_size=2048,
    max_position_embeddings=128,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=3,
)

_TABLE_I_DEPTHS = {"xl": 2, "xxl": 4, "3xl": 8}


def table_i_shapes() -> Dict[str, Dict[str, Any]]:
    """`SignMExDTransformer` config kwargs of Table I, by name: `"xl-dense"`, `"xl-4e"`, ..., `"3xl-16e"`.

    Width 512, 8 heads, block FFN 1024, one MoE layer (the last block) whose FFN (each expert, or the dense FFN of the
    dense counterpart) is 4096 wide, f_c = 2.0, expert choice, 150 pose features (see the module docstring).
    """
    shapes = {}
    for size, depth in _TABLE_I_DEPTHS.items():
        for experts in (0, 4, 8, 16):
            shapes[f"{size}-{experts}e" if experts else f"{size}-dense"] = dict(
                pose_dim=150,
                hidden_dim=512,
                num_layers=depth,
                num_heads=8,
                ffn_dim=1024,
                cross_attention_dim=512,
                num_experts=experts,
                moe_layers=[depth - 1],
                routing="expert_choice",
                capacity_factor=2.0,
                moe_ffn_dim=4096,
            )
    return shapes


def _module_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _gloss_encoder_count(gloss_encoder) -> int:
    if gloss_encoder is None:
        return 0
    if isinstance(gloss_encoder, int):
        return gloss_encoder
    if isinstance(gloss_encoder, nn.Module):
        return _module_count(gloss_encoder)
    from transformers import CLIPTextConfig, CLIPTextModel

    config = gloss_encoder if isinstance(gloss_encoder, CLIPTextConfig) else CLIPTextConfig(**dict(gloss_encoder))
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        return _module_count(CLIPTextModel(config))


def count_parameters(
    config_or_model: Union[SignMExDTransformer, Mapping[str, Any]],
    experts_per_token: Optional[float] = None,
    gloss_encoder: Union[None, int, nn.Module, Mapping[str, Any], Any] = None,
) -> Dict[str, int]:
    """Total parameters and active parameters per token of a `SignMExDTransformer` (see the module docstring).

    Args:
        config_or_model (`SignMExDTransformer` or `dict`): a model, or its config (kwargs or `model.config`); a
            config is instantiated on the meta device (no memory, instant).
        experts_per_token (`float`, *optional*): experts that process a frame on average; defaults to each MoE
            layer's own (`min(f_c, E)` under expert choice, `top_k` under token choice).
        gloss_encoder (*optional*): also count a gloss encoder (dense: it adds to both counts): a module, a
            `CLIPTextConfig` or its kwargs (e.g. `TABLE_I_GLOSS_ENCODER`), or a parameter count.

    Returns:
        `{"total": int, "active_per_token": int}`.
    """
    if isinstance(config_or_model, SignMExDTransformer):
        model = config_or_model
    else:
        config = {k: v for k, v in dict(config_or_model).items() if not k.startswith("_")}
        with torch.device("meta"):
            model = SignMExDTransformer(**config)
    total = _module_count(model)
    active = float(total)
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            k = module.experts_per_token if experts_per_token is None else float(experts_per_token)
            if not 0 < k <= module.num_experts:
                raise ValueError(
                    f"`experts_per_token` must be in (0, {module.num_experts}] (num_experts); got {experts_per_token}."
                )
            active -= (module.num_experts - k) * module.parameters_per_expert
    extra = _gloss_encoder_count(gloss_encoder)
    return {"total": total + extra, "active_per_token": int(round(active)) + extra}


def table_i_parameter_counts(experts_per_token: Optional[float] = None) -> Dict[str, Dict[str, int]]:
    """Ours beside the paper's, per Table I configuration: `{name: {"total", "active_per_token", "paper_total",
    "paper_active_per_token"}}`, ours counting the transformer and the gloss encoder `TABLE_I_GLOSS_ENCODER`."""
    gloss = _gloss_encoder_count(TABLE_I_GLOSS_ENCODER)
    rows = {}
    for name, kwargs in table_i_shapes().items():
        ours = count_parameters(kwargs, experts_per_token=experts_per_token, gloss_encoder=gloss)
        paper = TABLE_I[name]
        rows[name] = {**ours, "paper_total": paper["total"], "paper_active_per_token": paper["active_per_token"]}
    return rows
