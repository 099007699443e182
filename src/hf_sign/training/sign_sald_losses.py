"""Sign-SALD's training losses (Shen et al., Sec. 2): pure functions of a model, a batch and the stage's arguments.

* `skeleton_vae_loss`: stage `vae`'s objective, eq. 4 (`L_m + lambda_pos L_pos + lambda_vel L_vel + lambda_kl L_KL`).
* `latent_denoiser_loss`: stage `ldm`'s objective on a `LatentCollator` batch: the diffusion MSE over real latent
  frames (eq. 8 for `epsilon`) + the length predictor's log-length MSE [+ `duration_loss` with
  `denoiser.duration_conditioning`] [+ the guided cross-attention loss of `attention_guidance`].

The losses call only the models' inference API: `vae.encode` / `vae.decode`, `denoiser(...)`,
`denoiser.null_condition`, `denoiser.predict_log_num_frames`, and the raw per-token outputs of the duration
predictor, reached in one place (`_token_timing_predictions`). Their arguments (`SkeletonVAETrainingArguments`,
`LatentDenoiserTrainingArguments`) are the stages' config sections, in `sign_sald_stages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional

import torch
from diffusers import DDPMScheduler
from torch import nn

from ..models.length_regulator import TokenTiming
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..skeletons.spec import get_skeleton
from .attention_guidance import attention_guidance_loss
from .losses import diffusion_target, drop_condition, log_length_loss, masked_l1, masked_mse

if TYPE_CHECKING:  # annotations only: the stages import these losses
    from .sign_sald_stages import LatentDenoiserTrainingArguments, SkeletonVAETrainingArguments

__all__ = ["skeleton_vae_loss", "duration_loss", "latent_denoiser_loss"]


# ================================================================================================ 1. stage `vae`
def skeleton_vae_loss(
    vae: SkeletonVAE,
    poses: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    args: SkeletonVAETrainingArguments,
    denormalize: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    latent_noise: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """Sign-SALD's VAE objective (eq. 4): `L_m + lambda_pos L_pos + lambda_vel L_vel + lambda_kl L_KL`.

    All reconstruction terms are L1 means over real frames: `L_m` on the (standardised) features, `L_pos` on joint
    positions from the skeleton's differentiable `to_positions` (forward kinematics for smplx133) of de-normalised
    features, `L_vel` on frame-to-frame feature differences (pairs of real frames). `L_KL` is the KL to N(0, I)
    averaged over real latent elements. The latent is a reparameterised posterior sample.

    Args:
        vae (`SkeletonVAE`): the model (only `encode` / `decode` are called).
        poses (`torch.Tensor` of shape `(batch, num_frames, feature_dim)`): standardised poses.
        attention_mask (`torch.Tensor` of shape `(batch, num_frames)`, *optional*): True on real frames.
        args (`SkeletonVAETrainingArguments`): the loss weights.
        denormalize (`Callable`, *optional*): features -> dataset units before forward kinematics (e.g.
            `PoseNormalizer.denormalize`); default: the features are in dataset units.
        generator (`torch.Generator`, *optional*): for the posterior sample.
        latent_noise (`torch.Tensor`, *optional*): the posterior sample's standard normal noise, instead of drawing it.

    Returns:
        `dict` of scalar tensors `loss`, `loss_m`, `loss_pos`, `loss_vel`, `loss_kl`.
    """
    denormalize = denormalize if denormalize is not None else (lambda x: x)
    to_positions = get_skeleton(vae.config.skeleton).to_positions
    # 1. reconstruct through a posterior sample
    posterior = vae.encode(poses, attention_mask=attention_mask).latent_dist
    if latent_noise is None:
        z = posterior.sample(generator=generator)
    else:
        z = posterior.mean + posterior.std * latent_noise
    latent_mask = None if attention_mask is None else attention_mask[:, :: vae.temporal_downsample_factor]
    recon = vae.decode(z, attention_mask=latent_mask).sample
    # 2. reconstruction terms over real frames
    b, n, _ = poses.shape
    if attention_mask is None:
        frame_w = torch.ones(b, n, device=poses.device, dtype=poses.dtype)
    else:
        frame_w = attention_mask.to(poses.dtype)
    loss_m = masked_l1(recon, poses, frame_w)
    with torch.no_grad():  # the target needs no graph
        target_pos = to_positions(denormalize(poses))
    loss_pos = masked_l1(to_positions(denormalize(recon)), target_pos, frame_w)
    pair_w = frame_w[:, 1:] * frame_w[:, :-1]
    loss_vel = masked_l1(recon[:, 1:] - recon[:, :-1], poses[:, 1:] - poses[:, :-1], pair_w)
    # 3. KL to N(0, I) over real latent frames
    kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar)
    if latent_mask is None:
        lat_w = torch.ones(kl.shape[:2], device=kl.device, dtype=kl.dtype)
    else:
        lat_w = latent_mask.to(kl.dtype)
    loss_kl = (kl.flatten(2).mean(-1) * lat_w).sum() / lat_w.sum().clamp_min(1.0)
    loss = loss_m + args.lambda_pos * loss_pos + args.lambda_vel * loss_vel + args.lambda_kl * loss_kl
    return {"loss": loss, "loss_m": loss_m, "loss_pos": loss_pos, "loss_vel": loss_vel, "loss_kl": loss_kl}


# ================================================================================================ 2. stage `ldm`
# ---- duration conditioning (not in the paper): the only code that knows how the denoiser takes word timing
def _timing_inputs(denoiser, inputs: Mapping[str, torch.Tensor], kept: torch.Tensor) -> Optional[TokenTiming]:
    """The denoiser's word-timing input: the true timing (teacher forcing); none for the null condition, as at
    inference."""
    if denoiser.duration_conditioner is None:
        return None
    if "token_durations" not in inputs:
        raise ValueError("`denoiser.duration_conditioning` needs `token_durations` in the batch (gloss_token_timing).")
    return TokenTiming(inputs["token_durations"] * kept[:, None], inputs["token_order"])


def _token_timing_predictions(denoiser, states: torch.Tensor):
    """`(log(1 + frames), order key)` per text token (batch, seq_len): the duration predictor's raw outputs."""
    return denoiser.duration_conditioner.predictor(states)


