"""Sign-SALD stage `ldm`: the latent denoiser on the frozen VAE's latents (called by `run_sign_sald_training`).

The VAE posteriors and the frozen text-encoder states are computed once (`_encode_latents`, `_encode_texts`);
`LatentDenoiserTrainer` noises the scaled latents with `DDPMScheduler` and regresses the denoiser's target over the
real latent frames (`masked_latent_mse`, optionally weighted by `min_snr_weights`), plus the length (and duration)
predictor's loss and, optionally, the guided cross-attention loss. At the end `OUTPUT_DIR` becomes a complete
`SignSALDPipeline` folder (with a `DDIMScheduler`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn
from transformers import set_seed

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.length_regulator import TokenTiming
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, build_text_encoder, encode_prompts
from ..pipelines.pipeline_sign_sald import SignSALDPipeline
from .attention_guidance import attention_guidance_loss, gloss_token_targets
from .gloss_alignment import gloss_token_timing
from .common import PoseRows
from .sign_sald_common import _fit, _normalizer, _SignSALDTrainer, _training_arguments
from .sign_sald_config import LatentTrainingSettings, build_denoiser, latent_joint_weights

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------- data
@dataclass
class LatentCollator:
    """Pads cached latents (and text states or token ids) into an `ldm` batch.

    Returns `latent_mean`, `latent_std` (B, N'_max, J', C), `latent_mask` (B, N'_max), `num_frames` (B,), and either
    `text_states` (B, L, D) + `text_mask` (frozen encoder) or `input_ids` + `text_mask` (trainable encoder).
    """

    tokenizer: Any = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        n = max(s["latent_mean"].shape[0] for s in samples)
        b = len(samples)
        shape = (b, n) + tuple(samples[0]["latent_mean"].shape[1:])
        mean, std = torch.zeros(shape), torch.zeros(shape)
        mask = torch.zeros(b, n, dtype=torch.bool)
        for i, s in enumerate(samples):
            k = s["latent_mean"].shape[0]
            mean[i, :k], std[i, :k], mask[i, :k] = s["latent_mean"], s["latent_std"], True
        batch = {"latent_mean": mean, "latent_std": std, "latent_mask": mask,
                 "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.float32)}
        if "attention_target" in samples[0]:  # (N'_i, L_i) bool -> (B, N'_max, L_max), padding targets nothing
            length = max(s["attention_target"].shape[1] for s in samples)
            batch["attention_target"] = torch.zeros(b, n, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                rows, cols = s["attention_target"].shape
                batch["attention_target"][i, :rows, :cols] = s["attention_target"]
        for key in ("token_durations", "token_order"):  # (L_i,) -> (B, L_max), padding tokens get 0
            if key in samples[0]:
                batch[key] = torch.zeros(b, max(len(s[key]) for s in samples))
                for i, s in enumerate(samples):
                    batch[key][i, : len(s[key])] = s[key]
        if "text_states" in samples[0]:
            length = max(s["text_states"].shape[0] for s in samples)
            states = torch.zeros(b, length, samples[0]["text_states"].shape[1])
            tmask = torch.zeros(b, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                states[i, : len(s["text_states"])], tmask[i, : len(s["text_states"])] = s["text_states"], True
            batch.update(text_states=states, text_mask=tmask)
        else:
            enc = self.tokenizer([s["text"] for s in samples], padding="longest", return_tensors="pt")
            batch.update(input_ids=enc["input_ids"], text_mask=enc["attention_mask"].bool())
        return batch


# ------------------------------------------------------------------------------------------------- trainers
class LatentDiffusionModule(nn.Module):
    """What the `ldm` Trainer optimises: the denoiser, plus the text encoder when it is trainable."""

    def __init__(self, denoiser: SkeletonLatentDenoiser, text_encoder: Optional[nn.Module] = None):
        super().__init__()
        self.denoiser = denoiser
        self.text_encoder = text_encoder


def masked_latent_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, joint_weights: Optional[torch.Tensor] = None,
    sample_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean squared error over the real latent frames of (B, N', J', C) tensors; `mask` (B, N') marks real frames.

    `joint_weights` (J',) weighs the atomic joints, normalised to mean 1 so the loss keeps its scale (None: equal).
    `sample_weights` (B,) weighs whole samples as given (e.g. `min_snr_weights`).
    """
    w = mask[:, :, None, None].to(pred.dtype)
    if joint_weights is not None:
        joint_weights = joint_weights.to(pred)  # integer weights too
        w = w * (joint_weights / joint_weights.mean())[None, None, :, None]
    if sample_weights is not None:
        w = w * sample_weights.to(pred)[:, None, None, None]
    return ((pred - target) ** 2 * w).sum() / (mask.sum() * pred.shape[2] * pred.shape[3]).clamp_min(1.0)


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma weights (B,) of the diffusion MSE at `timesteps` for the given regression target.

    SNR(t) = alpha_bar_t / (1 - alpha_bar_t). Weighting the epsilon loss by min(SNR, gamma) / SNR makes it the clean-latent
    loss clipped at gamma; v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * z0 carries a further 1 / (SNR + 1). The
    weights are divided by their mean over all training timesteps, so the diffusion loss keeps its scale against the
    other loss terms.
    """
    alpha_bar = scheduler.alphas_cumprod.float()
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = snr.clamp(max=gamma)
    if prediction_type == "epsilon":
        weights = clipped / snr
    elif prediction_type == "v_prediction":
        weights = clipped / (snr + 1.0)
    else:  # "sample"
        weights = clipped
    return (weights / weights.mean()).to(timesteps.device)[timesteps]


class LatentDenoiserTrainer(_SignSALDTrainer):
    """Stage `ldm`: MSE on noised VAE latents (masked by the latent mask) + the length predictor's loss.

    The regression target follows `denoiser.config.prediction_type`: `"epsilon"` (the paper), `"sample"` (z0) or
    `"v_prediction"`; the saved scheduler gets the same `prediction_type`.
    """

    def __init__(self, *args, noise_scheduler: DDPMScheduler, scale_latents, length_loss_weight: float,
                 sample_posterior: bool, attention_guidance_weight: float = 0.0, attention_guidance_heads: int = 0,
                 latent_joint_loss_weights: Optional[List[float]] = None, snr_gamma: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise_scheduler = noise_scheduler
        self.scale_latents = scale_latents  # SkeletonVAE.scale_latents: VAE latents -> diffusion space
        self.length_loss_weight = length_loss_weight
        self.sample_posterior = sample_posterior
        self.attention_guidance_weight = attention_guidance_weight
        self.attention_guidance_heads = attention_guidance_heads
        self.joint_weights = None if latent_joint_loss_weights is None else torch.tensor(latent_joint_loss_weights)
        self.snr_gamma = snr_gamma

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        module = self.accelerator.unwrap_model(model)
        denoiser = module.denoiser
        mean, std, mask = inputs["latent_mean"], inputs["latent_std"], inputs["latent_mask"]
        z0 = mean + std * torch.randn_like(std) if (self.sample_posterior and model.training) else mean
        z0 = self.scale_latents(z0)
        if "text_states" in inputs:
            states, tmask = inputs["text_states"], inputs["text_mask"]
        else:
            states = module.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["text_mask"].long()).last_hidden_state
            tmask = inputs["text_mask"]
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (z0.shape[0],), device=z0.device)
        zt = self.noise_scheduler.add_noise(z0, noise, t)
        cond, cond_mask = denoiser.drop_condition(states, tmask) if model.training else (states, tmask)
        # samples whose text was not replaced by the null condition (no text token equals the null embedding)
        kept = (cond[:, 0] != denoiser.null_text_embedding.to(cond)).any(-1)
        guide = self.attention_guidance_weight > 0
        timing = None
        if denoiser.config.duration_conditioning:
            if "token_durations" not in inputs:
                raise ValueError("`denoiser.duration_conditioning` needs `token_durations` in the batch (gloss_token_timing).")
            # ground-truth timing in training (teacher forcing); none for the null condition, as at inference
            timing = TokenTiming(inputs["token_durations"] * kept[:, None], inputs["token_order"])
        out = denoiser(zt, t, encoder_hidden_states=cond, encoder_attention_mask=cond_mask, attention_mask=mask,
                       output_cross_attentions=guide, token_timing=timing)
        pred = out.sample
        kind = denoiser.config.prediction_type
        if kind == "epsilon":  # the paper's objective (eq. 8)
            target = noise
        elif kind == "sample":
            target = z0
        else:  # "v_prediction"
            target = self.noise_scheduler.get_velocity(z0, noise, t)
        snr_w = None if self.snr_gamma is None else min_snr_weights(self.noise_scheduler, t, self.snr_gamma, kind)
        loss_denoise = masked_latent_mse(pred, target, mask, self.joint_weights, snr_w)
        loss_length = denoiser.length_loss(states, tmask, inputs["num_frames"])
        loss = loss_denoise + self.length_loss_weight * loss_length
        terms = {"loss_denoise": loss_denoise, "loss_length": loss_length}
        if timing is not None:
            terms["loss_duration"] = denoiser.duration_loss(states, tmask, inputs["token_durations"], inputs["token_order"])
            loss = loss + self.length_loss_weight * terms["loss_duration"]
        if guide:
            if "attention_target" not in inputs:
                raise ValueError("`attention_guidance_weight` > 0 needs `attention_target` in the batch (gloss_token_targets).")
            terms["loss_attention"] = attention_guidance_loss(
                out.cross_attentions, inputs["attention_target"], kept, self.attention_guidance_heads
            )
            loss = loss + self.attention_guidance_weight * terms["loss_attention"]
        self._record(**terms)
        return (loss, terms) if return_outputs else loss


# ------------------------------------------------------------------------------------------------- running
@torch.no_grad()
def _encode_latents(vae: SkeletonVAE, normalizer: PoseNormalizer, rows, batch_size: int) -> None:
    """Cache each row's VAE posterior mean/std (N'_i, J', C) in the row (sorted batches: little padding)."""
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: rows[i]["num_frames"])
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        batch = collate([rows[i] for i in idx])
        dist = vae.encode(batch["poses"].to(device), attention_mask=batch["attention_mask"].to(device)).latent_dist
        for j, i in enumerate(idx):
            n = -(-rows[i]["num_frames"] // vae.temporal_downsample_factor)
            rows[i]["latent_mean"] = dist.mean[j, :n].float().cpu()
            rows[i]["latent_std"] = dist.std[j, :n].float().cpu()


@torch.no_grad()
def _encode_texts(text_encoder, tokenizer, rows, batch_size: int = 64) -> None:
    """Cache frozen text-encoder states (L_i, D) per distinct sentence in the rows."""
    texts = sorted({r["text"] for r in rows})
    cache = {}
    for k in range(0, len(texts), batch_size):
        chunk = texts[k : k + batch_size]
        states, mask = encode_prompts(text_encoder, tokenizer, chunk)
        for j, t in enumerate(chunk):
            cache[t] = states[j, mask[j]].float().cpu()
    for r in rows:
        r["text_states"] = cache[r["text"]]


def run_ldm_stage(cfg, data, out: Path, resume: bool, use_cpu: bool) -> Dict[str, Any]:
    if not (out / "vae" / "config.json").is_file():
        raise ValueError(f"Stage `ldm` needs a trained VAE in {out / 'vae'}; run stage `vae` first (or both stages).")
    set_seed(cfg["seed"])
    normalizer = _normalizer(data, out)
    vae = SkeletonVAE.from_pretrained(str(out / "vae")).eval().requires_grad_(False)
    if vae.config.scaling_factor == 1.0:
        logger.warning("The VAE's scaling_factor is 1.0 (not estimated?); latents are diffused unscaled.")
    settings = TextEncoderSettings(**cfg["text_encoder"])
    text_encoder, tokenizer = build_text_encoder(settings, texts=[r["text"] for r in data["train"]])
    denoiser = build_denoiser(cfg, vae, int(text_encoder.config.hidden_size))
    train_cfg = LatentTrainingSettings(**cfg["ldm_training"])

    rows = [dict(r) for r in data["train"]]
    _encode_latents(vae, normalizer, rows, train_cfg.per_device_train_batch_size)
    for r in rows:
        r.pop("poses")  # the latents replace the poses for this stage
    if not settings.trainable:
        _encode_texts(text_encoder, tokenizer, rows)
    if train_cfg.attention_guidance_weight > 0:
        if not denoiser.config.use_cross_attention:
            raise ValueError("`ldm_training.attention_guidance_weight` > 0 needs `denoiser.use_cross_attention: true`.")
        for r in rows:
            r["attention_target"] = gloss_token_targets(r, tokenizer, len(r["latent_mean"]), vae.temporal_downsample_factor)
    if denoiser.config.duration_conditioning:
        for r in rows:
            r["token_durations"], r["token_order"] = gloss_token_timing(r, tokenizer)
    ddpm = DDPMScheduler(
        num_train_timesteps=cfg["scheduler"]["num_train_timesteps"], beta_schedule=cfg["scheduler"]["beta_schedule"],
        beta_start=cfg["scheduler"]["beta_start"], beta_end=cfg["scheduler"]["beta_end"],
        clip_sample=cfg["scheduler"]["clip_sample"], prediction_type=denoiser.config.prediction_type,
    )
    module = LatentDiffusionModule(denoiser, text_encoder if settings.trainable else None)
    trainer = LatentDenoiserTrainer(
        model=module,
        args=_training_arguments(train_cfg, out / "checkpoints" / "ldm", cfg["seed"], use_cpu),
        data_collator=LatentCollator(tokenizer=tokenizer),
        train_dataset=PoseRows(rows, "num_frames"),
        noise_scheduler=ddpm,
        scale_latents=vae.scale_latents,
        length_loss_weight=train_cfg.length_loss_weight,
        sample_posterior=train_cfg.sample_posterior,
        attention_guidance_weight=train_cfg.attention_guidance_weight,
        attention_guidance_heads=train_cfg.attention_guidance_heads,
        latent_joint_loss_weights=latent_joint_weights(train_cfg.latent_joint_loss_weights, vae.config),
        snr_gamma=train_cfg.snr_gamma,
        group_by_length=train_cfg.group_by_length,
    )
    metrics = {f"ldm_{k}": v for k, v in _fit(trainer, resume).items()}
    module = trainer.accelerator.unwrap_model(trainer.model)
    if settings.trainable:
        text_encoder = module.text_encoder
    text_encoder.eval().requires_grad_(False)
    scheduler = DDIMScheduler.from_config(
        ddpm.config, steps_offset=cfg["scheduler"]["steps_offset"], set_alpha_to_one=cfg["scheduler"]["set_alpha_to_one"]
    )
    pipe = SignSALDPipeline(
        vae=vae, denoiser=module.denoiser.eval(), text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        normalizer=normalizer, fps=data["fps"], default_guidance_scale=cfg["inference"]["guidance_scale"],
    )
    pipe.save_pretrained(str(out))
    return metrics
