"""Building blocks shared by the evaluator models (recogniser and contrastive evaluator).

Both evaluators read pose sequences in the *dataset's units* and standardise them with statistics that
live inside the model (`pose_mean` / `pose_std` buffers), so the same evaluator can score any system's
output without knowing how that system normalised its data. This module holds the pieces whose logic is
really the same in both models: input validation and padding, the pre-LayerNorm transformer block, the
pose encoder (frame MLP -> temporal conv downsampling -> sinusoidal positions -> blocks) and the
word/character tokeniser used for vocabularies that are saved in the config.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.normalization import PoseNormalizer

PoseInput = Union[torch.Tensor, np.ndarray, Sequence[Union[torch.Tensor, np.ndarray]]]

_WORD_RE = re.compile(r"[\w']+")


# ----------------------------------------------------------------------------------------------- tokens
def word_tokens(text: str, lowercase: bool = True) -> List[str]:
    """Word tokens of `text`: `[\\w']+` runs, lowercased by default (punctuation carries no sign)."""
    return _WORD_RE.findall(text.lower() if lowercase else text)


def char_tokens(text: str, lowercase: bool = True) -> List[str]:
    """Character tokens of `text`, with runs of whitespace collapsed to a single space."""
    text = " ".join(text.split())
    return list(text.lower() if lowercase else text)


def build_vocab(sequences: Iterable[Sequence[str]], specials: Sequence[str], min_frequency: int = 1) -> List[str]:
    """`specials` followed by every token seen at least `min_frequency` times, sorted (deterministic ids)."""
    counts = Counter(tok for seq in sequences for tok in seq)
    tokens = sorted(tok for tok, n in counts.items() if n >= min_frequency and tok not in specials)
    return list(specials) + tokens


# ------------------------------------------------------------------------------------------ pose inputs
def as_pose_batch(
    poses: PoseInput,
    attention_mask: Optional[Union[torch.Tensor, np.ndarray]],
    feature_dim: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    check_finite: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate `poses` and return `(poses (B, T, D) float tensor, attention_mask (B, T) bool tensor)`.

    `poses` is either one padded array/tensor of shape (batch, frames, feature_dim) with an optional
    `attention_mask` (True on real frames), or a list of (frames_i, feature_dim) arrays of any lengths,
    which are zero-padded here. Raises `ValueError` naming the field and what was expected.
    """
    if isinstance(poses, (list, tuple)):
        if len(poses) == 0:
            raise ValueError("`poses` is an empty batch; pass at least one pose sequence.")
        if attention_mask is not None:
            raise ValueError(
                "`attention_mask` must be None when `poses` is a list of sequences (it is built from their lengths)."
            )
        seqs = []
        for i, seq in enumerate(poses):
            t = (
                seq.detach().to("cpu", torch.float32)
                if isinstance(seq, torch.Tensor)
                else torch.as_tensor(np.asarray(seq, dtype=np.float32))
            )
            if t.ndim != 2 or t.shape[0] == 0:
                raise ValueError(
                    f"`poses[{i}]` must have shape (num_frames > 0, feature_dim={feature_dim}); got {tuple(t.shape)}."
                )
            if t.shape[1] != feature_dim:
                raise ValueError(
                    f"`poses[{i}]` has feature dim {t.shape[1]}; this evaluator expects feature_dim={feature_dim}."
                )
            seqs.append(t)
        lengths = torch.tensor([s.shape[0] for s in seqs])
        batch = torch.zeros(len(seqs), int(lengths.max()), feature_dim)
        for i, s in enumerate(seqs):
            batch[i, : s.shape[0]] = s
        mask = torch.arange(batch.shape[1])[None] < lengths[:, None]
    else:
        batch = poses if isinstance(poses, torch.Tensor) else torch.as_tensor(np.asarray(poses, dtype=np.float32))
        if batch.ndim != 3:
            raise ValueError(
                f"`poses` must have shape (batch, num_frames, feature_dim={feature_dim}) or be a list of (num_frames, "
                f"feature_dim) arrays; got shape {tuple(batch.shape)}."
            )
        if batch.shape[0] == 0:
            raise ValueError("`poses` is an empty batch; pass at least one pose sequence.")
        if batch.shape[1] == 0:
            raise ValueError("`poses` has 0 frames; every sequence needs at least one frame.")
        if batch.shape[2] != feature_dim:
            raise ValueError(
                f"`poses` has feature dim {batch.shape[2]}; this evaluator expects feature_dim={feature_dim}."
            )
        if attention_mask is None:
            mask = torch.ones(batch.shape[:2], dtype=torch.bool)
        else:
            mask = (
                attention_mask
                if isinstance(attention_mask, torch.Tensor)
                else torch.as_tensor(np.asarray(attention_mask))
            )
            if tuple(mask.shape) != tuple(batch.shape[:2]):
                raise ValueError(
                    f"`attention_mask` must have shape {tuple(batch.shape[:2])} (batch, num_frames); got "
                    f"{tuple(mask.shape)}."
                )
            mask = mask.bool()
    empty = ~mask.any(1)
    if empty.any():
        raise ValueError(
            f"`attention_mask` row {int(torch.nonzero(empty)[0])} has no real frame; every sequence needs at least "
            "one."
        )
    if check_finite:
        bad = ~torch.isfinite(batch) & mask[..., None].to(batch.device)
        if bad.any():
            b, t, _ = (int(v) for v in torch.nonzero(bad)[0])
            raise ValueError(f"`poses` has NaN/inf values in sequence {b} at frame {t}.")
    return batch.to(device=device, dtype=dtype), mask.to(device)


