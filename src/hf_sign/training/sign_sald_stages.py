"""Sign-SALD's two training stages (Shen et al., Sec. 2): `vae`, then `ldm`.

Each stage is its arguments (a config section), its loss (`sign_sald_losses`), its collator (`sign_sald_data`), its
Trainer and a `Stage` for the runner (`hf_sign.training.stages.run_stages`); `sign_sald_trainer` holds the config
and the entry points.

* Stage `vae` (`SkeletonVAETrainingArguments`, section `vae_training`): the skeleton-aware VAE with eq. 4,
  `L_m + lambda_pos L_pos + lambda_vel L_vel + lambda_kl L_KL` (`skeleton_vae_loss`), on poses standardised by the
  train split's `PoseNormalizer`, optionally on random windows (`crop_frames`; the VAE is convolutional in time). At
  the end the latent scaling goes into the VAE's config (one `scaling_factor`, 1 / std of the posterior means, as the
  latent-diffusion recipe prescribes; or a mean and std per atomic joint and channel), the reconstruction error on
  the validation split into the metrics, and the VAE into `OUTPUT_DIR/vae/`.
* Stage `ldm` (`LatentDenoiserTrainingArguments`, section `ldm_training`): the frozen VAE encodes every train
  sequence once (posterior mean and std cached; a fresh posterior sample per step with `sample_posterior`), and so
  does a frozen text encoder per distinct sentence. The scaled latents are noised by a `DDPMScheduler` at uniform
  timesteps and the denoiser regresses its `prediction_type` target over the real latent frames (eq. 8 for
  `epsilon`), with the text dropped to the denoiser's null condition with probability `cond_drop_prob`
  (classifier-free guidance), plus `length_loss_weight` times the length predictor's log-length MSE
  (`latent_denoiser_loss`). At the end `OUTPUT_DIR` becomes a complete `SignSALDPipeline` folder (DDIM scheduler).

Options not in the paper (the `paper` config leaves them off): `ldm_training.attention_guidance_weight` (the guided
cross-attention loss of `attention_guidance`, needs `gloss_spans`), `denoiser.duration_conditioning` (the denoiser
gets the true word timing from `gloss_spans` and its duration predictor a loss, weighted like the length loss),
`ldm_training.latent_joint_loss_weights` (atomic joints weighed in the diffusion MSE).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, build_text_encoder
from ..pipelines.pipeline_sign_sald import SignSALDPipeline
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .attention_guidance import gloss_token_targets
from .gloss_alignment import gloss_token_timing
from .sign_sald_data import LatentCollator, RandomCropCollator, encode_latents, encode_texts
from .sign_sald_losses import latent_denoiser_loss, skeleton_vae_loss
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer, PoseRows, fit_or_load_normalizer

logger = logging.getLogger(__name__)

__all__ = [
    "SkeletonVAETrainingArguments",
    "LatentDenoiserTrainingArguments",
    "InferenceArguments",
    "build_vae",
    "build_denoiser",
    "latent_joint_weights",
    "SkeletonVAETrainer",
    "LatentDiffusionModule",
    "LatentDenoiserTrainer",
    "VAE_STAGE",
    "LDM_STAGE",
    "SIGN_SALD_STAGES",
]


# ================================================================================================ 1. arguments
@dataclass
class SkeletonVAETrainingArguments(StageTrainingArguments):
    """The `vae_training` section: `StageTrainingArguments` (defaults: the paper's 50 epochs at batch 128, Adam 1e-3)
    plus

    Args:
        lambda_pos (`float`, *optional*, defaults to 1.0): weight of the L1 joint-position loss (metres for smplx133).
        lambda_vel (`float`, *optional*, defaults to 0.5): weight of the L1 velocity loss (frame differences of the
            standardised features).
        lambda_kl (`float`, *optional*, defaults to 1e-4): weight of the KL term (mean over real latent elements).
        crop_frames (`int`, *optional*, defaults to 0): train on random windows of at most this many frames (0: whole
            sequences), rounded down to the VAE's temporal multiple. The VAE is convolutional in time, so windows teach
            it the same local motion at a fraction of the cost.
        latent_normalization (`str`, *optional*, defaults to `"scalar"`): how latents are scaled for diffusion,
            estimated at the end of the stage: `"scalar"` (one `scaling_factor`, 1 / std) or `"per_channel"`
            (`latents_mean` / `latents_std` per atomic joint and channel).
    """

    num_train_epochs: float = 50.0
    per_device_train_batch_size: int = 128
    lambda_pos: float = 1.0
    lambda_vel: float = 0.5
    lambda_kl: float = 1e-4
    crop_frames: int = 0
    latent_normalization: str = "scalar"

    def __post_init__(self):
        if self.latent_normalization not in ("scalar", "per_channel"):
            raise ValueError(
                "`vae_training.latent_normalization` must be 'scalar' or 'per_channel'; "
                f"got {self.latent_normalization!r}."
            )
        for name in ("lambda_pos", "lambda_vel", "lambda_kl", "crop_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"`vae_training.{name}` must be >= 0; got {getattr(self, name)}.")


@dataclass
class LatentDenoiserTrainingArguments(StageTrainingArguments):
    """The `ldm_training` section: `StageTrainingArguments` (defaults: the paper's 500 epochs at batch 64, Adam 1e-3)
    plus

    Args:
        cond_drop_prob (`float`, *optional*, defaults to 0.1): probability that a sample's text is replaced by the
            denoiser's null condition (classifier-free guidance).
        length_loss_weight (`float`, *optional*, defaults to 1.0): weight of the length predictor's log-length MSE
            (and of the duration predictor's loss, with `denoiser.duration_conditioning`).
        sample_posterior (`bool`, *optional*, defaults to `True`): draw a fresh VAE posterior sample at every step
            instead of using the posterior mean.
        attention_guidance_weight (`float`, *optional*, defaults to 0.0): weight of the guided cross-attention loss
            (`hf_sign.training.attention_guidance`; not in the paper). Needs `gloss_spans` in the train split and the
            words each gloss signs (a `gloss_text_spans` column, or SynthSign text). 0 disables it.
        attention_guidance_heads (`int`, *optional*, defaults to 0): how many heads of every cross-attention layer it
            guides, the first ones; 0 guides all of them.
        latent_joint_loss_weights (`Dict[str, float]`, *optional*): weights of the diffusion MSE by atomic joint name
            (`SkeletonSpec.atomic_joint_names`, e.g. `{left_hand: 3, right_hand: 3}`; unnamed joints weigh 1),
            normalised to mean 1; `None` weighs them equally (the paper). Ignored, with a warning, for the flat
            "w/o ST-Latent" VAE, whose latent has no atomic joints.
    """

    num_train_epochs: float = 500.0
    per_device_train_batch_size: int = 64
    cond_drop_prob: float = 0.1
    length_loss_weight: float = 1.0
    sample_posterior: bool = True
    attention_guidance_weight: float = 0.0
    attention_guidance_heads: int = 0
    latent_joint_loss_weights: Optional[Dict[str, float]] = None

    def __post_init__(self):
        if not 0.0 <= self.cond_drop_prob <= 1.0:
            raise ValueError(f"`ldm_training.cond_drop_prob` must be in [0, 1]; got {self.cond_drop_prob}.")
        for name in ("length_loss_weight", "attention_guidance_weight", "attention_guidance_heads"):
            if getattr(self, name) < 0:
                raise ValueError(f"`ldm_training.{name}` must be >= 0; got {getattr(self, name)}.")
        weights = self.latent_joint_loss_weights
        if weights is not None and (
            not isinstance(weights, dict)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights.values())
        ):
            raise ValueError(
                "`ldm_training.latent_joint_loss_weights` must be null or a mapping from atomic joint name to a "
                f"weight >= 0 (e.g. {{left_hand: 3, right_hand: 3}}); got {weights!r}."
            )


@dataclass
class InferenceArguments:
    """The `inference` section: settings saved with the trained pipeline.

    Args:
        guidance_scale (`float`, *optional*, defaults to 2.5): classifier-free guidance scale, saved as the pipeline's
            `default_guidance_scale` (the paper does not give one).
    """

    guidance_scale: float = 2.5


# ================================================================================================ 2. models
def build_vae(cfg: Mapping[str, Any]) -> SkeletonVAE:
    """The `vae` section's `SkeletonVAE`; without a skeleton (it follows the dataset) the signature's default."""
    kwargs = {k: v for k, v in cfg["vae"].items() if not (k == "skeleton" and v is None)}
    return SkeletonVAE(**kwargs)


def build_denoiser(cfg: Mapping[str, Any], vae: SkeletonVAE, text_dim: int) -> SkeletonLatentDenoiser:
    """The `denoiser` section's `SkeletonLatentDenoiser` on `vae`'s latent, conditioned on `text_dim`-wide states."""
    return SkeletonLatentDenoiser(
        num_joints=vae.latent_num_joints, latent_channels=vae.latent_channels, text_dim=text_dim, **cfg["denoiser"]
    )


def latent_joint_weights(weights: Optional[Dict[str, float]], vae_config: Mapping[str, Any]) -> Optional[List[float]]:
    """`ldm_training.latent_joint_loss_weights` as one weight per latent atomic joint of a VAE with `vae_config`.

    Unknown names raise (listing the valid ones); the flat VAE (`skeleton_aware: false`) gets `None` and a warning.
    """
    if not weights:
        return None
    if not vae_config["skeleton_aware"]:
        logger.warning("`ldm_training.latent_joint_loss_weights` is ignored: the flat VAE's latent has no atomic "
                       "joints.")
        return None
    names = list(get_skeleton(vae_config["skeleton"]).atomic_joint_names[vae_config["num_atomic_joints"]])
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"`ldm_training.latent_joint_loss_weights` names {unknown}, not atomic joints of the VAE's latent "
            f"(J' = {len(names)}: {names})."
        )
    out = [float(weights.get(n, 1.0)) for n in names]
    if sum(out) <= 0:
        raise ValueError("`ldm_training.latent_joint_loss_weights` gives every atomic joint weight 0.")
    return out


# ================================================================================================ 3. stage `vae`
class SkeletonVAETrainer(HfSignTrainer):
    """Stage `vae`: `skeleton_vae_loss` on standardised poses, positions through `normalizer.denormalize`."""

    def __init__(self, *args, loss_args: SkeletonVAETrainingArguments, normalizer: PoseNormalizer, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args = loss_args
        self.normalizer = normalizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        vae = self.accelerator.unwrap_model(model)
        normalizer = self.normalizer.to(inputs["poses"].device)
        terms = skeleton_vae_loss(
            vae, inputs["poses"], inputs["attention_mask"], self.loss_args, denormalize=normalizer.denormalize
        )
        self.log_loss_terms(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]


@torch.no_grad()
def _vae_validation(vae: SkeletonVAE, normalizer: PoseNormalizer, rows, batch_size: int) -> Dict[str, float]:
    """Reconstruction error of the posterior mean on `rows`: mean joint position error (mm) and feature L1."""
    if not rows:
        return {}
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    to_positions = get_skeleton(vae.config.skeleton).to_positions
    device = next(vae.parameters()).device
    err = l1 = frames = 0.0
    for i in range(0, len(rows), batch_size):
        batch = collate(rows[i : i + batch_size])
        x, mask = batch["poses"].to(device), batch["attention_mask"].to(device)
        recon = vae(x, attention_mask=mask).sample
        a, b = normalizer.denormalize(recon), normalizer.denormalize(x)
        pos_err = (to_positions(a) - to_positions(b)).norm(dim=-1).mean(-1)  # (B, N)
        err += float((pos_err * mask).sum())
        l1 += float(((recon - x).abs().mean(-1) * mask).sum())
        frames += float(mask.sum())
    return {"vae_val_mpjpe_mm": round(1000 * err / frames, 2), "vae_val_feature_l1": round(l1 / frames, 4)}


def build_vae_trainer(ctx: StageContext) -> SkeletonVAETrainer:
    cfg, data = ctx.config, ctx.data
    normalizer = fit_or_load_normalizer(data, ctx.output_dir / "normalizer")
    vae = build_vae(cfg)
    args = SkeletonVAETrainingArguments(**cfg["vae_training"])
    factor = vae.temporal_downsample_factor
    return SkeletonVAETrainer(
        model=vae,
        args=ctx.training_arguments("vae", args),
        data_collator=RandomCropCollator(
            PoseCollator(normalizer=normalizer, pad_to_multiple_of=factor), (args.crop_frames // factor) * factor
        ),
        train_dataset=PoseRows(data["train"], "num_frames"),
        loss_args=args,
        normalizer=normalizer,
        group_by_length=args.group_by_length,
    )


def finish_vae_stage(ctx: StageContext, trainer: SkeletonVAETrainer) -> Dict[str, Any]:
    """Estimate the latent scaling, measure the validation reconstruction and save the VAE into `OUTPUT_DIR/vae/`."""
    args, data, normalizer = trainer.loss_args, ctx.data, trainer.normalizer
    vae = trainer.accelerator.unwrap_model(trainer.model).eval()
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    bs = args.per_device_train_batch_size
    # 1 / std of the latents: a (length-sorted, so little padding) subset of the train split estimates it well.
    subset = sorted(data["train"][:: max(1, len(data["train"]) // 512)], key=lambda r: r["num_frames"])
    batches = (collate(subset[i : i + bs]) for i in range(0, len(subset), bs))
    batches = ((b["poses"].to(device), b["attention_mask"].to(device)) for b in batches)
    metrics: Dict[str, Any] = {}
    if args.latent_normalization == "per_channel":  # one encoding pass also sets the scalar factor
        _, std = vae.estimate_latent_statistics(batches)
        metrics["vae_latents_std_range"] = [round(min(std), 4), round(max(std), 4)]
    else:
        vae.estimate_scaling_factor(batches)
    metrics["vae_scaling_factor"] = vae.config.scaling_factor
    metrics.update(_vae_validation(vae, normalizer.to(device), data["validation"], bs))
    vae.save_pretrained(str(ctx.output_dir / "vae"))
    return metrics


VAE_STAGE = Stage("vae", build_vae_trainer, finish_vae_stage)


# ================================================================================================ 4. stage `ldm`
class LatentDiffusionModule(nn.Module):
    """What the `ldm` Trainer optimises: the denoiser, plus the text encoder when it is trainable."""

    def __init__(self, denoiser: SkeletonLatentDenoiser, text_encoder: Optional[nn.Module] = None):
        super().__init__()
        self.denoiser = denoiser
        self.text_encoder = text_encoder


class LatentDenoiserTrainer(HfSignTrainer):
    """Stage `ldm`: `latent_denoiser_loss` on `LatentCollator` batches of a `LatentDiffusionModule`."""

    def __init__(self, *args, loss_args: LatentDenoiserTrainingArguments, noise_scheduler: DDPMScheduler,
                 scale_latents: Callable[[torch.Tensor], torch.Tensor], joint_weights: Optional[List[float]] = None,
                 pipeline_components: Optional[Dict[str, Any]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args = loss_args
        # the frozen components the pipeline is saved with (vae, text_encoder, tokenizer, normalizer)
        self.pipeline_components = dict(pipeline_components or {})
        self.noise_scheduler = noise_scheduler
        self.scale_latents = scale_latents  # SkeletonVAE.scale_latents: VAE latents -> diffusion space
        self.joint_weights = None if joint_weights is None else torch.tensor(joint_weights)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        module = self.accelerator.unwrap_model(model)
        terms = latent_denoiser_loss(
            module.denoiser, inputs, self.loss_args, self.noise_scheduler, self.scale_latents,
            text_encoder=module.text_encoder, joint_weights=self.joint_weights, training=model.training,
        )
        self.log_loss_terms(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]


def build_ldm_trainer(ctx: StageContext) -> LatentDenoiserTrainer:
    cfg, data, out = ctx.config, ctx.data, ctx.output_dir
    base = ctx.base_pipeline  # fine-tuning: continue from its trained components
    if base is None and not (out / "vae" / "config.json").is_file():
        raise ValueError(f"Stage `ldm` needs a trained VAE in {out / 'vae'}; run stage `vae` first (or both stages).")
    normalizer = ctx.component("normalizer", lambda: fit_or_load_normalizer(data, out / "normalizer"))
    vae = ctx.component("vae", lambda: SkeletonVAE.from_pretrained(str(out / "vae"))).eval().requires_grad_(False)
    if vae.config.scaling_factor == 1.0:
        logger.warning("The VAE's scaling_factor is 1.0 (not estimated?); latents are diffused unscaled.")
    settings = TextEncoderSettings(**cfg["text_encoder"])
    if base is not None:
        text_encoder, tokenizer = base.text_encoder, base.tokenizer
    else:
        text_encoder, tokenizer = build_text_encoder(settings, texts=[r["text"] for r in data["train"]])
    denoiser = ctx.component("denoiser", lambda: build_denoiser(cfg, vae, int(text_encoder.config.hidden_size)))
    args = LatentDenoiserTrainingArguments(**cfg["ldm_training"])

    # The latents replace the poses for this stage: the rows keep the rest, the poses are read a batch at a time.
    rows = [{k: v for k, v in r.items() if k != "poses"} for r in data["train"]]
    encode_latents(vae, normalizer, rows, args.per_device_train_batch_size, poses=data["train"])
    if not settings.trainable:
        encode_texts(text_encoder, tokenizer, rows)
    if args.attention_guidance_weight > 0:
        if not denoiser.config.use_cross_attention:
            raise ValueError(
                "`ldm_training.attention_guidance_weight` > 0 needs `denoiser.use_cross_attention: true`."
            )
        factor = vae.temporal_downsample_factor
        for r in rows:
            r["attention_target"] = gloss_token_targets(r, tokenizer, len(r["latent_mean"]), factor)
    if denoiser.config.duration_conditioning:
        for r in rows:
            r["token_durations"], r["token_order"] = gloss_token_timing(r, tokenizer)
    sched = cfg["scheduler"]
    ddpm = DDPMScheduler(
        num_train_timesteps=sched["num_train_timesteps"], beta_schedule=sched["beta_schedule"],
        beta_start=sched["beta_start"], beta_end=sched["beta_end"], clip_sample=sched["clip_sample"],
        prediction_type=denoiser.config.prediction_type,
    )
    return LatentDenoiserTrainer(
        model=LatentDiffusionModule(denoiser, text_encoder if settings.trainable else None),
        args=ctx.training_arguments("ldm", args),
        data_collator=LatentCollator(tokenizer=tokenizer),
        train_dataset=PoseRows(rows, "num_frames"),
        loss_args=args,
        noise_scheduler=ddpm,
        scale_latents=vae.scale_latents,
        joint_weights=latent_joint_weights(args.latent_joint_loss_weights, vae.config),
        pipeline_components=dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, normalizer=normalizer),
        group_by_length=args.group_by_length,
    )


def finish_ldm_stage(ctx: StageContext, trainer: LatentDenoiserTrainer) -> Dict[str, Any]:
    """Save `OUTPUT_DIR` as a complete `SignSALDPipeline` folder (DDIM with the training betas)."""
    cfg, parts = ctx.config, trainer.pipeline_components
    module = trainer.accelerator.unwrap_model(trainer.model)
    text_encoder = module.text_encoder if module.text_encoder is not None else parts["text_encoder"]
    text_encoder.eval().requires_grad_(False)
    scheduler = DDIMScheduler.from_config(
        trainer.noise_scheduler.config,
        steps_offset=cfg["scheduler"]["steps_offset"],
        set_alpha_to_one=cfg["scheduler"]["set_alpha_to_one"],
    )
    pipe = SignSALDPipeline(
        vae=parts["vae"], denoiser=module.denoiser.eval(), text_encoder=text_encoder, tokenizer=parts["tokenizer"],
        scheduler=scheduler, normalizer=parts["normalizer"], fps=ctx.data["fps"],
        default_guidance_scale=InferenceArguments(**cfg["inference"]).guidance_scale,
    )
    pipe.save_pretrained(str(ctx.output_dir))
    return {}


LDM_STAGE = Stage("ldm", build_ldm_trainer, finish_ldm_stage)
SIGN_SALD_STAGES = (VAE_STAGE, LDM_STAGE)
