"""How long the signing lasts and which word each frame signs: length prediction and a length regulator.

* `LengthPredictor`: log(number of frames) of a whole sentence from its text states.
* `TokenTiming`: per-token durations and signing-order keys (the timing of the words in the signing).
* `align_frames_to_tokens`: the length regulator (as in FastSpeech): which token each frame signs, and where in
  that token's frames it is.
* `DurationPredictor`: a per-token MLP predicting the timing from the text states.
* `DurationConditioning`: one component that predicts a `TokenTiming` (`predict`) and embeds it for every frame
  (`forward`); a generator owns one (or `None`) and takes one `token_timing` argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .embeddings import sinusoidal_embedding
from .utils import masked_mean

__all__ = [
    "LengthPredictor",
    "TokenTiming",
    "align_frames_to_tokens",
    "DurationPredictor",
    "DurationConditioning",
]


class LengthPredictor(nn.Module):
    """MLP regressing log(num_frames) from the masked mean of the text hidden states and log(number of tokens).

    The token count is an input of its own because mean pooling discards it, and sentence length is the
    strongest single cue for how long the signing lasts.

    Args:
        text_dim (`int`): width of the text hidden states.
        hidden (`int`): hidden width of the MLP.
        init_frames (`float`): the length predicted at initialisation (the output bias starts at its log).
    """

    def __init__(self, text_dim: int, hidden: int, init_frames: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(text_dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )
        nn.init.constant_(self.net[-1].bias, math.log(init_frames))  # start from a typical length

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`text` `(batch, seq_len, text_dim)`, `mask` `(batch, seq_len)` -> log(num_frames) `(batch,)`."""
        count = mask.sum(1, keepdim=True).to(text.dtype).clamp_min(1.0).log()
        return self.net(torch.cat([masked_mean(text, mask), count], dim=-1))[:, 0]


@dataclass
class TokenTiming:
    """When each text token is signed.

    Args:
        durations (`torch.Tensor` of shape `(batch, seq_len)`): frames signed for each token, in any unit (they are
            rescaled to the frames generated); 0 for tokens that are not signed and for padding. A sample whose
            durations sum to 0 shares its frames evenly among its valid tokens.
        order (`torch.Tensor` of shape `(batch, seq_len)`): signing-order keys: the tokens' frames follow each
            other in ascending key order (ties keep the text order), since sign languages reorder the words.
    """

    durations: torch.Tensor
    order: torch.Tensor

    def __post_init__(self):
        if self.durations.ndim != 2 or tuple(self.order.shape) != tuple(self.durations.shape):
            raise ValueError(
                "`TokenTiming.durations` and `TokenTiming.order` must both have shape (batch, seq_len); got "
                f"{tuple(self.durations.shape)} and {tuple(self.order.shape)}."
            )

    def empty_like(self) -> "TokenTiming":
        """No timing (zero durations, text order): what the null condition of classifier-free guidance gets, in
        training and at inference, so that its frames are shared evenly among its tokens."""
        return TokenTiming(torch.zeros_like(self.durations), torch.zeros_like(self.order))

    @classmethod
    def cat(cls, timings: Sequence["TokenTiming"]) -> "TokenTiming":
        """Concatenate along the batch, e.g. `TokenTiming.cat([timing.empty_like(), timing])` for the
        `[unconditional; conditional]` batch of classifier-free guidance."""
        return cls(torch.cat([t.durations for t in timings]), torch.cat([t.order for t in timings]))


def align_frames_to_tokens(
    token_durations: Optional[torch.Tensor],
    text_mask: torch.Tensor,
    frame_mask: torch.Tensor,
    token_order: Optional[torch.Tensor] = None,
) -> Tuple[torch.LongTensor, torch.Tensor, torch.Tensor]:
    """Which text token each frame signs, and where in that token's frames it is (a length regulator).

    Args:
        token_durations (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): frames per token in any unit; every
            sample's durations are rescaled to fill its valid frames. Masked tokens get none. A sample whose valid
            durations sum to 0 (and every sample when `None`) spreads its frames evenly over its valid tokens.
        text_mask (`torch.Tensor` of shape `(batch, seq_len)`, bool): valid text tokens.
        frame_mask (`torch.Tensor` of shape `(batch, num_frames)`, bool): valid frames (a prefix).
        token_order (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): sort keys; the tokens' segments follow
            each other in ascending key order (ties keep the text order). Default: the text order.

    Returns:
        `(token_index (B, N), phase (B, N) in [0, 1), segment_frames (B, N))`: the token of each frame's centre, the
        centre's position within that token's segment and the segment's length in frames (padded frames repeat the
        last valid frame's values; they are masked downstream).
    """
    mask = text_mask.to(torch.float32)
    for name, value in (("token_durations", token_durations), ("token_order", token_order)):
        if value is not None and tuple(value.shape) != tuple(text_mask.shape):
            raise ValueError(
                f"`{name}` must have shape {tuple(text_mask.shape)} (batch, seq_len); got {tuple(value.shape)}."
            )
    # 1. durations of the valid tokens (an equal share where a sample has none)
    if token_durations is None:
        durations = mask
    else:
        durations = token_durations.to(torch.float32).clamp_min(0.0) * mask
        durations = torch.where(durations.sum(1, keepdim=True) <= 0, mask, durations)
    # 2. laid out in signing order and rescaled to the valid frames
    if token_order is None:
        order = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    else:
        order = torch.sort(token_order.to(torch.float32), dim=1, stable=True).indices
    durations = durations.gather(1, order)
    frames = frame_mask.sum(1, keepdim=True).to(torch.float32)
    durations = durations * frames / durations.sum(1, keepdim=True)
    ends = durations.cumsum(1)
    # 3. the segment holding each frame's centre (zero-length segments are skipped by `right=True`)
    centres = torch.arange(frame_mask.shape[1], device=frame_mask.device, dtype=torch.float32)[None] + 0.5
    centres = torch.minimum(centres, frames - 0.5)  # padded frames reuse the last valid position
    slot = torch.searchsorted(ends.contiguous(), centres.contiguous(), right=True).clamp_max(durations.shape[1] - 1)
    length = durations.gather(1, slot)
    phase = (centres - (ends.gather(1, slot) - length)) / length.clamp_min(1e-6)
    return order.gather(1, slot), phase.clamp(0.0, 1.0 - 1e-6), length


