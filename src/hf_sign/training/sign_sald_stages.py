"""Sign-SALD's two training stages (Shen et al., Sec. 2): `vae`, then `ldm`.

Each stage is its arguments (a config section), its loss, its collator, its Trainer and a `Stage` for the runner
(`hf_sign.training.stages.run_stages`); `sign_sald_trainer` holds the config and the entry points.

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

The losses call only the models' inference API: `vae.encode` / `vae.decode`, `denoiser(...)`,
`denoiser.null_condition`, `denoiser.predict_log_num_frames`, and the raw per-token outputs of the duration
predictor, reached in one place (`_token_timing_predictions`).
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
from ..models.length_regulator import TokenTiming
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, build_text_encoder, encode_prompts
from ..pipelines.pipeline_sign_sald import SignSALDPipeline
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .attention_guidance import attention_guidance_loss, gloss_token_targets
from .gloss_alignment import gloss_token_timing
from .losses import diffusion_target, drop_condition, log_length_loss, masked_l1, masked_mse
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
    "RandomCropCollator",
    "skeleton_vae_loss",
    "SkeletonVAETrainer",
    "LatentCollator",
    "LatentDiffusionModule",
    "duration_loss",
    "latent_denoiser_loss",
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
@dataclass
class RandomCropCollator:
    """Cuts every sequence longer than `crop_frames` to a random window (torch's RNG, seeded by the Trainer)."""

    collator: PoseCollator
    crop_frames: int = 0

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        if self.crop_frames > 0:
            cropped = []
            for s in samples:
                n = len(s["poses"])
                if n > self.crop_frames:
                    start = int(torch.randint(0, n - self.crop_frames + 1, ()))
                    s = {**s, "poses": s["poses"][start : start + self.crop_frames], "num_frames": self.crop_frames}
                cropped.append(s)
            samples = cropped
        return self.collator(samples)


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
@dataclass
class LatentCollator:
    """Pads cached latents (and text states or token ids) into an `ldm` batch.

    Returns `latent_mean`, `latent_std` (B, N'_max, J', C), `latent_mask` (B, N'_max), `num_frames` (B,), and either
    `text_states` (B, L, D) + `text_mask` (frozen encoder) or `input_ids` + `text_mask` (trainable encoder); with
    the alignment options also `attention_target` (B, N'_max, L_max), `token_durations` and `token_order` (B, L_max).
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


class LatentDiffusionModule(nn.Module):
    """What the `ldm` Trainer optimises: the denoiser, plus the text encoder when it is trainable."""

    def __init__(self, denoiser: SkeletonLatentDenoiser, text_encoder: Optional[nn.Module] = None):
        super().__init__()
        self.denoiser = denoiser
        self.text_encoder = text_encoder


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


def build_ldm_trainer(ctx: StageContext) -> LatentDenoiserTrainer:
    cfg, data, out = ctx.config, ctx.data, ctx.output_dir
    if not (out / "vae" / "config.json").is_file():
        raise ValueError(f"Stage `ldm` needs a trained VAE in {out / 'vae'}; run stage `vae` first (or both stages).")
    normalizer = fit_or_load_normalizer(data, out / "normalizer")
    vae = SkeletonVAE.from_pretrained(str(out / "vae")).eval().requires_grad_(False)
    if vae.config.scaling_factor == 1.0:
        logger.warning("The VAE's scaling_factor is 1.0 (not estimated?); latents are diffused unscaled.")
    settings = TextEncoderSettings(**cfg["text_encoder"])
    text_encoder, tokenizer = build_text_encoder(settings, texts=[r["text"] for r in data["train"]])
    denoiser = build_denoiser(cfg, vae, int(text_encoder.config.hidden_size))
    args = LatentDenoiserTrainingArguments(**cfg["ldm_training"])

    rows = [dict(r) for r in data["train"]]
    _encode_latents(vae, normalizer, rows, args.per_device_train_batch_size)
    for r in rows:
        r.pop("poses")  # the latents replace the poses for this stage
    if not settings.trainable:
        _encode_texts(text_encoder, tokenizer, rows)
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
