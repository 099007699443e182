"""MaDiS's training objectives (Sec. 3.2 and 3.3) on `MaDiSCollator` batches.

* `mask_sequences`: the forward process. `t = min_mask_ratio + (1 - min_mask_ratio) u`, `u ~ U(0, 1)` per row (the
  authors' `eps`, which keeps the `1 / t` weight finite). Pretraining masks text and sign positions alike
  (`mask_text`; the three part tokens of a position together); fine-tuning keeps the text and masks the sign canvas,
  with the states restricted to those the checkpoint sampler reaches (`add_noise_with_checkpoints`, the paper's index
  masks). The labels are the clean ids at the positions that may be masked (`-100` elsewhere; a text position's label
  is on part 0 only, as `MaDiSForMaskedDiffusion.token_loss` reads it).
* `L_tok` (eq. 3) is the model's own `loss`.
* `latent_loss` (`L_lat`): smooth-L1 between the latent head `MLP_p` and the codebook vector of the target code of
  part `p` at masked sign positions, summed over the parts.
* `physical_loss` (`L_phy`): the frozen VQ decoders turn the latent heads' outputs over the whole canvas into poses
  (`PartVQVAE.decode_latents`, gradients flow through the frozen decoder into the LM); smooth-L1 against the
  ground-truth standardised poses at the real frames of masked sign positions (4 frames per token), summed over the
  parts.
* `next_token_loss`: the autoregressive baseline (`lm.bidirectional: false`): cross-entropy of the part heads on the
  next sign token, from the text's `<eos>` to the canvas' first `<eos>` (the text prefix is not trained).
* `madis_lm_loss`: the stage objective, `L_tok + w_lat L_lat + w_phy L_phy` (pretraining: 1, 1; fine-tuning:
  `alpha (L_lat + L_phy)`, `alpha = 0.5`), or the next-token loss for the baseline, with the masked token accuracy.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

from ..models.madis import MaDiSForMaskedDiffusion, PartVQVAE
from ..schedulers.scheduling_masked_diffusion import MaskedDiffusionScheduler

__all__ = ["mask_sequences", "latent_loss", "physical_loss", "next_token_loss", "madis_lm_loss"]


def mask_sequences(
    batch: Mapping[str, Any],
    model_config,
    scheduler: MaskedDiffusionScheduler,
    mask_text: bool,
    checkpoint_state_probability: float = 0.0,
    min_mask_ratio: float = 1e-3,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.LongTensor, torch.LongTensor, torch.Tensor]:
    """Noisy ids, labels and the noise level `t` `(B,)` of a batch.

    Args:
        batch (`Mapping`): a `MaDiSCollator` batch.
        model_config (`MaDiSConfig`): the LM's config (vocabulary layout).
        scheduler (`MaskedDiffusionScheduler`): its `mask_token_id`, `add_noise` and `add_noise_with_checkpoints`.
        mask_text (`bool`): mask the text positions too (pretraining) or keep them (fine-tuning, never labelled).
        checkpoint_state_probability (`float`, *optional*, defaults to 0.0): probability that a row's sign canvas is
            masked into a state the checkpoint sampler reaches (1.0 in fine-tuning); the other rows are masked freely.
        min_mask_ratio (`float`, *optional*, defaults to 1e-3): the smallest `t`.
        generator (`torch.Generator`, *optional*): randomness of `t` and of the masks (fixed draws for validation).
    """
    clean, attention = batch["input_ids"], batch["attention_mask"].bool()
    text_length, device = batch["text_length"], clean.device
    rows = clean.shape[0]
    gen_device = generator.device if generator is not None else device
    t = min_mask_ratio + (1.0 - min_mask_ratio) * torch.rand(rows, generator=generator, device=gen_device).to(device)
    # 1. the text (pretraining) and the sign canvas
    free = scheduler.add_noise(clean, t, generator=generator)
    noisy = free.clone()
    if checkpoint_state_probability > 0:
        sign = clean[:, text_length:]
        lengths = batch["canvas_lengths"]
        utc = scheduler.add_noise_with_checkpoints(sign, t, generator=generator, sequence_lengths=lengths)
        rows_utc = torch.rand(rows, generator=generator, device=gen_device).to(device) < checkpoint_state_probability
        noisy[:, text_length:] = torch.where(rows_utc.view(-1, 1, 1), utc, free[:, text_length:])
    # 2. only real positions (and the text only when asked) are masked and labelled
    maskable = attention.clone()
    if not mask_text:
        maskable[:, :text_length] = False
    noisy = torch.where(maskable.unsqueeze(-1), noisy, clean)
    labels = torch.where(maskable.unsqueeze(-1), clean, torch.full_like(clean, -100))
    is_text = (clean[..., 0] < model_config.text_vocab_size) & (clean[..., 0] != model_config.eos_token_id)
    labels[..., 1:] = labels[..., 1:].masked_fill(is_text.unsqueeze(-1), -100)
    return noisy, labels, t


def latent_loss(
    latents: List[torch.Tensor], codes: torch.LongTensor, positions: torch.Tensor, codebooks: List[torch.Tensor]
) -> torch.Tensor:
    """`L_lat`: per part, smooth-L1 between `latents[p]` `(B, L, code_dim)` and `codebooks[p][codes[..., p]]` at
    `positions` `(B, L)` (bool); summed over the parts. Zero (with a gradient path) when no position is selected."""
    if not bool(positions.any()):
        return sum(x.sum() for x in latents) * 0.0
    total = 0.0
    for p, (pred, book) in enumerate(zip(latents, codebooks)):
        target = book[codes[..., p][positions]].to(pred.dtype)
        total = total + F.smooth_l1_loss(pred[positions], target)
    return total


def physical_loss(
    part_vqvae: PartVQVAE,
    latents: List[torch.Tensor],
    poses: torch.Tensor,
    frame_mask: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """`L_phy`: `part_vqvae.decode_latents(latents)` `(B, rate L, F)` against `poses` (standardised) at the real
    frames (`frame_mask`) of the selected token `positions` `(B, L)`; per part the smooth-L1 over its features, summed
    over the parts. The decoder's weights stay frozen (the caller keeps them out of the optimiser)."""
    decoded = part_vqvae.decode_latents(latents)
    rate = part_vqvae.config.downsample_rate
    weight = (frame_mask[:, : decoded.shape[1]] & positions.repeat_interleave(rate, dim=1)).to(decoded.dtype)
    count = weight.sum()
    if float(count) == 0:
        return decoded.sum() * 0.0
    err = F.smooth_l1_loss(decoded, poses[:, : decoded.shape[1]].to(decoded.dtype), reduction="none")
    total = 0.0
    for p in range(part_vqvae.num_parts):
        total = total + (err[..., part_vqvae.part_index(p)].mean(-1) * weight).sum() / count
    return total