def duration_loss(
    log1p_durations: torch.Tensor,
    order_keys: torch.Tensor,
    text_mask: torch.Tensor,
    token_durations: torch.Tensor,
    token_order: torch.Tensor,
) -> torch.Tensor:
    """MSE of log(1 + frames) over the valid tokens plus MSE of the order keys over the signed tokens.

    Args:
        log1p_durations, order_keys (`torch.Tensor` of shape `(batch, seq_len)`): the predictions.
        text_mask (`torch.Tensor` of shape `(batch, seq_len)`): True on valid tokens.
        token_durations, token_order (`torch.Tensor` of shape `(batch, seq_len)`): the targets
            (`gloss_token_timing`); tokens with 0 frames are not signed and have no order.
    """
    mask = text_mask.bool()
    for name, value in (("token_durations", token_durations), ("token_order", token_order)):
        if tuple(value.shape) != tuple(mask.shape):
            raise ValueError(
                f"`{name}` must have shape {tuple(mask.shape)} (batch, seq_len); got {tuple(value.shape)}."
            )
    target = token_durations.to(log1p_durations).clamp_min(0.0)
    err_d = ((log1p_durations - target.log1p()) ** 2 * mask).sum() / mask.sum().clamp_min(1)
    signed = mask & (target > 0)
    err_o = ((order_keys - token_order.to(order_keys)) ** 2 * signed).sum() / signed.sum().clamp_min(1)
    return err_d + err_o