def check_forward_inputs(
    poses: torch.Tensor, attention_mask: Optional[torch.Tensor], feature_dim: int
) -> torch.Tensor:
    """Cheap shape checks for `forward` (no host sync); returns a bool mask (all True when None)."""
    if poses.ndim != 3:
        raise ValueError(
            f"`poses` must have shape (batch, num_frames, feature_dim={feature_dim}); got {tuple(poses.shape)}."
        )
    if poses.shape[0] == 0 or poses.shape[1] == 0:
        raise ValueError(f"`poses` is empty (shape {tuple(poses.shape)}); pass at least one sequence with one frame.")
    if poses.shape[-1] != feature_dim:
        raise ValueError(
            f"`poses` has feature dim {poses.shape[-1]}; this evaluator expects feature_dim={feature_dim}."
        )
    if attention_mask is None:
        return torch.ones(poses.shape[:2], dtype=torch.bool, device=poses.device)
    if tuple(attention_mask.shape) != tuple(poses.shape[:2]):
        raise ValueError(
            f"`attention_mask` must have shape {tuple(poses.shape[:2])}; got {tuple(attention_mask.shape)}."
        )
    return attention_mask.bool()


# --------------------------------------------------------------------------------------- normaliser
class PoseStatisticsMixin:
    """Gives a model `pose_mean` / `pose_std` buffers (saved in its safetensors) and conversions.

    The model calls `_init_pose_statistics(feature_dim)` in `__init__`; the trainer copies a fitted
    `PoseNormalizer` in with `set_normalizer`.
    """

    def _init_pose_statistics(self, feature_dim: int) -> None:
        self.register_buffer("pose_mean", torch.zeros(feature_dim))
        self.register_buffer("pose_std", torch.ones(feature_dim))

    def set_normalizer(self, normalizer: PoseNormalizer) -> None:
        """Copy the statistics of a fitted `PoseNormalizer` (dataset units) into the model."""
        if normalizer.config.feature_dim != self.pose_mean.shape[0]:
            raise ValueError(
                f"`normalizer` has feature_dim={normalizer.config.feature_dim}; the model expects "
                f"{self.pose_mean.shape[0]}."
            )
        with torch.no_grad():
            self.pose_mean.copy_(normalizer.mean.to(self.pose_mean))
            self.pose_std.copy_(normalizer.std.to(self.pose_std))

    def get_normalizer(self) -> PoseNormalizer:
        """The model's statistics as a standalone `PoseNormalizer` (e.g. for a `PoseCollator`)."""
        norm = PoseNormalizer(feature_dim=int(self.pose_mean.shape[0]), representation=self.config.representation)
        norm.mean.copy_(self.pose_mean.detach().float().cpu())
        norm.std.copy_(self.pose_std.detach().float().cpu())
        norm.num_frames_fitted.fill_(1)
        return norm

    def normalize_poses(self, poses: torch.Tensor) -> torch.Tensor:
        """Dataset units -> the standardised space the model was trained in."""
        return (poses - self.pose_mean.to(poses.dtype)) / self.pose_std.to(poses.dtype)


