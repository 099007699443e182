"""Guided cross-attention for Sign-SALD's latent denoiser: an auxiliary loss that teaches which words a frame signs.

Not in the paper. The denoiser has to discover, from the MSE alone, which text token each latent frame signs, and
on a small budget it does so only weakly. Where the corpus says when each gloss is signed (`gloss_spans`) and which
words it signs, the loss below supervises that directly, as guided attention does for text-to-speech alignment
(Tachibana et al., 2018). Inference is unchanged: the model still reads only the text. The `small` config turns it
on (weight 0.1, all heads); what it changed is in `benchmarks/results/sign_sald_small.md`.

For every training sentence, `gloss_token_targets` builds a boolean matrix (N', L): latent frame n' targets the
text tokens of the gloss whose span holds the centre of the frames n' covers; frames in transitions and rest
target nothing and are not supervised. `attention_guidance_loss` is the mean of `-log(attention mass on the
target tokens)` over the supervised frames, the atomic joints, the first `num_heads` heads of every layer and the
samples whose text was not dropped (classifier-free guidance). The other heads stay free, e.g. for the non-manual
signals that span a whole clause (head shake, question brows).

Which words a gloss signs comes from `gloss_alignment.gloss_token_spans`: a `gloss_text_spans` column (character
spans `[start, end)` in `text`, one per gloss) when the corpus has one, else the SynthSign grammar.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch

from .gloss_alignment import gloss_token_spans

__all__ = ["gloss_token_targets", "attention_guidance_loss"]


def gloss_token_targets(row: Dict[str, Any], tokenizer, num_latent_frames: int, downsample: int) -> torch.Tensor:
    """Boolean (num_latent_frames, num_tokens) matrix: the tokens of the gloss signed at each latent frame.

    Args:
        row (`dict`): a corpus sample with `text`, `gloss_spans` (full-rate frame spans `[start, end)`, one per gloss)
            and optionally `gloss_text_spans`.
        tokenizer: the pipeline's fast tokenizer (character offsets are needed); tokens as `encode_prompts` makes them.
        num_latent_frames (`int`): N' of the sample's latent.
        downsample (`int`): full-rate frames per latent frame (`SkeletonVAE.temporal_downsample_factor`).
    """
    frame_spans, gloss_tokens, real = gloss_token_spans(row, tokenizer, "Attention guidance")
    centres = torch.arange(num_latent_frames, dtype=torch.float32) * downsample + downsample / 2.0
    target = torch.zeros(num_latent_frames, len(real), dtype=torch.bool)
    for tokens, (start, end) in zip(gloss_tokens, frame_spans):
        frames = (centres >= start) & (centres < end)
        target |= frames[:, None] & tokens[None, :]
    return target


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
