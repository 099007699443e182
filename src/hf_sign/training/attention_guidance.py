"""Guided cross-attention for Sign-SALD's latent denoiser: an auxiliary loss that teaches which words a frame signs.

Not in the paper. The denoiser has to discover, from the MSE alone, which text token each latent frame signs, and
at the `small` budget it does so only weakly: on validation sentences its most aligned cross-attention head puts
41% of its mass on the words of the gloss being signed (uniform attention: 12%). Where the corpus says when each
gloss is signed (`gloss_spans`) and which words it signs, the loss below supervises that directly, as guided
attention does for text-to-speech alignment (Tachibana et al., 2018). Inference is unchanged: the model still
reads only the text. Measured with the `small` recipe, which turns it on (weight 0.1, all heads; numbers in
`small.yaml`): the attention mass on the right words doubles (0.41 -> 0.81 on validation sentences); every test
metric but SiCLIP R@5 (43.5 vs 44.0) moved the right way, by about one training-seed spread.

For every training sentence, `gloss_token_targets` builds a boolean matrix (N', L): latent frame n' targets the
text tokens of the gloss whose span holds the centre of the frames n' covers; frames in transitions and rest
target nothing and are not supervised. `attention_guidance_loss` is the mean of `-log(attention mass on the
target tokens)` over the supervised frames, the atomic joints, the first `num_heads` heads of every layer and the
samples whose text was not dropped (classifier-free guidance). The other heads stay free, e.g. for the non-manual
signals that span a whole clause (head shake, question brows).

Which words a gloss signs comes from a `gloss_text_spans` column (character spans `[start, end)` in `text`, one
per gloss) when the corpus has one, else from the SynthSign grammar (`align_text_to_gloss`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from ..data.synthsign_grammar import align_text_to_gloss

__all__ = ["gloss_token_targets", "gloss_token_timing", "attention_guidance_loss"]


def _text_spans(row: Dict[str, Any]) -> Sequence[Tuple[int, int]]:
    if row.get("gloss_text_spans") is not None:
        return [tuple(s) for s in row["gloss_text_spans"]]
    try:
        return [span for _, span in align_text_to_gloss(row["text"])]
    except ValueError as err:
        raise ValueError(
            f"Attention guidance needs the words each gloss signs: sample {row.get('id')!r} has no `gloss_text_spans` "
            f"column and its `text` is not SynthSign grammar ({err})."
        ) from None


def _token_spans(row: Dict[str, Any], tokenizer, what: str):
    """(frame spans, text spans, token offsets (L, 2), real-token mask (L,)) of a sample, checked."""
    frame_spans = row.get("gloss_spans")
    if not frame_spans:
        raise ValueError(f"{what} needs `gloss_spans`; sample {row.get('id')!r} has none.")
    text_spans = _text_spans(row)
    if len(text_spans) != len(frame_spans):
        raise ValueError(
            f"Sample {row.get('id')!r}: {len(frame_spans)} `gloss_spans` but {len(text_spans)} glosses aligned to the "
            "text; expected one text span per gloss."
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{what} needs a fast tokenizer (character offsets); got a slow one.")
    offsets = torch.tensor(tokenizer(row["text"], return_offsets_mapping=True)["offset_mapping"]).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]  # special tokens have empty offsets
    tokens = [real & (offsets[:, 0] < b) & (offsets[:, 1] > a) for a, b in text_spans]
    return frame_spans, tokens, real


def gloss_token_targets(row: Dict[str, Any], tokenizer, num_latent_frames: int, downsample: int) -> torch.Tensor:
    """Boolean (num_latent_frames, num_tokens) matrix: the tokens of the gloss signed at each latent frame.

    Args:
        row (`dict`): a corpus sample with `text`, `gloss_spans` (full-rate frame spans `[start, end)`, one per gloss)
            and optionally `gloss_text_spans`.
        tokenizer: the pipeline's fast tokenizer (character offsets are needed); tokens as `encode_prompts` makes them.
        num_latent_frames (`int`): N' of the sample's latent.
        downsample (`int`): full-rate frames per latent frame (`SkeletonVAE.temporal_downsample_factor`).
    """
    frame_spans, gloss_tokens, real = _token_spans(row, tokenizer, "Attention guidance")
    centres = torch.arange(num_latent_frames, dtype=torch.float32) * downsample + downsample / 2.0
    target = torch.zeros(num_latent_frames, len(real), dtype=torch.bool)
    for tokens, (start, end) in zip(gloss_tokens, frame_spans):
        frames = (centres >= start) & (centres < end)
        target |= frames[:, None] & tokens[None, :]
    return target


def gloss_token_timing(row: Dict[str, Any], tokenizer) -> Tuple[torch.Tensor, torch.Tensor]:
    """`(durations, order)` of every text token (num_tokens,): full-rate frames it is signed for, and its place.

    The frames (summing to the sample's `num_frames`) are partitioned at the midpoints of the transitions between
    consecutive glosses, and each gloss's part is shared evenly by the tokens of its words. The rest before the
    first gloss goes to the leading special token and the rest after the last gloss to the trailing one (to the
    first / last gloss's tokens when the tokenizer adds none). Words that no gloss signs get 0.

    `order` is the token's place in the signing, `(k + 0.5) / K` for the k-th of K glosses (averaged when a token
    belongs to several), 0 for the leading and 1 for the trailing special token (0.5 for unsigned tokens, which
    `duration_loss` ignores): signing order differs from the text's (SynthSign puts time words first and
    wh-words last). `SkeletonLatentDenoiser(duration_conditioning=True)` learns and uses both.
    """
    frame_spans, gloss_tokens, real = _token_spans(row, tokenizer, "Duration conditioning")
    if any(not t.any() for t in gloss_tokens):
        raise ValueError(f"Sample {row.get('id')!r}: a gloss's words map to no token of {row['text']!r}.")
    total, k = float(row["num_frames"]), len(frame_spans)
    mids = [(end + nxt) / 2.0 for (_, end), (nxt, _) in zip(frame_spans[:-1], frame_spans[1:])]
    starts, ends = [frame_spans[0][0], *mids], [*mids, frame_spans[-1][1]]
    durations, order_sum, order_count = torch.zeros(len(real)), torch.zeros(len(real)), torch.zeros(len(real))
    for i, (tokens, a, b) in enumerate(zip(gloss_tokens, starts, ends)):
        durations[tokens] += (b - a) / int(tokens.sum())
        order_sum[tokens] += (i + 0.5) / k
        order_count[tokens] += 1
    order = torch.where(order_count > 0, order_sum / order_count.clamp_min(1), torch.full_like(order_sum, 0.5))
    lead = 0 if not real[0] else int(gloss_tokens[0].nonzero()[0])
    trail = len(real) - 1 if not real[-1] else int(gloss_tokens[-1].nonzero()[-1])
    durations[lead] += frame_spans[0][0]
    durations[trail] += total - frame_spans[-1][1]
    if not real[0]:
        order[0] = 0.0
    if not real[-1]:
        order[-1] = 1.0
    return durations, order


def attention_guidance_loss(
    cross_attentions: Sequence[torch.Tensor], targets: torch.Tensor, keep: Optional[torch.Tensor], num_heads: int
) -> torch.Tensor:
    """Mean `-log(attention mass on the target tokens)` over supervised frames, joints, guided heads and layers.

    Args:
        cross_attentions (sequence of `torch.Tensor` of shape `(batch, heads, N', J', L)`): one per layer.
        targets (`torch.Tensor` of shape `(batch, N', L)`, bool): `gloss_token_targets`, padded with False.
        keep (`torch.Tensor` of shape `(batch,)`, bool, *optional*): samples whose text was not dropped.
        num_heads (`int`): the first `num_heads` heads of every layer are guided (0: all).
    """
    if not cross_attentions:
        raise ValueError("Attention guidance needs the denoiser's cross-attention (`use_cross_attention=True`).")
    frames = targets.any(-1)  # (B, N'): frames inside a gloss span
    if keep is not None:
        frames = frames & keep[:, None]
    if not frames.any():
        return cross_attentions[0].sum() * 0.0
    losses = []
    for attn in cross_attentions:
        attn = attn if num_heads <= 0 else attn[:, :num_heads]
        if attn.shape[-1] != targets.shape[-1] or attn.shape[2] != targets.shape[1]:
            raise ValueError(
                f"`targets` has shape {tuple(targets.shape)}; the cross-attention has (batch, N', L) = "
                f"{(attn.shape[0], attn.shape[2], attn.shape[-1])}."
            )
        mass = (attn * targets[:, None, :, None, :].to(attn.dtype)).sum(-1)  # (B, H, N', J')
        nll = -mass.clamp_min(1e-6).log().mean(dim=(1, 3))  # (B, N')
        losses.append(nll[frames].mean())
    return torch.stack(losses).mean()