def next_token_loss(
    logits: torch.Tensor, input_ids: torch.LongTensor, text_length: int, sign_lengths: torch.LongTensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The autoregressive baseline: the part heads at position `i` predict the ids at `i + 1`, for the sign tokens
    and the first `<eos>` of the canvas (predicted from the text's `<eos>` on). Returns the cross-entropy (summed over
    parts, averaged over positions), the token accuracy and the accuracy on the sign codes alone (`<eos>` left out)."""
    width = input_ids.shape[1] - text_length
    pred = logits[:, text_length - 1 : text_length - 1 + width]
    target = input_ids[:, text_length:]
    index = torch.arange(width, device=target.device).unsqueeze(0)
    valid = index <= sign_lengths.unsqueeze(1)
    is_code = (index < sign_lengths.unsqueeze(1))[valid]
    pred, target = pred[valid], target[valid]  # (N, P, V), (N, P)
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="sum")
    correct = (pred.argmax(-1) == target).float()
    code_accuracy = correct[is_code].mean() if bool(is_code.any()) else correct.sum() * 0
    return nll / max(int(valid.sum()), 1), correct.mean(), code_accuracy


def madis_lm_loss(
    model: MaDiSForMaskedDiffusion,
    batch: Mapping[str, Any],
    scheduler: MaskedDiffusionScheduler,
    part_vqvae: Optional[PartVQVAE] = None,
    mask_text: bool = False,
    checkpoint_state_probability: float = 0.0,
    latent_loss_weight: float = 0.0,
    physical_loss_weight: float = 0.0,
    min_mask_ratio: float = 1e-3,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """One batch's objective and its terms (`loss`, `token_loss`, `latent_loss`, `physical_loss`,
    `token_accuracy`: the part heads' argmax at the masked canvas positions, `code_accuracy`: the same at the masked
    positions that hold sign codes, `<eos>` left out).

    A causal model (`config.bidirectional = False`) is trained by `next_token_loss` on the clean sequence (no
    masks, no latent terms). Otherwise the batch is masked by `mask_sequences` and scored by
    `L_tok + latent_loss_weight L_lat + physical_loss_weight L_phy` (a term of weight 0 is not computed).
    """
    cfg = model.config
    clean, text_length = batch["input_ids"], batch["text_length"]
    # 1. the autoregressive baseline
    if not cfg.bidirectional:
        out = model(clean, attention_mask=batch["attention_mask"])
        loss, accuracy, code_accuracy = next_token_loss(out.logits, clean, text_length, batch["sign_lengths"])
        return {"loss": loss, "token_loss": loss.detach(), "token_accuracy": accuracy, "code_accuracy": code_accuracy}

    # 2. mask, predict, L_tok
    noisy, labels, t = mask_sequences(
        batch, cfg, scheduler, mask_text, checkpoint_state_probability, min_mask_ratio, generator
    )
    with_latents = latent_loss_weight > 0 or physical_loss_weight > 0
    out = model(noisy, batch["attention_mask"], labels=labels, mask_ratio=t, output_latents=with_latents)
    terms = {"token_loss": out.loss}
    loss = out.loss

    # 3. masked sign positions: their accuracy and the latent and physical terms
    sign_noisy, sign_labels = noisy[:, text_length:], labels[:, text_length:]
    masked = (sign_noisy == cfg.mask_token_id).all(-1) & (sign_labels != -100).all(-1)
    width = clean.shape[1] - text_length
    is_code = torch.arange(width, device=clean.device).unsqueeze(0) < batch["sign_lengths"].unsqueeze(1)
    selected = masked & is_code
    correct = (out.logits[:, text_length:].argmax(-1) == sign_labels).float()
    terms["token_accuracy"] = correct[masked].mean() if bool(masked.any()) else loss.detach() * 0
    terms["code_accuracy"] = correct[selected].mean() if bool(selected.any()) else loss.detach() * 0
    if with_latents:
        codes = model.part_ids_to_codes(clean[:, text_length:])
        latents = [x[:, text_length:] for x in out.latents]
        books = [model.codebook(p) for p in range(cfg.num_parts)]
        if latent_loss_weight > 0:
            terms["latent_loss"] = latent_loss(latents, codes, selected, books)
            loss = loss + latent_loss_weight * terms["latent_loss"]
        if physical_loss_weight > 0:
            if part_vqvae is None:
                raise ValueError("`part_vqvae` (the frozen VQ decoders) is needed for the physical loss.")
            terms["physical_loss"] = physical_loss(part_vqvae, latents, batch["poses"], batch["frame_mask"], selected)
            loss = loss + physical_loss_weight * terms["physical_loss"]
    terms["loss"] = loss
    return terms