class DurationPredictor(nn.Module):
    """Per-token MLP giving `(log(1 + frames signed for the token), signing-order key)` from its text hidden state.

    The key places the token in the signing: sign languages reorder (SynthSign puts time words first and wh-words
    last), so the frames are laid out in the order of the keys, not of the text.

    Args:
        text_dim (`int`): width of the text hidden states.
        hidden (`int`): hidden width of the MLP.
    """

    def __init__(self, text_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(text_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2)
        )

    def forward(self, text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """`text` `(batch, seq_len, text_dim)` -> `(log(1 + frames), order key)`, each `(batch, seq_len)`."""
        out = self.net(text)
        return out[..., 0], out[..., 1]


class DurationConditioning(nn.Module):
    r"""Word timing as a condition of every frame: predicts a `TokenTiming` and embeds it for the frames.

    `predict` runs the `DurationPredictor` on the text states. `forward` lays the frames out over the tokens
    (`align_frames_to_tokens`) and gives every frame `proj([state of its token, sinusoidal embedding of its phase in
    the token's frames, log of the token's length in frames])`, one vector per frame or, with `num_groups > 1`, one
    per group of a frame (e.g. per atomic joint, so each joint gets its own map from the word).

    Args:
        text_dim (`int`): width of the raw text states the predictor reads.
        hidden_dim (`int`): width of the (projected) text states `forward` reads, and of its output.
        predictor_hidden (`int`): hidden width of the `DurationPredictor`.
        num_groups (`int`, *optional*, defaults to 1): output vectors per frame.
    """

    def __init__(self, text_dim: int, hidden_dim: int, predictor_hidden: int, num_groups: int = 1):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.predictor = DurationPredictor(text_dim, predictor_hidden)
        self.proj = nn.Linear(2 * hidden_dim + 1, hidden_dim * num_groups)

    def predict(self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor) -> TokenTiming:
        """Predicted timing: full-rate frames signed for each token (0 on masked tokens and below one frame, i.e.
        words that are not signed; float32) and the signing-order keys."""
        log_durations, order = self.predictor(encoder_hidden_states)
        durations = torch.expm1(log_durations.float()).clamp_min(0.0) * encoder_attention_mask
        durations = torch.where(durations < 1.0, torch.zeros_like(durations), durations)
        return TokenTiming(durations, order)

    def forward(
        self,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        frame_mask: torch.Tensor,
        token_timing: Optional[TokenTiming] = None,
    ) -> torch.Tensor:
        """Frame embeddings `(batch, num_frames, num_groups, hidden_dim)`.

        Args:
            text_states (`torch.Tensor` of shape `(batch, seq_len, hidden_dim)`): the text states to pick from.
            text_mask (`torch.Tensor` of shape `(batch, seq_len)`, bool): valid tokens.
            frame_mask (`torch.Tensor` of shape `(batch, num_frames)`, bool): valid frames (a prefix).
            token_timing (`TokenTiming`, *optional*): the timing; `None` shares the frames evenly in text order.
        """
        if token_timing is not None and tuple(token_timing.durations.shape) != tuple(text_mask.shape):
            raise ValueError(
                f"`token_timing` must have shape {tuple(text_mask.shape)} (batch, seq_len) like the text; got "
                f"{tuple(token_timing.durations.shape)}."
            )
        durations, order = (None, None) if token_timing is None else (token_timing.durations, token_timing.order)
        index, phase, length = align_frames_to_tokens(durations, text_mask, frame_mask, order)
        d, dtype = self.hidden_dim, text_states.dtype
        token_state = text_states.gather(1, index[..., None].expand(-1, -1, d))
        phase_emb = sinusoidal_embedding(phase, d, scale=100.0).to(dtype)
        log_length = length.clamp_min(1e-3).log()[..., None].to(dtype)
        return self.proj(torch.cat([token_state, phase_emb, log_length], dim=-1)).unflatten(-1, (-1, d))
