"""Stable Signer's training losses (paper, sections 2.2 and 2.3), one function per term.

Linker (SLUL), all on teacher-forced T5 passes:

* `gloss_cross_entropy`: `L_SLUL = -sum_t log p(g_t | g_<t, H)`, mean over the gloss tokens of the batch.
* `mask_gloss_inputs`: SAGM's corruption: each gloss token of the decoder input is replaced by `<mask>` with
  probability `mask_rate` (`m_t ~ Bernoulli(rho)`); the start token and padding are never masked.
  `L_SAGM` is then `gloss_cross_entropy` of the masked pass: every gloss is predicted from the encoder states and a
  partly masked gloss history, so the decoder cannot lean on its own previous glosses alone.
* `posterior_kl`: `L_KL = KL(p(.|g~, H) || p(.|g, H))`, per gloss position, mean over positions; 0 for identical
  posteriors.
* `contrastive_linking`: `L_con = -log exp(<h_x, h_g>/tau) / sum_g' exp(<h_x, h_g'>/tau)` with mean-pooled,
  L2-normalised prompt (`h_x`, encoder) and gloss (`h_g`, decoder) embeddings and in-batch negatives. A
  negative whose gloss sequence equals the positive's (the `text` and `prompt` of one sentence, or two sentences
  signed alike) is not a negative and is left out of the denominator.

Pose stage (SLP-MoE):

* `expert_nll`: `L_MoE = -log w_y`, the gate's weight on the expert whose candidate is nearest the ground truth.
* `gate_entropy`: `L_ent = sum_k w_k log w_k` (the negative entropy: minimising it spreads the gate and keeps
  experts from collapsing, the paper's "avoiding gate collapse").
* `smoothness_loss`: `L_smooth = sum_t ||p_t - 2 p_{t-1} + p_{t-2}||^2` (the paper's jerk penalty is this second
  difference), mean over frames and joints; 0 for constant-velocity motion.
* `velocity_loss`: `L_vel = sum_t ||p_t - p_{t-1}||^2`, mean over frames and joints (damps micro-flicker).
* `hand_fidelity_loss`: `L_hand = sum_t ||H^_t - H_t||^2` over the hand keypoints against the ground truth.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "gloss_cross_entropy",
    "mask_gloss_inputs",
    "posterior_kl",
    "contrastive_linking",
    "expert_nll",
    "gate_entropy",
    "smoothness_loss",
    "velocity_loss",
    "hand_fidelity_loss",
]

IGNORE_INDEX = -100


# ------------------------------------------------------------------------------------------------ linker
def gloss_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy of `logits` `(B, L, V)` against `labels` `(B, L)` (-100 ignored)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def mask_gloss_inputs(
    decoder_input_ids: torch.Tensor,
    decoder_attention_mask: torch.Tensor,
    mask_token_id: int,
    mask_rate: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """SAGM's masked decoder inputs: each real gloss token (not the start token at position 0, not padding) becomes
    `mask_token_id` with probability `mask_rate`."""
    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"`mask_rate` must be in [0, 1]; got {mask_rate}.")
    u = torch.rand(decoder_input_ids.shape, generator=generator, device=decoder_input_ids.device)
    maskable = decoder_attention_mask.bool().clone()
    maskable[:, 0] = False
    return torch.where(
        maskable & (u < mask_rate), torch.full_like(decoder_input_ids, mask_token_id), decoder_input_ids
    )


def posterior_kl(masked_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`KL(p(.|g~,H) || p(.|g,H))` per position where `labels != -100`, averaged over those positions."""
    log_p_masked = F.log_softmax(masked_logits.float(), dim=-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    kl = (log_p_masked.exp() * (log_p_masked - log_p)).sum(dim=-1)
    valid = (labels != IGNORE_INDEX).to(kl.dtype)
    return (kl * valid).sum() / valid.sum().clamp_min(1.0)


def contrastive_linking(
    prompt_embeds: torch.Tensor,
    gloss_embeds: torch.Tensor,
    temperature: float,
    same_gloss: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """InfoNCE from each prompt to its own gloss sequence against the other gloss sequences of the batch.

    Args:
        prompt_embeds (`torch.Tensor` of shape `(B, D)`): `h_x`, pooled encoder states.
        gloss_embeds (`torch.Tensor` of shape `(B, D)`): `h_g`, pooled decoder states.
        temperature (`float`): `tau` (> 0).
        same_gloss (`torch.Tensor` of shape `(B, B)`, *optional*): True where two rows have the same gloss sequence;
            those off-diagonal pairs are removed from the denominator.
    """
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive; got {temperature}.")
    x = F.normalize(prompt_embeds.float(), dim=-1)
    g = F.normalize(gloss_embeds.float(), dim=-1)
    sim = x @ g.t() / temperature
    if same_gloss is not None:
        eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
        sim = sim.masked_fill(same_gloss.bool() & ~eye, float("-inf"))
    target = torch.arange(sim.shape[0], device=sim.device)
    return F.cross_entropy(sim, target)


# ------------------------------------------------------------------------------------------------ SLP-MoE
def expert_nll(weights: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`-log w_y`, mean over rows; `weights` `(N, K)` sum to 1, `target` `(N,)` expert indices."""
    return -(weights.gather(1, target[:, None]).squeeze(1).clamp_min(eps)).log().mean()


def gate_entropy(weights: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`sum_k w_k log w_k`, mean over rows (minus the entropy: lowest for a uniform gate)."""
    return (weights * weights.clamp_min(eps).log()).sum(dim=-1).mean()


def _masked_frame_mean(err: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of per-frame errors `(B, T)` over frames where `mask` is 1."""
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def smoothness_loss(positions: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Second-difference penalty on `positions` `(B, T, J, 3)`; `frame_mask` `(B, T)` marks real frames (a
    difference counts only when all its frames are real)."""
    acc = positions[:, 2:] - 2 * positions[:, 1:-1] + positions[:, :-2]
    err = acc.pow(2).sum(-1).mean(-1)
    mask = None if frame_mask is None else frame_mask[:, 2:] * frame_mask[:, 1:-1] * frame_mask[:, :-2]
    return _masked_frame_mean(err, mask)


def velocity_loss(positions: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """First-difference penalty on `positions` `(B, T, J, 3)`, masked like `smoothness_loss`."""
    vel = positions[:, 1:] - positions[:, :-1]
    err = vel.pow(2).sum(-1).mean(-1)
    mask = None if frame_mask is None else frame_mask[:, 1:] * frame_mask[:, :-1]
    return _masked_frame_mean(err, mask)


def hand_fidelity_loss(
    hands: torch.Tensor, target_hands: torch.Tensor, frame_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Squared distance of the hand keypoints `(B, T, J_hand, 3)` to the ground truth, mean over joints and frames."""
    err = (hands - target_hands).pow(2).sum(-1).mean(-1)
    return _masked_frame_mean(err, frame_mask)