def latent_denoiser_loss(
    denoiser: SkeletonLatentDenoiser,
    inputs: Mapping[str, torch.Tensor],
    args: LatentDenoiserTrainingArguments,
    noise_scheduler: DDPMScheduler,
    scale_latents: Callable[[torch.Tensor], torch.Tensor],
    text_encoder: Optional[nn.Module] = None,
    joint_weights: Optional[torch.Tensor] = None,
    training: bool = True,
    posterior_noise: Optional[torch.Tensor] = None,
    noise: Optional[torch.Tensor] = None,
    timesteps: Optional[torch.Tensor] = None,
    drop: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """Stage `ldm`'s loss on a `LatentCollator` batch: the diffusion MSE over real latent frames + the length (and
    duration) predictor's loss [+ the guided cross-attention loss].

    Args:
        denoiser (`SkeletonLatentDenoiser`): the model; its `prediction_type` picks the target (`diffusion_target`).
        inputs (`Mapping[str, torch.Tensor]`): a `LatentCollator` batch.
        args (`LatentDenoiserTrainingArguments`): the loss weights, condition dropout and posterior sampling.
        noise_scheduler (`DDPMScheduler`): adds the noise (and gives the v-prediction target).
        scale_latents (`Callable`): VAE latents -> diffusion space (`SkeletonVAE.scale_latents`).
        text_encoder (`nn.Module`, *optional*): encodes `input_ids` when the batch holds no cached `text_states`.
        joint_weights (`torch.Tensor` of shape `(J',)`, *optional*): weights of the atomic joints in the MSE.
        training (`bool`, *optional*, defaults to `True`): sample the posterior and drop conditions (else neither).
        posterior_noise, noise (`torch.Tensor` like the latents, *optional*), timesteps (`torch.Tensor` of shape
            `(batch,)`, *optional*), drop (`torch.Tensor` of shape `(batch,)`, bool, *optional*): fixed draws instead
            of random ones (drawn in this order otherwise).

    Returns:
        `dict` of scalar tensors `loss`, `loss_denoise`, `loss_length` [, `loss_duration`, `loss_attention`].
    """
    # 1. clean latents in diffusion space, and the text states
    mean, std, mask = inputs["latent_mean"], inputs["latent_std"], inputs["latent_mask"]
    if args.sample_posterior and training:
        z0 = mean + std * (torch.randn_like(std) if posterior_noise is None else posterior_noise)
    else:
        z0 = mean
    z0 = scale_latents(z0)
    if "text_states" in inputs:
        states, text_mask = inputs["text_states"], inputs["text_mask"]
    else:
        text_mask = inputs["text_mask"]
        states = text_encoder(input_ids=inputs["input_ids"], attention_mask=text_mask.long()).last_hidden_state
    # 2. noise at uniform timesteps; the text dropped to the null condition (classifier-free guidance)
    noise = torch.randn_like(z0) if noise is None else noise
    if timesteps is None:
        num_timesteps = noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_timesteps, (z0.shape[0],), device=z0.device)
    zt = noise_scheduler.add_noise(z0, noise, timesteps)
    if training:
        cond, cond_mask, drop = drop_condition(states, text_mask, denoiser.null_condition, args.cond_drop_prob, drop)
    else:
        cond, cond_mask, drop = states, text_mask, torch.zeros(z0.shape[0], dtype=torch.bool, device=z0.device)
    kept = ~drop
    # 3. denoise and regress the target over the real latent frames
    guide = args.attention_guidance_weight > 0
    timing = _timing_inputs(denoiser, inputs, kept)
    out = denoiser(zt, timesteps, encoder_hidden_states=cond, encoder_attention_mask=cond_mask, attention_mask=mask,
                   output_cross_attentions=guide, token_timing=timing)
    target = diffusion_target(noise_scheduler, denoiser.config.prediction_type, z0, noise, timesteps)
    loss_denoise = masked_mse(out.sample, target, mask, joint_weights)
    # 4. the length predictor (on the text, never dropped) and the options
    loss_length = log_length_loss(denoiser.predict_log_num_frames(states, text_mask), inputs["num_frames"])
    loss = loss_denoise + args.length_loss_weight * loss_length
    terms = {"loss_denoise": loss_denoise, "loss_length": loss_length}
    if timing is not None:
        log1p_durations, order_keys = _token_timing_predictions(denoiser, states)
        terms["loss_duration"] = duration_loss(
            log1p_durations, order_keys, text_mask, inputs["token_durations"], inputs["token_order"]
        )
        loss = loss + args.length_loss_weight * terms["loss_duration"]
    if guide:
        if "attention_target" not in inputs:
            raise ValueError(
                "`attention_guidance_weight` > 0 needs `attention_target` in the batch (gloss_token_targets)."
            )
        terms["loss_attention"] = attention_guidance_loss(
            out.cross_attentions, inputs["attention_target"], kept, args.attention_guidance_heads
        )
        loss = loss + args.attention_guidance_weight * terms["loss_attention"]
    return {"loss": loss, **terms}