class eval_mode:
    """Context manager: put a module in eval mode, restore its training flag afterwards."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.was_training = self.module.training
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was_training)


# ---------------------------------------------------------------------------------------- layers
def sinusoidal_positions(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(length, dim) sinusoidal table (Vaswani et al.); computed on the fly so any length works."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    table = torch.zeros(length, dim, device=device)
    table[:, 0 : 2 * half : 2] = torch.sin(pos * freq)
    table[:, 1 : 2 * half : 2] = torch.cos(pos * freq)
    return table.to(dtype)


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: masked multi-head self-attention, then a GELU feed-forward."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_heads})."
            )
        self.num_heads = num_heads
        self.dropout = dropout
        self.attn_norm = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(intermediate_size, hidden_size),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)
        # Keys on padded frames are hidden from every query; each row keeps >= 1 real key, so no NaN.
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.attn_out(attn.transpose(1, 2).reshape(b, t, h)))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


class PoseSequenceEncoder(nn.Module):
    """Standardised poses (B, T, D) -> hidden states (B, T', H) and mask (B, T'), T' = ceil(T / downsample).

    Frame MLP, then log2(downsample) stride-2 temporal convolutions (kernel 5), sinusoidal positions,
    `num_layers` transformer blocks and a final LayerNorm.
    """

    def __init__(
        self,
        feature_dim: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float,
        temporal_downsample: int,
    ):
        super().__init__()
        if temporal_downsample not in (1, 2, 4):
            raise ValueError(f"`temporal_downsample` must be 1, 2 or 4; got {temporal_downsample!r}.")
        self.frame_mlp = nn.Sequential(
            nn.Linear(feature_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )
        self.downsample = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size=5, stride=2, padding=2)
            for _ in range(int(math.log2(temporal_downsample)))
        )
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderBlock(hidden_size, num_heads, intermediate_size, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, poses: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # Zero padded frames so the convolutions see the same context whatever the padding length.
        x = self.frame_mlp(poses) * mask[..., None].to(poses.dtype)
        lengths = mask.long().sum(1)
        for conv in self.downsample:
            x = F.gelu(conv(x.transpose(1, 2))).transpose(1, 2)
            lengths = (lengths + 1) // 2  # conv output length for k=5, s=2, p=2 is ceil(L / 2)
            mask = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
            x = x * mask[..., None].to(x.dtype)
        x = self.drop(x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype))
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x), mask


class TokenSequenceEncoder(nn.Module):
    """Token ids (B, L) -> hidden states (B, L, H): embedding, sinusoidal positions, transformer blocks."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderBlock(hidden_size, num_heads, intermediate_size, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids) * math.sqrt(self.embed.embedding_dim)
        x = self.drop(x + sinusoidal_positions(x.shape[1], x.shape[2], x.device, x.dtype))
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` (B, T, H) over the real positions of `mask` (B, T)."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def init_evaluator_weights(module: nn.Module, std: float) -> None:
    """Shared `_init_weights`: truncated-normal linears/convs/embeddings, unit LayerNorms."""
    from transformers import initialization as init

    if isinstance(module, (nn.Linear, nn.Conv1d)):
        init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        init.normal_(module.weight, std=std)
    elif isinstance(module, nn.LayerNorm):
        init.ones_(module.weight)
        init.zeros_(module.bias)
